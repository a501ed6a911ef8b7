#!/usr/bin/env bash
# Benchmarks for docs/benchmarks.md (run: bash scripts/bench.sh):
#  1. login to a local Prosody: Waxwing (STARTTLS and direct TLS, wall time
#     and engine-counted round trips) and tokio-xmpp 6 (STARTTLS) in the
#     same run, against the same server;
#     The same logins again through a loopback proxy adding 50 ms RTT: wall
#     time there divided by 50 ms is the round trips each client needs,
#     measured the same way for both;
#  2. the store (cargo bench -p waxwing-core --bench store);
#  3. the stripped release cdylib size for this machine (x86_64).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >/dev/null
N=${N:-20}
work=$(mktemp -d)
trap 'bash scripts/prosody.sh stop "$work/server"; rm -rf "$work"' EXIT
WAXWING_WATCH_PID=$$ bash scripts/prosody.sh start "$work/server" bench:bench-pw > "$work/env"
c2s=$(sed -n 's/^C2S_PORT=//p' "$work/env"); direct=$(sed -n 's/^DIRECT_TLS_PORT=//p' "$work/env")
ca=$(sed -n 's/^CA=//p' "$work/env")

cargo build -q --release -p waxwing-core --example login_bench --example latency_proxy
(cd bench/tokio-xmpp-login && cargo build -q --release)

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
field() { sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p"; }

# Interleave the clients so both see the same server state.
for _ in $(seq "$N"); do
  target/release/examples/login_bench bench@localhost bench-pw "127.0.0.1:$c2s" "$ca" 1
  target/release/examples/login_bench bench@localhost bench-pw "127.0.0.1:$direct" "$ca" 1 --direct-tls
  SSL_CERT_FILE="$ca" bench/tokio-xmpp-login/target/release/tokio-xmpp-login-bench bench@localhost bench-pw "127.0.0.1:$c2s" 1
done > "$work/login.jsonl"
for client in waxwing-starttls waxwing-direct-tls tokio-xmpp; do
  ms=$(grep "\"$client\"" "$work/login.jsonl" | field login_ms | median)
  rt=$(grep "\"$client\"" "$work/login.jsonl" | field xmpp_round_trips | median)
  echo "{\"bench\":\"login\",\"client\":\"$client\",\"runs\":$N,\"median_ms\":$ms,\"xmpp_round_trips\":\"${rt:-not counted}\"}"
done

# Through 50 ms of round-trip latency (the proxy stops by itself, and by PID).
RTT=50
target/release/examples/latency_proxy "$c2s" $RTT 900 > "$work/proxy-starttls" & proxies=$!
target/release/examples/latency_proxy "$direct" $RTT 900 > "$work/proxy-direct" & proxies="$proxies $!"
trap 'kill $proxies 2>/dev/null; bash scripts/prosody.sh stop "$work/server"; rm -rf "$work"' EXIT
for _ in $(seq 50); do
  [ -s "$work/proxy-starttls" ] && [ -s "$work/proxy-direct" ] && break; sleep 0.1
done
slow_c2s=$(sed -n 's/^PROXY_PORT=//p' "$work/proxy-starttls")
slow_direct=$(sed -n 's/^PROXY_PORT=//p' "$work/proxy-direct")
N_SLOW=${N_SLOW:-7}
for _ in $(seq "$N_SLOW"); do
  target/release/examples/login_bench bench@localhost bench-pw "127.0.0.1:$slow_c2s" "$ca" 1
  target/release/examples/login_bench bench@localhost bench-pw "127.0.0.1:$slow_direct" "$ca" 1 --direct-tls
  SSL_CERT_FILE="$ca" bench/tokio-xmpp-login/target/release/tokio-xmpp-login-bench bench@localhost bench-pw "127.0.0.1:$slow_c2s" 1
done > "$work/login-slow.jsonl"
for client in waxwing-starttls waxwing-direct-tls tokio-xmpp; do
  ms=$(grep "\"$client\"" "$work/login-slow.jsonl" | field login_ms | median)
  echo "{\"bench\":\"login_50ms_rtt\",\"client\":\"$client\",\"runs\":$N_SLOW,\"median_ms\":$ms,\"round_trips_by_wall_time\":$(awk "BEGIN{printf \"%.1f\", $ms/$RTT}")}"
done
kill $proxies 2>/dev/null || true

cargo bench -q -p waxwing-core --bench store 2>/dev/null

cargo build -q --release -p waxwing-ffi
size=$(stat -c %s target/release/libwaxwing_ffi.so)
echo "{\"bench\":\"cdylib_size\",\"target\":\"$(rustc -vV | sed -n 's/^host: //p')\",\"bytes\":$size,\"mib\":$(awk "BEGIN{printf \"%.2f\", $size/1048576}")}"
