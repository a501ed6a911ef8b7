#!/usr/bin/env bash
# Benchmarks for docs/benchmarks.md (run: bash scripts/bench.sh):
#  1. login to a local Prosody: Waxwing (classic RFC 6120, SASL2 + Bind2
#     over STARTTLS and direct TLS, a FAST token, FAST + inline resumption;
#     wall time and engine-counted round trips) and tokio-xmpp 6 (STARTTLS)
#     in the same run, against the same server; then the same logins
#     through a loopback proxy adding 50 ms RTT (wall time / 50 ms is the
#     round trips each client needs, measured the same way for all);
#  2. peak RSS of a wake-up process against a store of 100k messages;
#     MAM catch-up of 10,000 messages, Waxwing and slixmpp in the same run;
#  3. the store (cargo bench -p waxwing-core --bench store);
#  4. OMEMO: encrypt + decrypt throughput (1 and 5 recipient devices) and
#     session establishment, Waxwing and python-omemo in the same run;
#  5. the stripped release cdylib size for this machine (x86_64).
# BENCH=login,wake,mam,store,omemo,size (the default: all) picks parts.
set -euo pipefail
cd "$(dirname "$0")/.."
want() { [[ ",${BENCH:-login,wake,mam,store,omemo,size}," == *",$1,"* ]]; }
bash scripts/setup.sh >/dev/null
command -v /usr/bin/time >/dev/null 2>&1 || { sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo; $sudo apt-get install -y -qq time >/dev/null; }
work=$(mktemp -d)
trap 'bash scripts/prosody.sh stop "$work/server"; rm -rf "$work"' EXIT
N=${N:-20}
N_SLOW=${N_SLOW:-7}
# A fresh account for every timed login: each login from a fresh store adds
# an OMEMO device whose bundle Prosody keeps in the account's PEP node, so
# reusing one account makes every login slower than the one before.
logins_per_round=6
accounts=()
for i in $(seq $(( (N + N_SLOW) * logins_per_round ))); do accounts+=("b$i:bench-pw"); done
WAXWING_WATCH_PID=$$ bash scripts/prosody.sh start "$work/server" bench:bench-pw peer:peer-pw "${accounts[@]}" > "$work/env"
c2s=$(sed -n 's/^C2S_PORT=//p' "$work/env"); direct=$(sed -n 's/^DIRECT_TLS_PORT=//p' "$work/env")
ca=$(sed -n 's/^CA=//p' "$work/env")

cargo build -q --release -p waxwing-core --example login_bench --example latency_proxy --example cli --example fill_store
(cd bench/tokio-xmpp-login && cargo build -q --release)

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
field() { sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p"; }

if want login; then
# Interleave the clients so all see the same server state.
waxwing_modes=("--classic" "--sasl2" "--sasl2 --direct-tls" "--fast --direct-tls" "--resume --direct-tls")
next_account=0
run_logins() { # PORT_STARTTLS PORT_DIRECT RUNS
  for _ in $(seq "$3"); do
    for mode in "${waxwing_modes[@]}"; do
      port=$1; [[ $mode == *direct* ]] && port=$2
      next_account=$((next_account + 1))
      # shellcheck disable=SC2086
      target/release/examples/login_bench "b$next_account@localhost" bench-pw "127.0.0.1:$port" "$ca" 1 $mode
    done
    next_account=$((next_account + 1))
    SSL_CERT_FILE="$ca" bench/tokio-xmpp-login/target/release/tokio-xmpp-login-bench "b$next_account@localhost" bench-pw "127.0.0.1:$1" 1
  done
}
clients="waxwing-classic-starttls waxwing-sasl2-starttls waxwing-sasl2-direct-tls waxwing-fast-direct-tls waxwing-resume-direct-tls tokio-xmpp"
run_logins "$c2s" "$direct" "$N" > "$work/login.jsonl"
for client in $clients; do
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
run_logins "$slow_c2s" "$slow_direct" "$N_SLOW" > "$work/login-slow.jsonl"
for client in $clients; do
  ms=$(grep "\"$client\"" "$work/login-slow.jsonl" | field login_ms | median)
  echo "{\"bench\":\"login_50ms_rtt\",\"client\":\"$client\",\"runs\":$N_SLOW,\"median_ms\":$ms,\"round_trips_by_wall_time\":$(awk "BEGIN{printf \"%.1f\", $ms/$RTT}")}"
done
kill $proxies 2>/dev/null || true
fi

if want wake; then
# Peak RSS of a wake-up process (the cli's `wake`, on its current-thread
# runtime) against a store of 100k messages: resume, fetch one new message.
cargo build -q --release -p waxwing-core --example cli --example fill_store
export WAXWING_STORE_KEY=$(printf 'ab%.0s' $(seq 32))
wake_store="$work/wake-store"
target/release/examples/fill_store "$wake_store" 100000
cli() { WAXWING_PASSWORD=$1 target/release/examples/cli --jid "$2" --server "127.0.0.1:$c2s" --ca "$ca" "${@:3}"; }
cli bench-pw bench@localhost --store "$wake_store" listen --timeout 1 > /dev/null
cli peer-pw peer@localhost send bench@localhost "wake up" > /dev/null
/usr/bin/time -v target/release/examples/cli --jid bench@localhost --server "127.0.0.1:$c2s" --ca "$ca" \
  --store "$wake_store" wake --deadline 10 > "$work/wake.out" 2> "$work/wake.time"
rss_kb=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$work/wake.time")
outcome=$(tail -1 "$work/wake.out")
echo "{\"bench\":\"wake_up_peak_rss\",\"store_messages\":100000,\"max_rss_kib\":$rss_kb,\"mib\":$(awk "BEGIN{printf \"%.1f\", $rss_kb/1024}"),\"items\":$(grep -c notification "$work/wake.out"),\"outcome\":$outcome}"
fi

if want mam; then
# MAM catch-up of 10,000 archived messages: Waxwing stores them (forward
# from its cursor) and slixmpp fetches the same archive, on a server whose
# pages hold 100 and which keeps no offline copies (so nothing comes live).
mam_server="$work/mam-server"
WAXWING_PROSODY_EXTRA='max_archive_query_results = 100
storage_archive_item_limit = 100000
modules_disabled = { "s2s"; "offline" }' \
  WAXWING_WATCH_PID=$$ bash scripts/prosody.sh start "$mam_server" alice:alice-pw bob:bob-pw > "$work/mam-env"
trap 'bash scripts/prosody.sh stop "$mam_server"; bash scripts/prosody.sh stop "$work/server"; rm -rf "$work"' EXIT
mport=$(sed -n 's/^C2S_PORT=//p' "$work/mam-env"); mca=$(sed -n 's/^CA=//p' "$work/mam-env")
py="${WAXWING_TOOLS:-target/tools}/venv/bin/python"
peer() { "$py" scripts/mam_peer.py "$1" --port "$mport" --ca "$mca" "${@:2}"; }
cargo build -q --release -p waxwing-core --example mam_bench
peer send --jid bob@localhost --password bob-pw --to alice@localhost --count 1 > /dev/null
WAXWING_PASSWORD=alice-pw target/release/examples/mam_bench alice@localhost "127.0.0.1:$mport" "$mca" "$work/mam-store" --prime
peer send --jid bob@localhost --password bob-pw --to alice@localhost --count 10000 > /dev/null
cpu_s() { awk -F': ' '/User time|System time/ {t += $2} END {print t}' "$1"; }
WAXWING_PASSWORD=alice-pw /usr/bin/time -v target/release/examples/mam_bench alice@localhost "127.0.0.1:$mport" "$mca" \
  "$work/mam-store" > "$work/mam-waxwing.out" 2> "$work/mam-waxwing.time"
/usr/bin/time -v "$py" scripts/mam_peer.py fetch --jid alice@localhost --password alice-pw --port "$mport" --ca "$mca" \
  > "$work/mam-slixmpp.out" 2> "$work/mam-slixmpp.time"
for client in waxwing slixmpp; do
  line=$(tail -1 "$work/mam-$client.out")
  count=$(echo "$line" | sed -n 's/.*"\(stored\|fetched\)": *\([0-9]*\).*/\2/p')
  cpu=$(cpu_s "$work/mam-$client.time")
  echo "{\"bench\":\"mam_catch_up\",\"result\":$line,\"process_cpu_s\":$cpu,\"cpu_us_per_message\":$(awk "BEGIN{printf \"%.0f\", $cpu*1000000/$count}")}"
done
fi

if want store; then
cargo bench -q -p waxwing-core --bench store 2>/dev/null
fi

if want omemo; then
cargo build -q --release -p waxwing-core --example omemo_bench
target/release/examples/omemo_bench "${OMEMO_MESSAGES:-10000}" "${OMEMO_SESSIONS:-1000}"
"$py" scripts/omemo_bench.py "${OMEMO_PY_MESSAGES:-1000}" "${OMEMO_PY_SESSIONS:-200}"
fi

if want size; then
cargo build -q --release -p waxwing-ffi
size=$(stat -c %s target/release/libwaxwing_ffi.so)
echo "{\"bench\":\"cdylib_size\",\"target\":\"$(rustc -vV | sed -n 's/^host: //p')\",\"bytes\":$size,\"mib\":$(awk "BEGIN{printf \"%.2f\", $size/1048576}")}"
fi

