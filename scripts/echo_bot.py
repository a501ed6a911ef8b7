"""A slixmpp peer for demos and interop tests: logs in, answers every chat
message with "echo: <body>" (with XEP-0184 receipts), and stops by itself
after --lifetime seconds or --count echoes. Prints one JSON line per event."""
import argparse, asyncio, json, ssl, sys
import slixmpp


class EchoBot(slixmpp.ClientXMPP):
    def __init__(self, jid, password, count):
        super().__init__(jid, password)
        self.remaining = count
        self.register_plugin("xep_0030")
        self.register_plugin("xep_0184")  # answers receipt requests
        self.register_plugin("xep_0199")
        self.add_event_handler("session_start", self.start)
        self.add_event_handler("message", self.on_message)

    async def start(self, _):
        self.send_presence()
        await self.get_roster()
        print(json.dumps({"bot": "online", "jid": str(self.boundjid)}), flush=True)

    def on_message(self, msg):
        if msg["type"] not in ("chat", "normal") or not msg["body"]:
            return
        print(json.dumps({"bot": "received", "from": str(msg["from"].bare), "body": msg["body"]}), flush=True)
        self.send_message(mto=msg["from"].bare, mbody="echo: " + msg["body"], mtype="chat")
        self.remaining -= 1
        if self.remaining == 0:
            self.disconnect()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--jid", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--ca", required=True)
    p.add_argument("--count", type=int, default=-1)
    p.add_argument("--lifetime", type=int, default=300)
    a = p.parse_args()
    bot = EchoBot(a.jid, a.password, a.count)
    bot.ssl_context = ssl.create_default_context(cafile=a.ca)
    bot.connect(host="127.0.0.1", port=a.port)
    loop = asyncio.get_event_loop()
    loop.call_later(a.lifetime, bot.disconnect)
    loop.run_until_complete(bot.disconnected)


if __name__ == "__main__":
    sys.exit(main())
