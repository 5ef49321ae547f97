#!/usr/bin/env bash
# Runs every CrewSafe check on a fresh machine: installs what is missing (apt libjna-java and
# debootstrap, npm kotlin-compiler into ~/.cache/crewsafe, the cached Swift chroot,
# cargo-fuzz, apt chromium, chromium-driver and python3-selenium for the console test, apt
# postgresql for the server's PostgreSQL tests, npm @redocly/cli for the OpenAPI lint), then
# fmt, the OpenAPI lint, clippy, the Rust tests (and the
# server's on a throwaway PostgreSQL cluster), a fuzz smoke run, the benchmarks and demo as
# smoke runs, binding generation, the Kotlin and Swift suites and the sample apps' logic
# against the built library and a reference server.
#
#   scripts/test-all.sh
#
# Long modes are opt-in through environment variables documented in README.md.
set -euo pipefail
cd "$(dirname "$0")/.."

FEATURES="bindgen,test-hooks"
start=$(date +%s)
step() { echo; echo "=== [$(( $(date +%s) - start ))s] $*"; }

step "tools: Kotlin compiler, JNA, Swift chroot"
bash bindings/kotlin/tools.sh >/dev/null
bash bindings/swift/chroot.sh ensure >/dev/null

step "tools: Chromium, chromium-driver, python3-selenium (the console browser test)"
# Debian's packages; the test (tests/console_browser.rs) fails instead of skipping without them.
browser_pkgs=(chromium chromium-driver python3-selenium fonts-dejavu-core)
if ! dpkg -s "${browser_pkgs[@]}" >/dev/null 2>&1; then
  as_root=(); [ "$(id -u)" = 0 ] || as_root=(sudo)
  apt=(env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 -y -q)
  "${as_root[@]}" "${apt[@]}" update >/dev/null
  "${as_root[@]}" "${apt[@]}" install --no-install-recommends "${browser_pkgs[@]}" >/dev/null
fi
export CREWSAFE_REQUIRE_BROWSER=1

step "cargo fmt --check"
cargo fmt --all -- --check

step "no import cycles between the files of src/ and server/src/"
python3 scripts/import-cycles.py src server/src

step "OpenAPI: lint server/openapi.yaml (Redocly CLI, recommended rules as errors)"
# npm @redocly/cli into the tools cache, like the Kotlin compiler. The server's integration
# tests also check every answer they read against the document (server/tests/common/openapi.rs).
redocly_dir="${CREWSAFE_CACHE:-$HOME/.cache/crewsafe}/tools/redocly"
if [ ! -x "$redocly_dir/node_modules/.bin/redocly" ]; then
  mkdir -p "$redocly_dir"
  npm install --prefix "$redocly_dir" --no-audit --no-fund --loglevel=error @redocly/cli@2.77.0 >/dev/null
fi
REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true \
  "$redocly_dir/node_modules/.bin/redocly" lint --config server/redocly.yaml server/openapi.yaml

step "cargo clippy -D warnings"
cargo clippy --release --workspace --all-targets --features "$FEATURES" -- -D warnings

step "cargo test"
cargo test --release --workspace --features "$FEATURES"

step "PostgreSQL: the server's contract suite, schema upgrades, three instances on one database"
# Debian's postgresql; pg_virtualenv (postgresql-common) runs the tests against a throwaway
# cluster and removes it afterwards. Without a database the tests fail instead of skipping.
if ! command -v pg_virtualenv >/dev/null || ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
  as_root=(); [ "$(id -u)" = 0 ] || as_root=(sudo)
  apt=(env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 -y -q)
  "${as_root[@]}" "${apt[@]}" update >/dev/null
  "${as_root[@]}" "${apt[@]}" install --no-install-recommends postgresql postgresql-common >/dev/null
fi
CREWSAFE_REQUIRE_POSTGRES=1 pg_virtualenv \
  cargo test --release -p crewsafe-server --test postgres_contract

step "fuzz smoke run (every target a few seconds; long runs: fuzz/smoke.sh --long)"
bash fuzz/smoke.sh

step "benchmarks (quick smoke runs; full figures: cargo bench --bench store / sync / history / sos_loop / media)"
CREWSAFE_BENCH_QUICK=1 cargo bench --features "$FEATURES" --bench store
CREWSAFE_BENCH_QUICK=1 cargo bench --features "$FEATURES" --bench sync
CREWSAFE_BENCH_QUICK=1 cargo bench --features "$FEATURES" --bench history
CREWSAFE_BENCH_QUICK=1 cargo bench --features "$FEATURES" --bench sos_loop
CREWSAFE_BENCH_QUICK=1 cargo bench --features "$FEATURES" --bench media
# The server's: ingest (1, 8, 64 devices against straight inserts) and dispatcher list pages,
# each on SQLite and on a throwaway PostgreSQL with fsync on (pg_virtualenv turns it off).
# Full figures: the same without CREWSAFE_BENCH_QUICK (docs/operations.md).
CREWSAFE_BENCH_QUICK=1 pg_virtualenv -o fsync=on sh -c '
  export CREWSAFE_BENCH_DATABASE_URL="host=$PGHOST port=$PGPORT user=$PGUSER password=$PGPASSWORD dbname=$PGDATABASE"
  cargo bench -p crewsafe-server --bench ingest && cargo bench -p crewsafe-server --bench dispatch_page'

step "demo (smoke run)"
# --serve reads one Enter (raises one more SOS), then end of input stops it.
printf '\n' | cargo run --release --features "$FEATURES" --example demo -- --serve >/dev/null

step "generate bindings"
bash bindings/generate.sh --test-hooks

step "Kotlin suite (JVM + JNA against target/release/libcrewsafe.so and a reference server)"
bash bindings/with-test-server.sh \
  bash bindings/kotlin/run-tests.sh target/release bindings/kotlin/generated bindings/kotlin/tests

step "Kotlin FFI cost (smoke run; full figures: bash bindings/kotlin/bench/run.sh)"
bash bindings/kotlin/bench/run.sh 200 20000

step "Swift suite (Swift 6 in the trixie chroot against the same library and a reference server)"
bash bindings/with-test-server.sh \
  bash bindings/swift/run-tests.sh target/release bindings/swift/generated bindings/swift/tests

step "Android sample app logic (plain Kotlin classes on the JVM + JNA, reference server)"
bash android-sample/run-jvm-tests.sh target/release bindings/kotlin/generated

step "iOS sample app logic (plain Swift files in the trixie chroot, reference server)"
bash ios-sample/run-linux-tests.sh target/release bindings/swift/generated

step "the shipped library: dist build size (target 4 MiB), then the Android sample app logic against a dist build"
# The flags that trim the shipped library (fat LTO, SQLite options, the URL parser without
# Unicode tables) are exercised here: the tests above use the release build. The second
# build adds the test hooks the generated bindings expect.
scripts/library-size.sh
CARGO_TARGET_DIR=target/size scripts/dist-build.sh --features test-hooks >/dev/null
bash android-sample/run-jvm-tests.sh target/size/dist bindings/kotlin/generated

step "all checks passed"
