#!/usr/bin/env bash
# Kotlin JVM tests: the generated bindings + android/ thin layer, compiled
# WAXWING_KOTLIN_TEST=<method> runs one test.
# and run against the real library and a real Prosody on loopback.
# Ends with "kotlin: N passed, M failed".
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/kotlin-env.sh

"$KOTLINC" -nowarn android/src/test/kotlin/im/waxwing/*.kt \
  -cp "$WAXWING_JAR:$KT_CP:$KT_LIB/kotlin-test.jar:$KT_LIB/kotlin-test-junit.jar:/usr/share/java/junit4.jar" \
  -d "$KT_OUT/tests.jar" 2>&1 | grep -v '^warning' || true
[ -f "$KT_OUT/tests.jar" ] || { echo "kotlin: 0 passed, 1 failed"; exit 1; }

server=$(mktemp -d)
trap 'bash scripts/prosody.sh stop "$server"; rm -rf "$server"' EXIT
WAXWING_WATCH_PID=$$ bash scripts/prosody.sh start "$server" kalice:pw1 kbob:pw2 > "$server/env"
c2s=$(sed -n 's/^C2S_PORT=//p' "$server/env"); ca=$(sed -n 's/^CA=//p' "$server/env")
component=$(sed -n 's/^COMPONENT_PORT=//p' "$server/env")
# The push app server (push.localhost) the push tests register with.
"$TOOLS/venv/bin/python" scripts/push_app_server.py --jid push.localhost \
  --secret push-component-secret --port "$component" --out "$server/pushes.jsonl" \
  --lifetime 600 > "$server/app-server.log" 2>&1 &
app_server=$!
trap 'kill $app_server 2>/dev/null; bash scripts/prosody.sh stop "$server"; rm -rf "$server"' EXIT
for _ in $(seq 100); do grep -q online "$server/app-server.log" 2>/dev/null && break; sleep 0.1; done

java -Djna.library.path="$LIB_DIR" -Djava.library.path="$LIB_DIR" -Dwaxwing.c2s="$c2s" -Dwaxwing.ca="$ca" \
  -Dwaxwing.pushes="$server/pushes.jsonl" -Dwaxwing.test="${WAXWING_KOTLIN_TEST:-}" \
  -cp "$KT_OUT/tests.jar:$WAXWING_JAR:$KT_CP:$KT_LIB/kotlin-test.jar:$KT_LIB/kotlin-test-junit.jar:/usr/share/java/junit4.jar:/usr/share/java/hamcrest-core.jar" \
  im.waxwing.TestMainKt
