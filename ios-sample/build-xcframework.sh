#!/usr/bin/env bash
# Builds the CrewSafe XCFramework (device + simulator) and the Swift bindings into the Swift
# package in ios-sample/CrewSafePackage:
#
#   CrewSafePackage/CrewSafeFFI.xcframework       ios-arm64, ios-arm64_x86_64-simulator
#   CrewSafePackage/Sources/CrewSafe/CrewSafe.swift
#
#   ios-sample/build-xcframework.sh        (macOS with Xcode and rustup; not runnable on Linux)
#
# Production library: no test hooks. The Swift source is generated from a host (macOS) build
# of the same crate, whose uniffi metadata is identical.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
pkg=$here/CrewSafePackage
[ "$(uname -s)" = Darwin ] || { echo "needs macOS with Xcode (xcodebuild, lipo)" >&2; exit 1; }

export IPHONEOS_DEPLOYMENT_TARGET=16.0 # keep in sync with Package.swift and project.yml
targets=(aarch64-apple-ios aarch64-apple-ios-sim x86_64-apple-ios)
cd "$root"
rustup target add "${targets[@]}"
# The shipped library: profile `dist` (LTO, size-optimized) and SQLite without what the store
# does not use, through scripts/dist-build.sh.
for t in "${targets[@]}"; do
    echo "==> scripts/dist-build.sh --target $t"
    scripts/dist-build.sh --target "$t"
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "==> Swift bindings"
cargo build --release --lib --features bindgen
cargo run --quiet --release --features bindgen --bin uniffi-bindgen -- generate \
    --library target/release/libcrewsafe.dylib --language swift --out-dir "$work/gen" --no-format

# Inside an XCFramework the module map must be called module.modulemap.
mkdir -p "$work/headers"
cp "$work/gen/CrewSafeFFI.h" "$work/headers/"
cp "$work/gen/CrewSafeFFI.modulemap" "$work/headers/module.modulemap"

echo "==> lipo the simulator slices (arm64 + x86_64)"
mkdir -p "$work/sim"
lipo -create target/aarch64-apple-ios-sim/dist/libcrewsafe.a target/x86_64-apple-ios/dist/libcrewsafe.a \
    -output "$work/sim/libcrewsafe.a"

echo "==> xcodebuild -create-xcframework"
rm -rf "$pkg/CrewSafeFFI.xcframework"
xcodebuild -create-xcframework \
    -library target/aarch64-apple-ios/dist/libcrewsafe.a -headers "$work/headers" \
    -library "$work/sim/libcrewsafe.a" -headers "$work/headers" \
    -output "$pkg/CrewSafeFFI.xcframework"

mkdir -p "$pkg/Sources/CrewSafe"
cp "$work/gen/CrewSafe.swift" "$pkg/Sources/CrewSafe/CrewSafe.swift"
echo "==> done: $pkg"
