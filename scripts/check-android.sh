#!/usr/bin/env bash
# Type-checks the Android-only Rust code (the JNI entry point that hands the
# app's Context to the certificate verifier) for aarch64-linux-android.
# Linking for Android needs the NDK, which is not reachable here; `cargo
# check` does not link. Prints "android-check: ok" or fails.
set -euo pipefail
cd "$(dirname "$0")/.."
rustup target list --installed | grep -qx aarch64-linux-android ||
  rustup target add aarch64-linux-android >/dev/null
# The workspace's lock file, so the check uses the versions the library
# ships with (rustls-platform-verifier above all); cargo drops the rest.
cp Cargo.lock bindings/android-check/Cargo.lock
cargo check --quiet --target aarch64-linux-android \
  --manifest-path bindings/android-check/Cargo.toml --target-dir target/android-check
echo "android-check: ok"
