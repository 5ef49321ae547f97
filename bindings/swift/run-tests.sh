#!/usr/bin/env bash
# run-tests.sh - compile the uniffi-generated Swift bindings together with the Swift
# test sources into one executable and run it, inside the trixie Swift chroot
# (see chroot.sh). The tests are compiled with the bindings, so they must not
# `import CrewSafe`. Exits with the test program's status.
#
#   run-tests.sh <lib-dir> <generated-dir> <test-dir>
#     <lib-dir>/libcrewsafe.so
#     <generated-dir>/*.swift, *.h, *.modulemap   (uniffi-bindgen output)
#     <test-dir>/*.swift                          (one of them is main.swift)
set -euo pipefail

[ $# -eq 3 ] || { echo "usage: $0 <lib-dir> <generated-dir> <test-dir>" >&2; exit 2; }
lib_dir=$1 gen_dir=$2 test_dir=$3
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

shopt -s nullglob
gen_swift=("$gen_dir"/*.swift) gen_h=("$gen_dir"/*.h) gen_maps=("$gen_dir"/*.modulemap)
tests=("$test_dir"/*.swift)
[ -f "$lib_dir/libcrewsafe.so" ] || { echo "missing $lib_dir/libcrewsafe.so" >&2; exit 1; }
[ ${#gen_swift[@]} -gt 0 ] && [ ${#gen_h[@]} -gt 0 ] && [ ${#gen_maps[@]} -gt 0 ] ||
  { echo "need *.swift, *.h and *.modulemap in $gen_dir" >&2; exit 1; }
[ -f "$test_dir/main.swift" ] || { echo "missing $test_dir/main.swift" >&2; exit 1; }

# Stage the inputs in one directory; the chroot sees it as /work.
stage=$(mktemp -d "${TMPDIR:-/tmp}/crewsafe-swift.XXXXXX")
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/lib" "$stage/gen" "$stage/tests"
cp "$lib_dir/libcrewsafe.so" "$stage/lib/"
cp "${gen_swift[@]}" "${gen_h[@]}" "${gen_maps[@]}" "$stage/gen/"
cp "${tests[@]}" "$stage/tests/"

echo "[swift-tests] compiling ${#gen_swift[@]} binding + ${#tests[@]} test source(s)" >&2
# shellcheck disable=SC2016  # expanded inside the chroot
"$here/chroot.sh" run "$stage" -- /bin/sh -ec '
  maps=""; for m in gen/*.modulemap; do maps="$maps -Xcc -fmodule-map-file=$m"; done
  swiftc -module-name CrewSafeTests -I gen $maps gen/*.swift tests/*.swift \
    -L lib -lcrewsafe -o crewsafe-tests
  echo "[swift-tests] running" >&2
  LD_LIBRARY_PATH=/work/lib exec ./crewsafe-tests'
