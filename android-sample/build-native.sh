#!/usr/bin/env bash
# Builds libcrewsafe.so for the Android ABIs with cargo-ndk and generates the Kotlin bindings:
#
#   crewsafe/src/main/jniLibs/{arm64-v8a,armeabi-v7a,x86_64}/libcrewsafe.so
#   crewsafe/src/main/generated/kz/crewsafe/crewsafe.kt
#
#   android-sample/build-native.sh          (or: ./gradlew :crewsafe:buildNative)
#
# Needs (once):
#   rustup target add aarch64-linux-android armv7-linux-androideabi x86_64-linux-android
#   cargo install cargo-ndk
#   the Android NDK (r26 or newer): ANDROID_NDK_HOME, or Android Studio's SDK Manager default
#
# This is the production library: no test hooks. The bindings come from the unstripped
# arm64 library in target/ (uniffi reads its metadata), with uniffi-android.toml.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
min_sdk=26 # keep in sync with minSdk in crewsafe/build.gradle.kts
jni_libs=$here/crewsafe/src/main/jniLibs
generated=$here/crewsafe/src/main/generated

command -v cargo-ndk >/dev/null || { echo "cargo-ndk missing: cargo install cargo-ndk" >&2; exit 1; }
cd "$root"

# 16 KB page alignment for the 64-bit ABIs (Android 15+ devices with 16 KB pages; required by
# Google Play for new apps). Harmless on 4 KB devices. Relocations packed (Android's format,
# API 23+): about 250 KiB less per ABI.
pack="-C link-arg=-Wl,--pack-dyn-relocs=android"
export CARGO_TARGET_AARCH64_LINUX_ANDROID_RUSTFLAGS="-C link-arg=-Wl,-z,max-page-size=16384 $pack"
export CARGO_TARGET_X86_64_LINUX_ANDROID_RUSTFLAGS="-C link-arg=-Wl,-z,max-page-size=16384 $pack"
export CARGO_TARGET_ARMV7_LINUX_ANDROIDEABI_RUSTFLAGS="$pack"

# The shipped library: profile `dist` (LTO, size-optimized, stripped) and SQLite without what
# the store does not use, through scripts/dist-build.sh.
echo "==> cargo ndk (profile dist): arm64-v8a armeabi-v7a x86_64 (API $min_sdk) -> $jni_libs"
rm -rf "$jni_libs"
CARGO_NDK=1 scripts/dist-build.sh --platform "$min_sdk" -t arm64-v8a -t armeabi-v7a -t x86_64 \
    -o "$jni_libs"

# The dist library is stripped, uniffi's metadata with it: the bindings come from a host
# release build of the same sources (the metadata does not depend on the target).
echo "==> Kotlin bindings -> $generated"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cargo build --quiet --release --lib --features bindgen
cargo run --quiet --release --features bindgen --bin uniffi-bindgen -- generate \
    --library target/release/libcrewsafe.so --language kotlin \
    --config "$here/uniffi-android.toml" --out-dir "$tmp" --no-format
rm -rf "$generated"
mkdir -p "$generated"
cp -R "$tmp"/. "$generated"/
find "$jni_libs" "$generated" -type f | sort
