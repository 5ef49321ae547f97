#!/usr/bin/env bash
# Tests the sample app's plain Swift logic (ios-sample/Core: Foundation and the bindings
# only) on Linux, in the same trixie Swift chroot as the bindings suite, against the real
# library and the reference server.
#
#   ios-sample/run-linux-tests.sh [lib-dir] [generated-swift-dir]
#     lib-dir              holds libcrewsafe.so     (default: target/release)
#     generated-swift-dir  uniffi's Swift output    (default: bindings/swift/generated)
#
# Stages Core/*.swift, linux-tests/*.swift and bindings/swift/tests/TestRunner.swift into one
# directory and hands it to bindings/swift/run-tests.sh (which compiles it together with the
# bindings, so there is no `import CrewSafe`: Core guards it with canImport). Without
# CREWSAFE_TEST_SERVER_URL it re-runs itself under bindings/with-test-server.sh.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
lib_dir=$(cd "${1:-$root/target/release}" && pwd)
gen_dir=$(cd "${2:-$root/bindings/swift/generated}" && pwd)

if [ -z "${CREWSAFE_TEST_SERVER_URL:-}" ]; then
    exec "$root/bindings/with-test-server.sh" "$here/run-linux-tests.sh" "$lib_dir" "$gen_dir"
fi

stage=$(mktemp -d "${TMPDIR:-/tmp}/crewsafe-ios-sample.XXXXXX")
trap 'rm -rf "$stage"' EXIT
cp "$here"/Core/*.swift "$here"/linux-tests/*.swift "$root/bindings/swift/tests/TestRunner.swift" "$stage/"
bash "$root/bindings/swift/run-tests.sh" "$lib_dir" "$gen_dir" "$stage"
