#!/usr/bin/env bash
# Ensures the Kotlin/JVM test tools exist and prints their paths as shell
# assignments on stdout (progress goes to stderr), e.g.
#
#   eval "$(bash bindings/kotlin/tools.sh)"
#   "$KOTLINC" -version
#
# Printed variables:
#   KOTLIN_HOME     kotlin-compiler distribution (from the npm package)
#   KOTLINC         $KOTLIN_HOME/bin/kotlinc (the JVM compiler launcher)
#   JNA_JAR         Debian's jna.jar (package libjna-java)
#   COROUTINES_JAR  kotlinx-coroutines-core-jvm.jar shipped inside the compiler
#                   distribution (needed by uniffi's async/suspend bindings)
#   JAVA            the java binary used to run tests
#
# Tools are cached outside the checkout, in ${CREWSAFE_CACHE:-$HOME/.cache/crewsafe},
# so a fresh clone reuses them. Idempotent; takes well under a second once
# everything is installed and verified.
set -euo pipefail

KOTLIN_VERSION="${CREWSAFE_KOTLIN_VERSION:-2.4.20}"
CACHE="${CREWSAFE_CACHE:-$HOME/.cache/crewsafe}"
NPM_PREFIX="$CACHE/tools/npm"
KOTLIN_HOME="$NPM_PREFIX/node_modules/kotlin-compiler"
KOTLINC="$KOTLIN_HOME/bin/kotlinc"
JNA_JAR="${CREWSAFE_JNA_JAR:-/usr/share/java/jna.jar}"

log() { echo "[kotlin tools] $*" >&2; }
die() { echo "[kotlin tools] error: $*" >&2; exit 1; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"
    elif command -v sudo >/dev/null 2>&1; then sudo "$@"
    else die "need root to run: $*"
    fi
}

apt_install() {
    # Another apt/dpkg may be running (e.g. a background install): wait for
    # the lock instead of failing.
    local apt=(apt-get -o DPkg::Lock::Timeout=600 -y -q)
    log "apt-get install $*"
    if ! as_root env DEBIAN_FRONTEND=noninteractive "${apt[@]}" install --no-install-recommends "$@" >&2; then
        log "install failed; running apt-get update and retrying"
        as_root env DEBIAN_FRONTEND=noninteractive "${apt[@]}" update >&2
        as_root env DEBIAN_FRONTEND=noninteractive "${apt[@]}" install --no-install-recommends "$@" >&2
    fi
}

mkdir -p "$CACHE/tools"
# Serialize concurrent callers (two test scripts started at once).
exec 9>"$CACHE/tools/.lock"
flock 9

# --- Java -------------------------------------------------------------------
if [ -n "${JAVA_HOME:-}" ] && [ -x "$JAVA_HOME/bin/java" ]; then
    JAVA="$JAVA_HOME/bin/java"
elif command -v java >/dev/null 2>&1; then
    JAVA="$(command -v java)"
else
    apt_install openjdk-17-jdk-headless
    JAVA="$(command -v java)" || die "java still missing after install"
fi

# --- JNA --------------------------------------------------------------------
if [ ! -f "$JNA_JAR" ]; then
    # libjna-java pulls in libjna-jni (libjnidispatch.system.so): Debian's
    # jna.jar has no bundled native dispatch library.
    apt_install libjna-java
    [ -f "$JNA_JAR" ] || die "$JNA_JAR missing after installing libjna-java"
fi

# --- Kotlin compiler (npm package kotlin-compiler) --------------------------
installed_version() { cat "$KOTLIN_HOME/build.txt" 2>/dev/null || true; }
if [ "$(installed_version)" != "$KOTLIN_VERSION" ] || [ ! -f "$KOTLIN_HOME/lib/kotlin-compiler.jar" ]; then
    command -v npm >/dev/null 2>&1 || die "npm not found (needed for kotlin-compiler)"
    log "npm install kotlin-compiler@$KOTLIN_VERSION into $NPM_PREFIX"
    mkdir -p "$NPM_PREFIX"
    npm --prefix "$NPM_PREFIX" install --no-audit --no-fund --loglevel=error \
        "kotlin-compiler@$KOTLIN_VERSION" >&2
    [ "$(installed_version)" = "$KOTLIN_VERSION" ] \
        || die "kotlin-compiler install gave version '$(installed_version)'"
    rm -f "$KOTLIN_HOME/.crewsafe-verified"
fi
# The package's "bin" field only exposes kotlinc-js; the JVM launcher is the
# plain shell script bin/kotlinc, not linked into node_modules/.bin.
[ -x "$KOTLINC" ] || chmod +x "$KOTLIN_HOME"/bin/kotlin* "$KOTLIN_HOME"/bin/kapt

# Run `kotlinc -version` once per (compiler, java) pair; remember success.
stamp="$KOTLIN_HOME/.crewsafe-verified"
want="$KOTLIN_VERSION $("$JAVA" -version 2>&1 | head -n1)"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
    log "checking $KOTLINC -version"
    out="$(JAVACMD="$JAVA" "$KOTLINC" -version 2>&1)" || die "kotlinc -version failed: $out"
    case "$out" in
        *"kotlinc-jvm $KOTLIN_VERSION"*) log "$out" ;;
        *) die "unexpected kotlinc -version output: $out" ;;
    esac
    printf '%s\n' "$want" >"$stamp"
fi

COROUTINES_JAR="$KOTLIN_HOME/lib/kotlinx-coroutines-core-jvm.jar"
[ -f "$COROUTINES_JAR" ] || die "missing $COROUTINES_JAR"

printf 'KOTLIN_HOME=%q\n' "$KOTLIN_HOME"
printf 'KOTLINC=%q\n' "$KOTLINC"
printf 'JNA_JAR=%q\n' "$JNA_JAR"
printf 'COROUTINES_JAR=%q\n' "$COROUTINES_JAR"
printf 'JAVA=%q\n' "$JAVA"
