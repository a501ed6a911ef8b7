"""slixmpp side of the MAM catch-up benchmark (scripts/bench.sh).

  send  --jid J --to T --count N   send N chat messages to T, then leave
  fetch --jid J                    page through J's whole archive (MAM,
                                   100 per page) and print the count and the
                                   wall time, as one JSON line
Password from --password; --port and --ca reach the local server."""
import argparse, asyncio, json, ssl, sys, time
import slixmpp


class Peer(slixmpp.ClientXMPP):
    def __init__(self, a):
        super().__init__(a.jid, a.password)
        self.a = a
        for plugin in ("xep_0030", "xep_0059", "xep_0313"):
            self.register_plugin(plugin)
        self.add_event_handler("session_start", self.start)

    async def start(self, _):
        if self.a.command == "send":
            for i in range(self.a.count):
                self.send_message(mto=self.a.to, mbody=f"archived {i:05}", mtype="chat")
            # A round trip after the burst: the server has processed it all.
            await self.plugin["xep_0030"].get_info(jid=self.boundjid.domain)
            print(json.dumps({"sent": self.a.count}), flush=True)
        else:
            started = time.monotonic()
            count = 0
            async for _message in self.plugin["xep_0313"].iterate(rsm={"max": 100}):
                count += 1
            elapsed = time.monotonic() - started
            print(json.dumps({"client": "slixmpp", "fetched": count, "seconds": round(elapsed, 3),
                              "messages_per_s": round(count / elapsed)}), flush=True)
        self.disconnect()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("command", choices=["send", "fetch"])
    p.add_argument("--jid", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--ca", required=True)
    p.add_argument("--to")
    p.add_argument("--count", type=int, default=0)
    a = p.parse_args()
    peer = Peer(a)
    peer.ssl_context = ssl.create_default_context(cafile=a.ca)
    peer.connect(host="127.0.0.1", port=a.port)
    loop = asyncio.get_event_loop()
    loop.call_later(600, peer.disconnect)
    loop.run_until_complete(peer.disconnected)


if __name__ == "__main__":
    sys.exit(main())
