#!/usr/bin/env python3
"""python-omemo as an out-of-process oracle for Waxwing's OMEMO tests.

Drives the oldmemo (OMEMO 0.3) and twomemo (OMEMO 2) backends directly, with
no XMPP: one JSON request per stdin line, one JSON answer per stdout line.
Bytes travel as base64; bundles as XML (python-omemo's own serialisers and
schema-checked parsers). Keys and sessions live in memory for the process.

Requests ({"op": ..., ...}):
  new        name, version ("0.3"|"2"), [sign_bit: true|false]
             -> device_id, bundle (XML), ik (our identity, Ed25519, base64)
  encrypt    name, to_jid, to_device, [bundle XML to start a session], plaintext
             -> data, kex, payload, iv
  empty      like encrypt without plaintext: a key-transport message -> data, kex
  decrypt    name, from_jid, from_device, data, kex, payload, [iv]
             -> plaintext
Errors come back as {"error": "<exception class>: <message>"}.
oldmemo is AGPL-3.0: this script only runs it as a test peer.
"""
import asyncio
import base64
import json
import secrets
import sys
import xml.etree.ElementTree as ET

import oldmemo
import oldmemo.etree
import oldmemo.oldmemo
import twomemo
import twomemo.etree
import twomemo.twomemo
from omemo.storage import Just, Nothing, Storage
from omemo.session import Initiation

JID = "oracle@localhost"


class MemoryStorage(Storage):
    def __init__(self):
        super().__init__(True)
        self.data = {}

    async def _load(self, key):
        return Just(self.data[key]) if key in self.data else Nothing()

    async def _store(self, key, value):
        self.data[key] = value

    async def _delete(self, key):
        self.data.pop(key, None)


def b64(data):
    return base64.b64encode(data).decode("ascii")


def unb64(text):
    return base64.b64decode(text) if text else b""


class Peer:
    def __init__(self, version):
        self.version = version
        self.module = oldmemo if version == "0.3" else twomemo
        self.impl = oldmemo.oldmemo if version == "0.3" else twomemo.twomemo
        self.storage = MemoryStorage()
        backend_class = oldmemo.Oldmemo if version == "0.3" else twomemo.Twomemo
        self.backend = backend_class(self.storage)
        self.device_id = secrets.randbelow(2**31 - 1) + 1

    async def bundle(self):
        await self.backend.generate_pre_keys(100 - await self.backend.get_num_visible_pre_keys())
        bundle = await self.backend.get_bundle(JID, self.device_id)
        return bundle

    def parse_bundle(self, xml, jid, device):
        return self.module.etree.parse_bundle(ET.fromstring(xml), jid, device)

    async def encrypt(self, req, plaintext):
        jid, device = req["to_jid"], req["to_device"]
        if plaintext is None:
            content, key_material = await self.backend.encrypt_empty()
        else:
            content, key_material = await self.backend.encrypt_plaintext(plaintext)
        session = await self.backend.load_session(jid, device)
        if session is None:
            bundle = self.parse_bundle(req["bundle"], jid, device)
            session, encrypted = await self.backend.build_session_active(jid, device, bundle, key_material)
        else:
            encrypted = await self.backend.encrypt_key_material(session, key_material)
        await self.backend.store_session(session)
        data = encrypted.serialize()
        kex = session.initiation is Initiation.ACTIVE and not session.confirmed
        if kex:
            data = session.key_exchange.serialize(data)
            if isinstance(data, tuple):  # oldmemo also returns the sign bit
                data = data[0]
        answer = {"data": b64(data), "kex": kex, "payload": None if content.empty else b64(content.ciphertext)}
        if self.version == "0.3":
            answer["iv"] = None if content.empty else b64(content.initialization_vector)
        return answer

    async def decrypt(self, req):
        jid, device = req["from_jid"], req["from_device"]
        data = unb64(req["data"])
        impl = self.impl
        session = await self.backend.load_session(jid, device)
        if req["kex"]:
            if self.version == "0.3":
                key_exchange, message = impl.KeyExchangeImpl.parse(data, False)
            else:
                key_exchange, message = impl.KeyExchangeImpl.parse(data)
            encrypted = impl.EncryptedKeyMaterialImpl.parse(message, jid, device)
            if session is not None and session.key_exchange.builds_same_session(key_exchange):
                key_material = await self.backend.decrypt_key_material(session, encrypted)
            else:
                session, key_material = await self.backend.build_session_passive(
                    jid, device, key_exchange, encrypted)
        else:
            if session is None:
                raise RuntimeError("no session")
            encrypted = impl.EncryptedKeyMaterialImpl.parse(data, jid, device)
            key_material = await self.backend.decrypt_key_material(session, encrypted)
        await self.backend.store_session(session)
        if not req.get("payload"):
            return {"plaintext": None}
        if self.version == "0.3":
            content = impl.ContentImpl(unb64(req["payload"]), unb64(req["iv"]))
        else:
            content = impl.ContentImpl(unb64(req["payload"]))
        return {"plaintext": b64(await self.backend.decrypt_plaintext(content, key_material))}


async def handle(peers, req):
    op = req["op"]
    if op == "new":
        while True:
            peer = Peer(req["version"])
            bundle = await peer.bundle()
            sign_bit = bool(bundle.identity_key[31] & 0x80)
            if req.get("sign_bit") is None or req["sign_bit"] == sign_bit:
                break
        peers[req["name"]] = peer
        xml = ET.tostring(peer.module.etree.serialize_bundle(bundle), encoding="unicode")
        return {"device_id": peer.device_id, "bundle": xml, "ik": b64(bundle.identity_key),
                "sign_bit": sign_bit}
    peer = peers[req["name"]]
    if op == "encrypt":
        return await peer.encrypt(req, unb64(req["plaintext"]))
    if op == "empty":
        return await peer.encrypt(req, None)
    if op == "decrypt":
        return await peer.decrypt(req)
    raise ValueError(f"unknown op {op}")


async def main():
    peers = {}
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            answer = await handle(peers, json.loads(line))
        except Exception as e:  # the test asserts on the typed outcome
            answer = {"error": f"{type(e).__name__}: {e}"}
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
