#!/usr/bin/env bash
# FFI cost: the same calls (raiseSos with its fsync, getSos, pendingCounts) from Kotlin through
# the generated bindings and JNA, and straight from Rust, in one run on this machine:
# Kotlin, Rust, Kotlin, Rust (the disk and the CPU drift; compare neighbours).
#
#   bash bindings/kotlin/bench/run.sh [raiseSos calls] [quick calls]    # default 2000 200000
#
# Uses what bindings/generate.sh --test-hooks built (target/release/libcrewsafe.so and
# bindings/kotlin/generated), compiles this folder with the generated Kotlin through
# run-tests.sh (its jar cached in bindings/kotlin/build/bench), and builds the Rust twin,
# examples/ffi_cost.rs, with `cargo build --release --example ffi_cost`.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../../.." && pwd)
cd "$root"
slow=${1:-2000}
quick=${2:-200000}
out=${CARGO_TARGET_DIR:-target}/release

cargo build --quiet --release --example ffi_cost
kotlin() {
  CREWSAFE_KOTLIN_BUILD_DIR="$root/bindings/kotlin/build/bench" CREWSAFE_KOTLIN_MAIN=FfiBenchKt \
    CREWSAFE_FFI_BENCH="$slow $quick" \
    bash bindings/kotlin/run-tests.sh "$out" bindings/kotlin/generated "$here"
}
for round in 1 2; do
  echo "--- round $round"
  kotlin
  "$out/examples/ffi_cost" "$slow" "$quick"
done
