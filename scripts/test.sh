#!/usr/bin/env bash
# Runs every test Waxwing has: the fmt, clippy and Kotlin/Swift parity gates,
# Rust unit and integration tests (the integration tests start their own
# Prosody on loopback), the Kotlin JVM tests and the Swift XCTests (Swift
# 6.0.3 in a Debian 13 root, see scripts/test-swift.sh), both against the
# real library and a real Prosody.
# Ends with one line "N passed, M failed".
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || { echo "0 passed, 1 failed"; exit 1; }
export WAXWING_TOOLS="${WAXWING_TOOLS:-$PWD/target/tools}"
# A one-off build gains nothing from incremental state but ~1 GB of disk.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

passed=0; failed=0
log=$(mktemp); trap 'rm -f "$log"' EXIT

# Lint gates, each counted as one test: formatting, and clippy with every
# warning an error (the brief's bar for every landing).
gate() {
  local name=$1; shift
  if "$@" >"$log" 2>&1; then
    passed=$((passed + 1)); echo "$name: ok"
  else
    failed=$((failed + 1)); echo "$name: FAILED"; tail -40 "$log"
  fi
}
gate "cargo fmt --check" cargo fmt --all --check
gate "cargo clippy -D warnings" cargo clippy -q --workspace --all-targets --features waxwing-core/fuzzing -- -D warnings
# Every public function of the Kotlin layer has its Swift counterpart, and
# every Kotlin test scenario its XCTest (and the other way round).
gate "kotlin/swift parity" python3 scripts/check-parity.py
# The Android-only JNI entry point, type-checked for aarch64-linux-android
# (no NDK here to link with).
gate "android jni check" bash scripts/check-android.sh

# The cli test runs the real example binary: build it first (cargo test
# builds examples only as test harnesses).
cargo build -q --workspace --examples 2>&1 | tail -20

# cargo prints "test result: ok. N passed; M failed; ..." per test binary.
cargo test --workspace --all-targets --features waxwing-core/fuzzing --no-fail-fast 2>&1 | tee "$log"
rust_status=${PIPESTATUS[0]}
while read -r p f; do passed=$((passed + p)); failed=$((failed + f)); done < <(
  sed -n 's/^test result: [a-zA-Z]*\. \([0-9]*\) passed; \([0-9]*\) failed.*/\1 \2/p' "$log")
if [ "$rust_status" != 0 ] && ! grep -q ' failed; ' "$log"; then failed=$((failed + 1)); fi

for extra in scripts/test-kotlin.sh scripts/test-swift.sh; do
  [ -f "$extra" ] || continue
  bash "$extra" 2>&1 | tee "$log"
  status=${PIPESTATUS[0]}
  line=$(grep -E '^[a-z]+: [0-9]+ passed, [0-9]+ failed' "$log" | tail -1)
  if [ -n "$line" ]; then
    p=$(echo "$line" | sed -E 's/.*: ([0-9]+) passed, ([0-9]+) failed.*/\1/')
    f=$(echo "$line" | sed -E 's/.*: ([0-9]+) passed, ([0-9]+) failed.*/\2/')
    passed=$((passed + p)); failed=$((failed + f))
  fi
  if [ "$status" != 0 ] && { [ -z "$line" ] || [ "${f:-0}" = 0 ]; }; then failed=$((failed + 1)); fi
done

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
