#!/usr/bin/env bash
# Builds the shipped library for this machine (profile `dist`, scripts/dist-build.sh) and
# prints its stripped size, with the largest sections. Target: <= 4 MiB per ABI.
#
#   scripts/library-size.sh
#
# Builds in target/size (or $CARGO_TARGET_DIR) so that the release build used by tests and
# benches is left alone. A first build takes a few minutes (whole-program LTO).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target/size}"
scripts/dist-build.sh >&2
lib="$CARGO_TARGET_DIR/dist/libcrewsafe.so"
[ -f "$lib" ] || lib="$CARGO_TARGET_DIR/dist/libcrewsafe.dylib"
bytes=$(wc -c <"$lib")
# `strip = true` already stripped it; strip a copy again in case a linker left anything.
tmp=$(mktemp); trap 'rm -f "$tmp"' EXIT
cp "$lib" "$tmp"; strip "$tmp" 2>/dev/null || true
stripped=$(wc -c <"$tmp")
size -A "$tmp" | sort -k2 -n -r | sed -n '2,7p' | awk '{printf "  %-20s %8.0f KiB\n", $1, $2 / 1024}'
awk -v b="$stripped" -v f="$lib" -v o="$bytes" 'BEGIN {
  printf "%s: %d bytes as built, %d bytes stripped (%.2f MiB; target 4 MiB: %s)\n",
    f, o, b, b / 1048576, (b <= 4194304 ? "met" : "NOT met") }'
