#!/usr/bin/env bash
# Runs the chaos test (core/tests/integration/chaos.rs) RUNS times in a row and keeps the
# output (and Prosody's log) of every failing run, to hunt ordering or
# delivery bugs that show only now and then. Not part of CI.
#
#   bash scripts/chaos-loop.sh [RUNS] [--hog]
#
# --hog keeps one core busy with a CPU hog beside the test, as a loaded CI
# machine would. Logs go to target/chaos-loop/run-N.log (+ run-N.prosody.log).
set -uo pipefail
cd "$(dirname "$0")/.."
runs="${1:-10}"
hog=0
[ "${2:-}" = "--hog" ] && hog=1
out="$PWD/target/chaos-loop"
mkdir -p "$out"
export WAXWING_TOOLS="${WAXWING_TOOLS:-$PWD/target/tools}"
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

# Build once and run the binaries directly, so editing the tree meanwhile
# does not change what the later runs test.
cargo build -q -p waxwing-core --example chaos_client
test_bin=$(cargo test -p waxwing-core --test integration --no-run 2>&1 \
  | sed -n 's/.*Executable tests\/integration\/main.rs (\(.*\))/\1/p' | tail -1)
[ -x "$test_bin" ] || { echo "chaos test binary not found"; exit 1; }

hog_pid=""
stop_hog() { [ -n "$hog_pid" ] && kill "$hog_pid" 2>/dev/null; hog_pid=""; }
trap stop_hog EXIT
if [ "$hog" = 1 ]; then
  # One busy loop; it ends by itself after an hour if this script is killed.
  timeout 3600 sh -c 'while :; do :; done' &
  hog_pid=$!
fi

passed=0; failed=0
for i in $(seq 1 "$runs"); do
  log="$out/run-$i.log"
  if WAXWING_KEEP_SERVER_LOG="$out/run-$i.prosody.log" \
    "$test_bin" chaos:: --nocapture >"$log" 2>&1; then
    passed=$((passed + 1))
    rm -f "$log" "$out/run-$i.prosody.log"
    echo "run $i: passed"
  else
    failed=$((failed + 1))
    echo "run $i: FAILED (log: $log)"
    grep -m3 -E 'panicked|first difference' "$log" | cut -c1-400
  fi
done
echo "chaos: $passed passed, $failed failed (hog: $hog)"
[ "$failed" = 0 ]
