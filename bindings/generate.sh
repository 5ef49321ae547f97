#!/usr/bin/env bash
# Builds the crewsafe shared library (release) and generates its Kotlin and Swift bindings
# into bindings/kotlin/generated and bindings/swift/generated.
#
#   bindings/generate.sh               # production library and bindings
#   bindings/generate.sh --test-hooks  # adds test-only hooks (used by the binding suites)
#
# The bindings are generated from the unstripped library (its uniffi metadata), with the
# bindgen binary built from this crate so versions always match.
set -euo pipefail
cd "$(dirname "$0")/.."

features="bindgen"
if [[ "${1:-}" == "--test-hooks" ]]; then
  features="bindgen,test-hooks"
fi

echo "==> building libcrewsafe (release, features: $features)"
cargo build --release --lib --features "$features"
lib="target/release/libcrewsafe.so"

for lang in kotlin swift; do
  out="bindings/$lang/generated"
  rm -rf "$out"
  mkdir -p "$out"
  echo "==> generating $lang bindings into $out"
  cargo run --quiet --release --features "$features" --bin uniffi-bindgen -- \
    generate --library "$lib" --language "$lang" --out-dir "$out" --no-format
done
echo "==> library: $lib"
