#!/usr/bin/env bash
# Compiles uniffi-generated Kotlin + the Kotlin tests into one jar and runs it.
#
#   bash bindings/kotlin/run-tests.sh <lib-dir> <generated-kotlin-dir> <test-dir>
#
#   <lib-dir>               directory holding the native library (libcrewsafe.so),
#                           passed to JNA as -Djna.library.path
#   <generated-kotlin-dir>  uniffi-bindgen's Kotlin output; every *.kt below it
#                           is compiled (uniffi/crewsafe/crewsafe.kt, kz/..., ...)
#   <test-dir>              test sources; every *.kt below it (TestRunner.kt, Main.kt, ...)
#
# Environment:
#   CREWSAFE_KOTLIN_MAIN    main class (default MainKt: a top-level main in Main.kt
#                           with no package; with `package foo` it is foo.MainKt)
#   CREWSAFE_KOTLINC_FLAGS  extra kotlinc flags (word-split)
#   CREWSAFE_JAVA_FLAGS     extra flags for the test JVM (word-split)
#   CREWSAFE_TEST_FILTER    run only tests whose name contains this (see TestRunner.kt)
#   CREWSAFE_FORCE_COMPILE  =1 recompiles even if the sources did not change
#   CREWSAFE_KOTLIN_BUILD_DIR  where the jar is built (default bindings/kotlin/build)
#   KOTLINC_JAVA_OPTS       JVM options for the compiler (default below)
#
# The exit status is the test program's (non-zero on any failed test), or
# non-zero if compilation fails. Build outputs go to bindings/kotlin/build/
# (git-ignored). The jar is rebuilt only when the sources, the classpath or the
# compiler change, because kotlinc takes a while to start.
set -euo pipefail

if [ $# -ne 3 ]; then
    echo "usage: $0 <lib-dir> <generated-kotlin-dir> <test-dir>" >&2
    exit 2
fi

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
LIB_DIR="$(cd "$1" && pwd)" || { echo "no such lib dir: $1" >&2; exit 2; }
GEN_DIR="$(cd "$2" && pwd)" || { echo "no such generated dir: $2" >&2; exit 2; }
TEST_DIR="$(cd "$3" && pwd)" || { echo "no such test dir: $3" >&2; exit 2; }
MAIN_CLASS="${CREWSAFE_KOTLIN_MAIN:-MainKt}"
BUILD="${CREWSAFE_KOTLIN_BUILD_DIR:-$HERE/build}"
JAR="$BUILD/tests.jar"

log() { echo "[kotlin tests] $*" >&2; }

eval "$(bash "$HERE/tools.sh")"

mapfile -t GEN_SOURCES < <(find "$GEN_DIR" -type f -name '*.kt' | LC_ALL=C sort)
mapfile -t TEST_SOURCES < <(find "$TEST_DIR" -type f -name '*.kt' | LC_ALL=C sort)
[ ${#GEN_SOURCES[@]} -gt 0 ] || { log "no *.kt under $GEN_DIR"; exit 2; }
[ ${#TEST_SOURCES[@]} -gt 0 ] || { log "no *.kt under $TEST_DIR"; exit 2; }

if ! compgen -G "$LIB_DIR/*.so" >/dev/null && ! compgen -G "$LIB_DIR/*.dylib" >/dev/null; then
    log "warning: no shared library (*.so / *.dylib) in $LIB_DIR"
fi

CLASSPATH="$JNA_JAR:$COROUTINES_JAR"
mkdir -p "$BUILD"

# Fingerprint of everything that goes into the jar.
fingerprint="$(
    {
        printf '%s\n' "$KOTLINC" "$(cat "$KOTLIN_HOME/build.txt")" "$CLASSPATH" \
            "${CREWSAFE_KOTLINC_FLAGS:-}" "${GEN_SOURCES[@]}" "${TEST_SOURCES[@]}"
        cat "${GEN_SOURCES[@]}" "${TEST_SOURCES[@]}"
    } | sha256sum | cut -d' ' -f1
)"

if [ "${CREWSAFE_FORCE_COMPILE:-0}" != 1 ] && [ -f "$JAR" ] \
    && [ "$(cat "$BUILD/tests.jar.sha256" 2>/dev/null || true)" = "$fingerprint" ]; then
    log "sources unchanged; reusing $JAR"
else
    rm -f "$JAR" "$BUILD/tests.jar.sha256"
    log "compiling ${#GEN_SOURCES[@]} generated + ${#TEST_SOURCES[@]} test source(s) with kotlinc"
    start=$SECONDS
    # kotlinc's launcher reads JAVA_OPTS (its default -Xmx512M is tight for a
    # large generated file). Tiered-only C1 + serial GC start faster on 2 cores.
    # shellcheck disable=SC2086
    JAVACMD="$JAVA" JAVA_OPTS="${KOTLINC_JAVA_OPTS:--Xmx1536m -Xss8m -XX:+UseSerialGC -XX:TieredStopAtLevel=1}" \
        "$KOTLINC" -jvm-target 17 -include-runtime -d "$JAR" -cp "$CLASSPATH" \
        ${CREWSAFE_KOTLINC_FLAGS:-} "${GEN_SOURCES[@]}" "${TEST_SOURCES[@]}"
    printf '%s\n' "$fingerprint" >"$BUILD/tests.jar.sha256"
    log "compiled in $((SECONDS - start)) s"
fi

log "running $MAIN_CLASS (jna.library.path=$LIB_DIR)"
set +e
# shellcheck disable=SC2086
"$JAVA" -Djna.library.path="$LIB_DIR" ${CREWSAFE_JAVA_FLAGS:-} \
    -cp "$JAR:$CLASSPATH" "$MAIN_CLASS"
status=$?
set -e
[ $status -eq 0 ] || log "test program exited with status $status"
exit $status
