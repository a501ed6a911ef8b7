#!/usr/bin/env python3
"""An OMEMO peer for Waxwing's interop tests: slixmpp + slixmpp-omemo 2.2
(python-omemo), both OMEMO 0.3 and OMEMO 2, blind trust, keys in memory.

echo mode (default): decrypts every encrypted chat message and answers
"echo: <body>" encrypted with the same OMEMO version.
ping mode (--ping JID --version 0.3|2 --count N [--interval S]): sends N
encrypted messages "ping i" to JID (after it published a device list), S
seconds apart, and waits for as many encrypted answers.

slixmpp-omemo 2.2 has no SCE, so for OMEMO 2 this bot builds and opens the
XEP-0420 envelope itself and drives python-omemo's SessionManager directly.
Prints one JSON line per event; stops after --lifetime seconds.
oldmemo (AGPL) runs here only as a test peer.
"""
import argparse
import asyncio
import json
import ssl
import sys
import xml.etree.ElementTree as ET

import oldmemo
import oldmemo.etree
import twomemo
import twomemo.etree
import slixmpp
import slixmpp.xmlstream.handler
import slixmpp.xmlstream.matcher
from slixmpp.plugins import register_plugin
from slixmpp_omemo import XEP_0384

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from omemo_oracle import MemoryStorage  # noqa: E402 (keys in memory, as in the oracle)

NS = {"0.3": oldmemo.oldmemo.NAMESPACE, "2": twomemo.twomemo.NAMESPACE}
NS_SCE = "urn:xmpp:sce:1"
FALLBACK = "OMEMO encrypted message (test bot)"


class XEP_0384Impl(XEP_0384):  # noqa: N801 (slixmpp's plugin naming)
    default_config = {"fallback_message": FALLBACK}

    def plugin_init(self):
        self._memory = MemoryStorage()
        super().plugin_init()

    @property
    def storage(self):
        return self._memory

    @property
    def _btbv_enabled(self):
        return True

    async def _devices_blindly_trusted(self, blindly_trusted, identifier):
        pass

    async def _prompt_manual_trust(self, manually_trusted, identifier):
        manager = await self.get_session_manager()
        for device in manually_trusted:
            await manager.set_trust(device.bare_jid, device.identity_key, "BLINDLY_TRUSTED")


register_plugin(XEP_0384Impl)


def envelope(body, sender, to):
    env = ET.Element(f"{{{NS_SCE}}}envelope")
    content = ET.SubElement(env, f"{{{NS_SCE}}}content")
    ET.SubElement(content, "{jabber:client}body").text = body
    ET.SubElement(env, f"{{{NS_SCE}}}rpad").text = "pad"
    ET.SubElement(env, f"{{{NS_SCE}}}from", {"jid": sender})
    ET.SubElement(env, f"{{{NS_SCE}}}to", {"jid": to})
    return ET.tostring(env)


def open_envelope(data, sender):
    env = ET.fromstring(data)
    frm = env.find(f"{{{NS_SCE}}}from")
    if frm is None or frm.get("jid") != sender:
        raise ValueError("SCE from does not match the sender")
    body = env.find(f"{{{NS_SCE}}}content/{{jabber:client}}body")
    return body.text or "" if body is not None else ""


class OmemoBot(slixmpp.ClientXMPP):
    def __init__(self, jid, password, args):
        super().__init__(jid, password)
        self.args = args
        self.answers = 0
        for plugin in ("xep_0030", "xep_0060", "xep_0163", "xep_0199", "xep_0280", "xep_0334"):
            self.register_plugin(plugin)
        self.register_plugin("xep_0384", module=sys.modules[__name__])
        self.add_event_handler("session_start", self.start)
        # slixmpp's "message" event needs a <body>; key-transport messages
        # have none, so encrypted messages get their own handler.
        for ns in NS.values():
            self.register_handler(slixmpp.xmlstream.handler.CoroutineCallback(
                f"OMEMO {ns}", slixmpp.xmlstream.matcher.MatchXPath(f"{{jabber:client}}message/{{{ns}}}encrypted"),
                self.on_message))
        self.add_event_handler("message", self.on_plain_message)

    def say(self, **event):
        print(json.dumps(event), flush=True)

    async def start(self, _):
        self.send_presence()
        await self.get_roster()
        manager = await self.plugin["xep_0384"].get_session_manager()
        own = await manager.get_own_device_information()
        self.say(bot="online", jid=str(self.boundjid), device=own[0].device_id)
        if self.args.ping:
            asyncio.ensure_future(self.ping())

    async def send_encrypted(self, to, body, version):
        xep = self.plugin["xep_0384"]
        manager = await xep.get_session_manager()
        # The peer's list for this version may not have been fetched yet
        # (a message of the other version made it known).
        await xep.refresh_device_lists({slixmpp.JID(to)}, force_download=True)
        ns = NS[version]
        plaintext = envelope(body, self.boundjid.bare, to) if version == "2" else body.encode()
        messages, errors = await manager.encrypt(frozenset({to}), {ns: plaintext}, backend_priority_order=[ns])
        for error in errors:
            self.say(bot="encrypt_warning", error=str(error))
        for message in messages:
            if message.namespace != ns:
                continue
            element = (twomemo.etree if version == "2" else oldmemo.etree).serialize_message(message)
            stanza = self.make_message(mto=to, mtype="chat")
            stanza["body"] = FALLBACK
            stanza.xml.append(element)
            stanza.enable("store")
            stanza.send()
            self.say(bot="sent", to=to, body=body, version=version)

    async def ping(self):
        manager = await self.plugin["xep_0384"].get_session_manager()
        for _ in range(100):  # wait for the peer's device list
            await self.plugin["xep_0384"].refresh_device_lists({slixmpp.JID(self.args.ping)}, force_download=True)
            devices = await manager.get_device_information(self.args.ping)
            if any(NS[self.args.version] in d.namespaces for d in devices):
                break
            await asyncio.sleep(0.2)
        for i in range(self.args.count):
            await self.send_encrypted(self.args.ping, f"ping {i}", self.args.version)
            await asyncio.sleep(self.args.interval)

    def on_plain_message(self, msg):
        encrypted = any(msg.xml.find(f"{{{ns}}}encrypted") is not None for ns in NS.values())
        if msg["type"] in ("chat", "normal") and msg["body"] and not encrypted:
            self.say(bot="received_plain", **{"from": msg["from"].bare, "body": msg["body"]})

    async def on_message(self, msg):
        if msg["type"] not in ("chat", "normal"):
            return
        xep = self.plugin["xep_0384"]
        sender = msg["from"].bare
        found = [v for v, ns in NS.items() if msg.xml.find(f"{{{ns}}}encrypted") is not None]
        if not found:
            return
        version = "2" if "2" in found else "0.3"
        manager = await xep.get_session_manager()
        element = msg.xml.find(f"{{{NS[version]}}}encrypted")
        try:
            if version == "2":
                message = twomemo.etree.parse_message(element, sender)
            else:
                message = await oldmemo.etree.parse_message(element, sender, self.boundjid.bare, manager)
            plaintext, device, _ = await manager.decrypt(message)
        except Exception as e:  # the test asserts on what the bot saw
            self.say(bot="decrypt_error", error=f"{type(e).__name__}: {e}", version=version)
            return
        if plaintext is None:
            self.say(bot="key_transport", **{"from": sender, "device": device.device_id, "version": version})
            return
        body = open_envelope(plaintext, sender) if version == "2" else plaintext.decode()
        self.say(bot="received", **{"from": sender, "body": body, "version": version, "device": device.device_id})
        if self.args.ping:
            self.answers += 1
            if self.answers >= self.args.count:
                self.disconnect()
        else:
            await self.send_encrypted(sender, "echo: " + body, version)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--jid", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--ca", required=True)
    p.add_argument("--ping")
    p.add_argument("--version", default="2", choices=["0.3", "2"])
    p.add_argument("--count", type=int, default=3)
    p.add_argument("--interval", type=float, default=0, help="seconds between pings")
    p.add_argument("--lifetime", type=int, default=120)
    a = p.parse_args()
    bot = OmemoBot(a.jid, a.password, a)
    bot.ssl_context = ssl.create_default_context(cafile=a.ca)
    bot.connect(host="127.0.0.1", port=a.port)
    loop = asyncio.get_event_loop()
    loop.call_later(a.lifetime, bot.disconnect)
    loop.run_until_complete(bot.disconnected)


if __name__ == "__main__":
    sys.exit(main())
