#!/usr/bin/env bash
# The demo: starts a local Prosody (two accounts), a slixmpp echo bot as
# bob, and a Kotlin JVM program using the Waxwing bindings as alice. Alice
# chats, the process exits, and a second process reads the history back
# from the encrypted store. Everything started here is stopped by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export WAXWING_TOOLS="${WAXWING_TOOLS:-$PWD/target/tools}"
source scripts/kotlin-env.sh

work=$(mktemp -d)
bot_pid=""
cleanup() {
  [ -n "$bot_pid" ] && kill "$bot_pid" 2>/dev/null || true
  bash scripts/prosody.sh stop "$work/server"
  rm -rf "$work"
}
trap cleanup EXIT

echo "== starting Prosody on 127.0.0.1"
WAXWING_WATCH_PID=$$ bash scripts/prosody.sh start "$work/server" alice:alice-pw bob:bob-pw > "$work/env"
c2s=$(sed -n 's/^C2S_PORT=//p' "$work/env"); ca=$(sed -n 's/^CA=//p' "$work/env")

echo "== starting the slixmpp peer (bob@localhost)"
"$WAXWING_TOOLS/venv/bin/python" scripts/echo_bot.py --jid bob@localhost --password bob-pw \
  --port "$c2s" --ca "$ca" --lifetime 120 > "$work/bot.log" 2>&1 &
bot_pid=$!
for _ in $(seq 100); do grep -q '"online"' "$work/bot.log" && break; sleep 0.1; done

echo "== compiling the Kotlin demo"
"$KOTLINC" -nowarn android/demo/Demo.kt -cp "$WAXWING_JAR:$KT_CP" -d "$work/demo.jar" 2>&1 | grep -v '^warning' || true
run() {
  java -Djna.library.path="$LIB_DIR" -Ddemo.jid=alice@localhost -Ddemo.password=alice-pw \
    -Ddemo.port="$c2s" -Ddemo.ca="$ca" -Ddemo.store="$work/alice-store" -Ddemo.peer=bob@localhost \
    -cp "$work/demo.jar:$WAXWING_JAR:$KT_CP" im.waxwing.demo.DemoKt "$1"
}
echo "== Kotlin client chats with the slixmpp peer"
run chat
echo "== restart: a new JVM process reads the history from the encrypted store"
run history
echo "== the store on disk is ciphertext:"
if grep -q "Hello from Kotlin" "$work/alice-store/waxwing.db"; then echo "PLAINTEXT FOUND"; exit 1; fi
echo "   no message text found in $(du -h "$work/alice-store/waxwing.db" | cut -f1) of waxwing.db"
