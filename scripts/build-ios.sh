#!/usr/bin/env bash
# Builds Waxwing for Apple platforms: the static library for iOS devices
# (aarch64-apple-ios), the iOS simulator (aarch64-apple-ios-sim and
# x86_64-apple-ios, joined with lipo) and macOS (aarch64-apple-darwin),
# packed as ios/WaxwingFFI.xcframework, and the generated Swift copied into
# ios/Sources/Waxwing/Generated — what ios/Package.swift expects.
#
# Runs on a Mac with Xcode (xcodebuild, lipo) and rustup. It has NOT been run
# on the project's Linux machines (no Apple SDK there); what runs there is
# scripts/test-swift.sh, which compiles the same Swift sources (generated,
# ios/Sources/Waxwing, ios/Tests) on Linux against the shared library.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(uname -s)" = Darwin ] || { echo "build-ios.sh needs macOS with Xcode (xcodebuild, lipo)" >&2; exit 1; }
command -v xcodebuild >/dev/null || { echo "build-ios.sh needs Xcode's command line tools" >&2; exit 1; }

targets=(aarch64-apple-ios aarch64-apple-ios-sim x86_64-apple-ios aarch64-apple-darwin)
rustup target add "${targets[@]}"
# The same minimums as ios/Package.swift.
export IPHONEOS_DEPLOYMENT_TARGET=15.0 MACOSX_DEPLOYMENT_TARGET=12.0
for target in "${targets[@]}"; do
  cargo build --release -p waxwing-ffi --lib --target "$target"
done

# The bindings come from the library's own metadata, read from a host debug
# build: the release profile strips symbols, and the metadata with them (as
# in scripts/build-android.sh).
cargo build -p waxwing-ffi --lib
cargo build -p waxwing-ffi --features cli --bin uniffi-bindgen
out=target/apple
rm -rf "$out"; mkdir -p "$out/gen" "$out/include" "$out/ios-simulator"
target/debug/uniffi-bindgen generate --library target/debug/libwaxwing_ffi.dylib --language swift \
  --config uniffi.toml --out-dir "$out/gen"
cp "$out/gen/WaxwingFFI.h" "$out/include/"
cp "$out/gen/WaxwingFFI.modulemap" "$out/include/module.modulemap"

lipo -create target/aarch64-apple-ios-sim/release/libwaxwing_ffi.a target/x86_64-apple-ios/release/libwaxwing_ffi.a \
  -output "$out/ios-simulator/libwaxwing_ffi.a"
rm -rf ios/WaxwingFFI.xcframework
xcodebuild -create-xcframework \
  -library target/aarch64-apple-ios/release/libwaxwing_ffi.a -headers "$out/include" \
  -library "$out/ios-simulator/libwaxwing_ffi.a" -headers "$out/include" \
  -library target/aarch64-apple-darwin/release/libwaxwing_ffi.a -headers "$out/include" \
  -output ios/WaxwingFFI.xcframework

rm -rf ios/Sources/Waxwing/Generated; mkdir -p ios/Sources/Waxwing/Generated
cp "$out/gen/"*.swift ios/Sources/Waxwing/Generated/
echo "build-ios: ios/WaxwingFFI.xcframework and ios/Sources/Waxwing/Generated are ready (swift build in ios/;"
echo "  its XCTests need the test Prosody and WAXWING_* variables that scripts/test-swift.sh sets up)"
