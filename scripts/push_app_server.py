"""A test XEP-0357 app server: a component (XEP-0114) on loopback that
accepts the pubsub publishes a server sends for push notifications,
answers them, and writes one JSON line per push to --out (node, the
encrypted payload's iv and text, and whether publish-options carried the
expected secret). Stops by itself after --lifetime seconds."""
import argparse, asyncio, json, sys
import slixmpp
from slixmpp.xmlstream import ET
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import StanzaPath

NS_PUBSUB = "http://jabber.org/protocol/pubsub"
NS_PUSH = "urn:xmpp:push:0"
NS_ENCRYPT = "tigase:push:encrypt:0"
NS_DATA = "jabber:x:data"


class AppServer(slixmpp.ComponentXMPP):
    def __init__(self, jid, secret, host, port, out):
        super().__init__(jid, secret, host, port)
        self.out = out
        self.register_handler(Callback("push", StanzaPath("iq@type=set"), self.on_iq))
        self.add_event_handler("session_start", lambda _: print(json.dumps({"app_server": "online"}), flush=True))

    def on_iq(self, iq):
        xml = iq.xml
        publish = xml.find("{%s}pubsub/{%s}publish" % (NS_PUBSUB, NS_PUBSUB))
        if publish is None:
            iq.reply().error().set_payload(ET.Element("{urn:ietf:params:xml:ns:xmpp-stanzas}bad-request"))
            return
        record = {"from": str(iq["from"]), "node": publish.get("node")}
        encrypted = publish.find(".//{%s}encrypted" % NS_ENCRYPT)
        if encrypted is not None:
            record["iv"] = encrypted.get("iv")
            record["payload"] = (encrypted.text or "").strip()
        secret = None
        for field in xml.findall("{%s}pubsub/{%s}publish-options/{%s}x/{%s}field" % (NS_PUBSUB, NS_PUBSUB, NS_DATA, NS_DATA)):
            if field.get("var") == "secret":
                secret = field.findtext("{%s}value" % NS_DATA)
        record["secret"] = secret
        with open(self.out, "a") as f:
            f.write(json.dumps(record) + "\n")
        iq.reply().send()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--jid", required=True)
    p.add_argument("--secret", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--lifetime", type=int, default=300)
    a = p.parse_args()
    server = AppServer(a.jid, a.secret, "127.0.0.1", a.port, a.out)
    server.connect()
    loop = asyncio.get_event_loop()
    loop.call_later(a.lifetime, server.disconnect)
    loop.run_until_complete(server.disconnected)


if __name__ == "__main__":
    sys.exit(main())
