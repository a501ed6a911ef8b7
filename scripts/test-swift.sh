#!/usr/bin/env bash
# Swift tests on a real compiler. Debian 12 has no Swift, Debian 13 packages
# Swift 6.0.3: this script keeps a Debian 13 root made with debootstrap (in
# one fixed place outside target/, reused by later runs), builds the library
# on the host, generates the Swift bindings, assembles a Linux-only SwiftPM
# package in target/swift-pkg (the generated Swift, a module map for the
# generated header, ios/Sources/Waxwing and ios/Tests/WaxwingTests) in Swift 6
# language mode, starts the test Prosody and the push app server on loopback
# and runs the XCTests in the root against them through the real library.
# Ends with "swift: N passed, M failed" (from XCTest's own counts).
#
# Needs root (or sudo) for debootstrap, mount and chroot. Every step checks
# first; the root's mounts are undone by path when the script exits.
#   WAXWING_SWIFT_ROOT   where the root lives (default /var/cache/waxwing-swift-root)
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS="${WAXWING_TOOLS:-$PWD/target/tools}"
ROOT="${WAXWING_SWIFT_ROOT:-/var/cache/waxwing-swift-root}"
PKG="$PWD/target/swift-pkg"
IN_ROOT=/waxwing-pkg            # where $PKG appears inside the root
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
fail() { echo "test-swift: $*" >&2; echo "swift: 0 passed, 1 failed"; exit 1; }
started=$(date +%s)
# Turn signals into an exit, so the EXIT trap (which unmounts) runs.
trap 'exit 129' HUP; trap 'exit 130' INT; trap 'exit 143' TERM

# --- the Debian 13 root -----------------------------------------------------

# One run at a time per root: runs share its mount points.
lock="$ROOT.lock"; [ -w "$(dirname "$ROOT")" ] || lock="/tmp/$(basename "$ROOT").lock"
exec 9>"$lock"
as_root true
flock -w 900 9 || fail "another Swift run holds $lock"

mount_points() { echo "$ROOT$IN_ROOT" "$ROOT/sys" "$ROOT/proc" "$ROOT/dev"; }
unmount_root() {
  local m
  for m in $(mount_points); do
    mountpoint -q "$m" 2>/dev/null || continue
    as_root umount "$m" 2>/dev/null || as_root umount -l "$m" || echo "test-swift: could not unmount $m" >&2
  done
}
# Removes a directory only when nothing is mounted below it (a bind-mounted
# /dev inside would otherwise take the host's /dev with it).
safe_remove() {
  local dir=$1 m
  [ -e "$dir" ] || return 0
  under() { findmnt -rn -o TARGET | awk -v d="$dir/" 'index($0, d) == 1' | sort -r; }
  for m in $(under); do as_root umount "$m" || as_root umount -l "$m"; done
  [ -z "$(under)" ] || fail "mounts remain under $dir; not removing it"
  as_root rm -rf --one-file-system "$dir"
}

debian_mirror() {
  local src
  src=$(ls /etc/apt/sources.list.d/debian.sources 2>/dev/null || ls /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1 || true)
  if [ -n "$src" ]; then
    # The first stanza's first URI (one process, no pipe to break).
    awk 'BEGIN { RS = "" } NR == 1 { n = split($0, l, "\n")
      for (i = 1; i <= n; i++) if (l[i] ~ /^URIs:/) { split(l[i], w, /[ \t]+/); print w[2]; exit } }' "$src"
  else
    grep -m1 '^deb ' /etc/apt/sources.list | awk '{ for (i = 2; i <= NF; i++) if ($i !~ /^\[/ && $i !~ /\]$/) { print $i; exit } }'
  fi
}

if [ ! -f "$ROOT/.waxwing-bootstrapped" ]; then
  command -v debootstrap >/dev/null 2>&1 || {
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq debootstrap >/dev/null
  }
  mirror=$(debian_mirror)
  [ -n "$mirror" ] || fail "no Debian mirror found in /etc/apt/sources.list.d or /etc/apt/sources.list"
  echo "test-swift: debootstrap trixie from $mirror into $ROOT"
  # Into a side directory first, so a half-made root is never mistaken for one.
  # ca-certificates: the root's apt needs it when the mirror is https.
  safe_remove "$ROOT.partial"
  [ ! -e "$ROOT" ] || fail "$ROOT exists but was not made by this script; move it away or set WAXWING_SWIFT_ROOT"
  mkdir -p target
  as_root debootstrap --variant=minbase --include=ca-certificates trixie "$ROOT.partial" "$mirror" > target/swift-debootstrap.log 2>&1 \
    || { tail -20 target/swift-debootstrap.log; safe_remove "$ROOT.partial"; fail "debootstrap failed"; }
  as_root touch "$ROOT.partial/.waxwing-bootstrapped"
  as_root mv "$ROOT.partial" "$ROOT"
fi

trap "trap '' HUP INT TERM; unmount_root" EXIT
as_root mkdir -p "$ROOT$IN_ROOT"
mountpoint -q "$ROOT/proc" || as_root mount -t proc proc "$ROOT/proc"   # Swift reads /proc/self/exe
mountpoint -q "$ROOT/dev" || as_root mount --bind /dev "$ROOT/dev"
mountpoint -q "$ROOT/sys" || as_root mount -t sysfs sys "$ROOT/sys"

in_root() { as_root chroot "$ROOT" /usr/bin/env -i HOME=/root PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin LANG=C.UTF-8 "$@"; }
if ! in_root swift --version >/dev/null 2>&1; then
  mkdir -p target
  echo "test-swift: installing swiftlang in $ROOT"
  # libc6-dev: without it the linker misses Scrt1.o/crti.o.
  { in_root apt-get update -qq \
    && in_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      swiftlang libc6-dev libstdc++-14-dev \
    && in_root apt-get clean; } > target/swift-root-apt.log 2>&1 \
    || { tail -20 target/swift-root-apt.log; fail "installing swiftlang in $ROOT failed"; }
fi
in_root swift --version 2>&1 | sed -n 1p   # sed reads it all: no SIGPIPE

# --- the library and the Linux test package ---------------------------------

cargo build -q -p waxwing-ffi
cargo build -q -p waxwing-ffi --features cli --bin uniffi-bindgen
gen=target/swift-gen; rm -rf "$gen"
target/debug/uniffi-bindgen generate --library target/debug/libwaxwing_ffi.so --language swift \
  --no-format --config uniffi.toml --out-dir "$gen" >/dev/null

# Copies a file only when it changed, so SwiftPM rebuilds only what changed.
sync_file() { cmp -s "$1" "$2" 2>/dev/null || { mkdir -p "$(dirname "$2")"; cp "$1" "$2"; }; }
# Makes directory $2 hold exactly the files $3... (sources dropped upstream go).
sync_dir() {
  local dest=$1 f; shift; mkdir -p "$dest"
  for f in "$dest"/*.swift; do
    [ -e "$f" ] || continue
    printf '%s\n' "$@" | grep -qx ".*/$(basename "$f")" || rm -f "$f"
  done
  for f in "$@"; do sync_file "$f" "$dest/$(basename "$f")"; done
}
# The same layout as the Apple package: generated Swift in Sources/Waxwing/Generated.
sync_dir "$PKG/Sources/Waxwing/Generated" "$gen"/*.swift
sync_dir "$PKG/Sources/Waxwing" ios/Sources/Waxwing/*.swift
sync_dir "$PKG/Tests/WaxwingTests" ios/Tests/WaxwingTests/*.swift
sync_file "$gen/WaxwingFFI.h" "$PKG/Sources/WaxwingFFI/WaxwingFFI.h"
sync_file target/debug/libwaxwing_ffi.so "$PKG/lib/libwaxwing_ffi.so"
# uniffi's own module map says `use "Darwin"`; Linux gets a plain one.
cat > "$PKG/Sources/WaxwingFFI/module.modulemap.new" <<'MAP'
module WaxwingFFI {
    header "WaxwingFFI.h"
    link "waxwing_ffi"
    export *
}
MAP
cat > "$PKG/Package.swift.new" <<SWIFT
// swift-tools-version:6.0
// Generated by scripts/test-swift.sh: the Linux test package. Same sources as
// ios/Package.swift; the library comes as a shared object instead of an
// xcframework. Swift 6 language mode (strict concurrency).
import PackageDescription

let lib = "$IN_ROOT/lib"
let package = Package(
    name: "WaxwingLinux",
    products: [.library(name: "Waxwing", targets: ["Waxwing"])],
    targets: [
        .systemLibrary(name: "WaxwingFFI", path: "Sources/WaxwingFFI"),
        .target(
            name: "Waxwing", dependencies: ["WaxwingFFI"],
            linkerSettings: [.unsafeFlags(["-L\(lib)", "-Xlinker", "-rpath", "-Xlinker", lib])]
        ),
        .testTarget(name: "WaxwingTests", dependencies: ["Waxwing"]),
    ],
    swiftLanguageModes: [.v6]
)
SWIFT
for f in Sources/WaxwingFFI/module.modulemap Package.swift; do
  sync_file "$PKG/$f.new" "$PKG/$f"; rm -f "$PKG/$f.new"
done

# --- the server, and the tests in the root ----------------------------------

run="$PKG/run"                  # seen as $IN_ROOT/run inside the root
[ -d "$run/server" ] && bash scripts/prosody.sh stop "$run/server"
rm -rf "$run"; mkdir -p "$run/tmp"
mountpoint -q "$ROOT$IN_ROOT" || as_root mount --bind "$PKG" "$ROOT$IN_ROOT"

app_server=""
cleanup() {
  # A signal that arrived earlier may only be handled now: ignore further
  # ones so the unmounting cannot be cut short.
  trap '' HUP INT TERM
  unmount_root
  [ -n "$app_server" ] && kill "$app_server" 2>/dev/null
  bash scripts/prosody.sh stop "$run/server" || true
}
trap cleanup EXIT
WAXWING_WATCH_PID=$$ bash scripts/prosody.sh start "$run/server" salice:pw1 sbob:pw2 > "$run/server.env"
c2s=$(sed -n 's/^C2S_PORT=//p' "$run/server.env")
component=$(sed -n 's/^COMPONENT_PORT=//p' "$run/server.env")
cp "$(sed -n 's/^CA=//p' "$run/server.env")" "$run/ca.pem"   # the root sees only its own tree
# The push app server (push.localhost) the push tests register with.
"$TOOLS/venv/bin/python" scripts/push_app_server.py --jid push.localhost \
  --secret push-component-secret --port "$component" --out "$run/pushes.jsonl" \
  --lifetime 600 > "$run/app-server.log" 2>&1 &
app_server=$!
for _ in $(seq 100); do grep -q online "$run/app-server.log" 2>/dev/null && break; sleep 0.1; done

log="$run/swift-test.log"
set +e
in_root env WAXWING_C2S="$c2s" WAXWING_CA="$IN_ROOT/run/ca.pem" WAXWING_PUSHES="$IN_ROOT/run/pushes.jsonl" \
  TMPDIR="$IN_ROOT/run/tmp" timeout -k 10 600 swift test --package-path "$IN_ROOT" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e

# XCTest: "Executed N tests, with M failures (U unexpected) in ..." counts
# failed assertions; the failed tests are its "Test Case '...' failed" lines.
executed=$(grep -E "Executed [0-9]+ tests?, with" "$log" | tail -1 | sed -E 's/.*Executed ([0-9]+) tests?.*/\1/' || true)
failed_tests=$(grep -cE "^Test Case '.*' failed" "$log" || true)
echo "test-swift: $(( $(date +%s) - started )) s"
if [ -z "$executed" ]; then
  # The package did not build, or the test process died (a crash counts as
  # one more failure beside the tests that finished).
  echo "swift: $(grep -cE "^Test Case '.*' passed" "$log" || true) passed, $((failed_tests + 1)) failed"
  exit 1
fi
echo "swift: $((executed - failed_tests)) passed, $failed_tests failed"
[ "$status" = 0 ] && [ "$failed_tests" = 0 ]
