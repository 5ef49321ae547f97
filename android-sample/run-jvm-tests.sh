#!/usr/bin/env bash
# Tests the sample app's plain Kotlin logic (app/src/main/java/kz/crewsafe/sample/core, no
# android.* imports) on the JVM, against the real library and the reference server.
#
#   android-sample/run-jvm-tests.sh [lib-dir] [generated-kotlin-dir]
#     lib-dir               holds libcrewsafe.so          (default: target/release)
#     generated-kotlin-dir  uniffi's Kotlin output         (default: bindings/kotlin/generated)
#
# Stages core/*.kt, jvm-tests/*.kt and bindings/kotlin/tests/TestRunner.kt into
# android-sample/build/jvm-tests/src and hands them to bindings/kotlin/run-tests.sh (same
# kotlinc + JNA setup as the bindings suite). Without CREWSAFE_TEST_SERVER_URL in the
# environment it re-runs itself under bindings/with-test-server.sh. Exits non-zero on any
# failed test. CREWSAFE_TEST_FILTER=substring runs only matching tests.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
lib_dir=$(cd "${1:-$root/target/release}" && pwd)
gen_dir=$(cd "${2:-$root/bindings/kotlin/generated}" && pwd)

if [ -z "${CREWSAFE_TEST_SERVER_URL:-}" ]; then
    exec "$root/bindings/with-test-server.sh" "$here/run-jvm-tests.sh" "$lib_dir" "$gen_dir"
fi

build=$here/build/jvm-tests
src=$build/src
rm -rf "$src"
mkdir -p "$src/core" "$src/tests"
# Copies, not symlinks: run-tests.sh collects regular files only.
cp "$here"/app/src/main/java/kz/crewsafe/sample/core/*.kt "$src/core/"
cp "$here"/jvm-tests/*.kt "$root/bindings/kotlin/tests/TestRunner.kt" "$src/tests/"

# A build dir of its own, so this suite and the bindings suite keep separate cached jars.
CREWSAFE_KOTLIN_BUILD_DIR="$build/jar" exec bash "$root/bindings/kotlin/run-tests.sh" \
    "$lib_dir" "$gen_dir" "$src"
