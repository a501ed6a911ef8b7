#!/usr/bin/env python3
"""python-omemo doing what core/examples/omemo_bench.rs does, for
docs/benchmarks.md: encrypt + decrypt throughput (1 and 5 recipient
devices, sessions established beforehand) and session establishment
(bundle parse and verification, X3DH both sides, first message decrypted).
Backends are driven directly (no XMPP, no storage writes in the loops).
Usage: omemo_bench.py [MESSAGES] [SESSIONS]; prints one JSON line per figure.
"""
import asyncio
import json
import sys
import time
import xml.etree.ElementTree as ET

import oldmemo
import oldmemo.etree
import oldmemo.oldmemo
import twomemo
import twomemo.etree
import twomemo.twomemo

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from omemo_oracle import MemoryStorage  # noqa: E402

BODY = "A typical chat message of some sixty characters, give or take.".encode()
VERSIONS = {"omemo2": (twomemo.Twomemo, twomemo.etree), "omemo0.3": (oldmemo.Oldmemo, oldmemo.etree)}


async def device(version, device_id):
    backend_class, etree = VERSIONS[version]
    backend = backend_class(MemoryStorage())
    await backend.generate_pre_keys(100)
    bundle = await backend.get_bundle("d@localhost", device_id)
    return backend, ET.tostring(etree.serialize_bundle(bundle), encoding="unicode")


async def establish(version, alice, bob, bob_xml, bob_id):
    etree = VERSIONS[version][1]
    bundle = etree.parse_bundle(ET.fromstring(bob_xml), "b@localhost", bob_id)
    _, key_material = await alice.encrypt_empty()
    session, encrypted = await alice.build_session_active("b@localhost", bob_id, bundle, key_material)
    passive, _ = await bob.build_session_passive("a@localhost", 1, session.key_exchange, encrypted)
    return session, passive


async def main():
    messages = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    sessions = int(sys.argv[2]) if len(sys.argv) > 2 else 500
    for version in VERSIONS:
        for recipients in (1, 5):
            alice, _ = await device(version, 1)
            pairs = []
            for i in range(recipients):
                bob, bob_xml = await device(version, 100 + i)
                out, back = await establish(version, alice, bob, bob_xml, 100 + i)
                # Bob answers so that Alice's session is confirmed.
                _, km = await bob.encrypt_empty()
                reply = await bob.encrypt_key_material(back, km)
                await alice.decrypt_key_material(out, reply)
                pairs.append((out, bob, back))
            start = time.perf_counter()
            for _ in range(messages):
                content, key_material = await alice.encrypt_plaintext(BODY)
                for out, bob, back in pairs:
                    encrypted = await alice.encrypt_key_material(out, key_material)
                    received = await bob.decrypt_key_material(back, encrypted)
                    assert await bob.decrypt_plaintext(content, received) == BODY
            secs = time.perf_counter() - start
            print(json.dumps({"bench": "omemo_encrypt_decrypt", "client": "python-omemo", "version": version,
                              "recipient_devices": recipients, "messages": messages,
                              "messages_per_s": round(messages / secs)}), flush=True)
        alice, _ = await device(version, 1)
        bobs = [await device(version, 100 + i) for i in range(min(sessions, 50))]
        start = time.perf_counter()
        for i in range(sessions):
            bob, bob_xml = bobs[i % len(bobs)]
            await establish(version, alice, bob, bob_xml, 100 + i % len(bobs))
        secs = time.perf_counter() - start
        print(json.dumps({"bench": "omemo_session_establishment", "client": "python-omemo", "version": version,
                          "sessions": sessions, "sessions_per_s": round(sessions / secs)}), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
