#!/usr/bin/env bash
# Builds every CrewSafe fuzz target and runs each one briefly (the CI smoke run), or long.
#
#   fuzz/smoke.sh                      # build all, ~10 s per target (FUZZ_SECS overrides)
#   fuzz/smoke.sh --long               # each target until 10 million execs or FUZZ_LONG_SECS
#   fuzz/smoke.sh --long open_corrupt_db retry_after   # only these targets
#
# Stable toolchain only. With --sanitizer none (the default here) cargo-fuzz passes only
# stable rustc flags (sanitizer-coverage passes, --cfg fuzzing), so nothing else is needed.
# FUZZ_SANITIZER=address selects ASan, whose -Zsanitizer flag is nightly-only: the script
# then sets RUSTC_BOOTSTRAP=1, which makes a stable rustc accept it. See fuzz/README.md.
#
# Builds go to $FUZZ_TARGET_DIR, by default ~/.cache/crewsafe/fuzz-target: outside the work
# tree, so that CI, which runs in a fresh clone each time, finds them warm on a machine that
# built them before (a cold build takes about 10 CPU-minutes; a warm smoke run about 1 min).
#
# Corpora grow in fuzz/corpus/<target> (git-ignored), seeded from fuzz/seeds/<target>
# (committed). A crash is saved in fuzz/artifacts/<target>/ and fails the script. Logs of
# each run are in fuzz/logs/<target>-{smoke,long}.log.
set -euo pipefail
cd "$(dirname "$0")"

ALL_TARGETS=(envelope_open batch_response retry_after open_corrupt_db server_request)
CARGO_FUZZ_VERSION=0.13.2

mode=smoke
targets=()
for arg in "$@"; do
  case "$arg" in
    --long) mode=long ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    -*) echo "unknown option $arg" >&2; exit 2 ;;
    *) targets+=("$arg") ;;
  esac
done
[[ ${#targets[@]} -gt 0 ]] || targets=("${ALL_TARGETS[@]}")

SANITIZER=${FUZZ_SANITIZER:-none}
TARGET_DIR=${FUZZ_TARGET_DIR:-$HOME/.cache/crewsafe/fuzz-target}
SMOKE_SECS=${FUZZ_SECS:-10}
LONG_SECS=${FUZZ_LONG_SECS:-7200}
LONG_RUNS=${FUZZ_LONG_RUNS:-10000000}

start=$(date +%s)
say() { echo "=== [fuzz $(( $(date +%s) - start ))s] $*"; }

if ! cargo fuzz --version >/dev/null 2>&1; then
  say "installing cargo-fuzz $CARGO_FUZZ_VERSION from crates.io"
  cargo install cargo-fuzz --locked --version "$CARGO_FUZZ_VERSION"
fi

if [[ $SANITIZER != none ]]; then export RUSTC_BOOTSTRAP=1; fi
# Scratch space of open_corrupt_db: tmpfs when there is one, removed at exit.
shm=/dev/shm
[[ -d $shm && -w $shm ]] || shm=${TMPDIR:-/tmp}
CREWSAFE_FUZZ_DIR=$(mktemp -d "$shm/crewsafe-fuzz.XXXXXX")
export CREWSAFE_FUZZ_DIR
trap 'rm -rf "$CREWSAFE_FUZZ_DIR"' EXIT

say "build (${targets[*]}; sanitizer $SANITIZER)"
build_start=$(date +%s)
fuzz_opts=(--sanitizer "$SANITIZER" --target-dir "$TARGET_DIR")
if [[ ${#targets[@]} -eq ${#ALL_TARGETS[@]} ]]; then
  cargo fuzz build "${fuzz_opts[@]}"
else
  for t in "${targets[@]}"; do cargo fuzz build "${fuzz_opts[@]}" "$t"; done
fi
say "built in $(( $(date +%s) - build_start ))s"

mkdir -p logs
if [[ $mode == long ]]; then
  limits=(-runs="$LONG_RUNS" -max_total_time="$LONG_SECS")
else
  limits=(-max_total_time="$SMOKE_SECS")
fi

failed=()
summary=()
for t in "${targets[@]}"; do
  [[ -d seeds/$t ]] || { echo "no target $t" >&2; exit 2; }
  mkdir -p "corpus/$t"
  say "run $t (${limits[*]})"
  t0=$(date +%s)
  set +e
  cargo fuzz run "${fuzz_opts[@]}" "$t" "corpus/$t" "seeds/$t" -- \
    "${limits[@]}" -timeout=20 -rss_limit_mb=4096 -print_final_stats=1 \
    >"logs/$t-$mode.log" 2>&1
  rc=$?
  set -e
  secs=$(( $(date +%s) - t0 ))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "logs/$t-$mode.log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "logs/$t-$mode.log" | tail -1)
  cov=$(grep -Eo 'cov: [0-9]+' "logs/$t-$mode.log" | tail -1 || true)
  line=$(printf '%-16s %12s execs %8s/s  %4ss  %s' "$t" "${execs:-?}" "${rate:-?}" "$secs" "$cov")
  if [[ $rc -ne 0 ]]; then
    line="$line  FAILED (exit $rc)"
    failed+=("$t")
    echo "--- tail of fuzz/logs/$t-$mode.log:"
    tail -40 "logs/$t-$mode.log"
  fi
  summary+=("$line")
  echo "$line"
done

say "summary ($mode)"
printf '%s\n' "${summary[@]}"
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "fuzz: ${#failed[@]} failed (${failed[*]}); reproduce with:" >&2
  for t in "${failed[@]}"; do
    for a in artifacts/"$t"/*; do
      [[ -e $a ]] && echo "  cd fuzz && ${RUSTC_BOOTSTRAP:+RUSTC_BOOTSTRAP=1 }cargo fuzz run --sanitizer $SANITIZER --target-dir $TARGET_DIR $t $a" >&2
    done
  done
  echo "fuzz: $(( ${#targets[@]} - ${#failed[@]} )) passed, ${#failed[@]} failed"
  exit 1
fi
echo "fuzz: ${#targets[@]} passed, 0 failed"
