#!/usr/bin/env bash
# Builds Waxwing for Android: libwaxwing_ffi.so for arm64-v8a, armeabi-v7a,
# x86_64 and x86, cross-built with the NDK through cargo-ndk into
# android/src/main/jniLibs/<abi>/; the generated Kotlin bindings into
# android/src/main/generated/kotlin; and the path of the Maven repository
# that the rustls-platform-verifier crate ships (its Kotlin half, an AAR)
# into android/local.properties — what android/settings.gradle.kts and
# android/build.gradle.kts expect. Then: `cd android && gradle assembleRelease`.
#
# Needs ANDROID_NDK_HOME (the NDK's root directory), rustup, python3, and
# perl + make (SQLCipher's vendored OpenSSL is configured and built for each
# ABI). It has NOT been run on the project's Linux machines (no NDK there);
# what runs there is scripts/test-kotlin.sh, which compiles the same Kotlin
# sources (generated bindings + android/src/main/kotlin) on the JVM and tests
# them against the host library.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${ANDROID_NDK_HOME:-}" ]; then
  echo "build-android.sh needs ANDROID_NDK_HOME: the root of an Android NDK (r23 or newer, which cargo-ndk 4 needs)," >&2
  echo "  e.g. export ANDROID_NDK_HOME=\$ANDROID_HOME/ndk/<version>   (Android Studio: SDK Manager > SDK Tools > NDK)" >&2
  exit 1
fi
[ -d "$ANDROID_NDK_HOME/toolchains/llvm/prebuilt" ] || {
  echo "build-android.sh: ANDROID_NDK_HOME=$ANDROID_NDK_HOME does not look like an NDK (no toolchains/llvm/prebuilt)" >&2
  exit 1
}
for tool in python3 perl make; do
  command -v "$tool" >/dev/null || { echo "build-android.sh needs $tool" >&2; exit 1; }
done

# Keep in step with minSdk in android/build.gradle.kts.
api=24
abis=(arm64-v8a armeabi-v7a x86_64 x86)
targets=(aarch64-linux-android armv7-linux-androideabi x86_64-linux-android i686-linux-android)

# The Kotlin half of rustls-platform-verifier: the crate
# rustls-platform-verifier-android carries it as a Maven repository in its
# maven/ directory (group rustls, artifact rustls-platform-verifier). Cargo
# knows where that crate's source is; Gradle reads the path from
# android/local.properties. Looked up first: it fails fast, before any build.
verifier_maven=$(
  cargo metadata --format-version 1 --filter-platform aarch64-linux-android \
    --manifest-path bindings/Cargo.toml |
    python3 -c '
import json, os, sys
for p in json.load(sys.stdin)["packages"]:
    if p["name"] == "rustls-platform-verifier-android":
        print(os.path.join(os.path.dirname(p["manifest_path"]), "maven"))
        break
'
)
if [ -z "$verifier_maven" ] || [ ! -d "$verifier_maven" ]; then
  echo "build-android.sh: rustls-platform-verifier-android's maven/ directory not found (cargo metadata)" >&2
  exit 1
fi
props=android/local.properties
key=rustls.platform.verifier.maven
tmp=$(mktemp)
if [ -f "$props" ]; then grep -v "^${key}=" "$props" >"$tmp" || true; fi
echo "${key}=${verifier_maven}" >>"$tmp"
mv "$tmp" "$props"

installed=$(rustup target list --installed)
for target in "${targets[@]}"; do
  grep -qx "$target" <<<"$installed" || rustup target add "$target"
done
# cargo-ndk 4: its flags are the ones used below, it needs NDK r23 or newer,
# and for 64-bit ABIs it links with 16 KB page alignment (Android 15+ devices,
# Google Play) where the NDK does not already (r28+ does).
ndk_version=$(cargo ndk --version 2>/dev/null || true)
case "$ndk_version" in
  "cargo-ndk "[4-9].*) ;;
  *) cargo install cargo-ndk --locked ;;
esac

jnilibs=android/src/main/jniLibs
rm -rf "$jnilibs"
ndk_args=(--platform "$api" -o "$PWD/$jnilibs")
for abi in "${abis[@]}"; do ndk_args+=(-t "$abi"); done
cargo ndk "${ndk_args[@]}" build --package waxwing-ffi --lib --release
for abi in "${abis[@]}"; do
  [ -f "$jnilibs/$abi/libwaxwing_ffi.so" ] || { echo "build-android.sh: $jnilibs/$abi/libwaxwing_ffi.so is missing" >&2; exit 1; }
done

# The bindings come from the library's own metadata, read from a host debug
# build (the release profile strips symbols, and the metadata with them) —
# the same invocation as scripts/kotlin-env.sh, so the Android module and the
# JVM tests compile the same generated Kotlin.
cargo build -q -p waxwing-ffi
cargo build -q -p waxwing-ffi --features cli --bin uniffi-bindgen
host_lib=target/debug/libwaxwing_ffi.so
if [ "$(uname -s)" = Darwin ]; then host_lib=target/debug/libwaxwing_ffi.dylib; fi
gen=android/src/main/generated/kotlin
rm -rf "$gen"
target/debug/uniffi-bindgen generate --library "$host_lib" --language kotlin \
  --no-format --config uniffi.toml --out-dir "$gen" >/dev/null

echo "build-android: $jnilibs/{$(IFS=,; echo "${abis[*]}")}/libwaxwing_ffi.so and $gen are ready"
echo "build-android: rustls-platform-verifier Maven repository: $verifier_maven (in $props as $key)"
echo "build-android: next: cd android && gradle assembleRelease   (AAR in android/build/outputs/aar/)"
