#!/usr/bin/env bash
# chroot.sh - a cached Debian trixie chroot with Swift 6 (package swiftlang), for
# testing the Swift bindings on a host without Swift (e.g. bookworm). Needs root.
#
#   chroot.sh ensure                      create the chroot if missing, print its path
#   chroot.sh run <host-dir> -- <cmd...>  run <cmd> inside it with <host-dir> at /work
#                                         (clean environment; CREWSAFE_TEST_* are passed in)
#
# Cache: ${CREWSAFE_CACHE:-$HOME/.cache/crewsafe}/swift-trixie. The Debian mirror is
# read from the host's apt sources (override: CREWSAFE_DEBIAN_MIRROR).
set -euo pipefail

CACHE=${CREWSAFE_CACHE:-$HOME/.cache/crewsafe}
ROOT=$CACHE/swift-trixie
MARKER=.crewsafe-swift-ready
PACKAGES="swiftlang libc6-dev libstdc++-14-dev ca-certificates"
APT=(apt-get -o DPkg::Lock::Timeout=600 -y)

log() { echo "[swift-chroot] $*" >&2; }
die() { log "error: $*"; exit 1; }

# First plain Debian archive URI (ends in /debian) from the host's apt sources.
host_mirror() {
  [ -n "${CREWSAFE_DEBIAN_MIRROR:-}" ] && { echo "$CREWSAFE_DEBIAN_MIRROR"; return; }
  local files=() f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] && files+=("$f")
  done
  [ ${#files[@]} -gt 0 ] || return 1
  sed -n -e 's/^[[:space:]]*URIs:[[:space:]]*//p' \
         -e 's/^[[:space:]]*deb[[:space:]]\+\(\[[^]]*\][[:space:]]\+\)\?\([^[:space:]]\+\).*/\2/p' "${files[@]}" |
    tr ' \t' '\n\n' | grep -E '^https?://[^[:space:]]+/debian/?$' | head -n1 | sed 's:/*$::'
}

# Unmount everything mounted at or below $1 (deepest first).
umount_under() {
  local m
  awk -v d="$(realpath -m "$1")" '$2 == d || index($2, d "/") == 1 { print $2 }' /proc/mounts |
    sort -r | while read -r m; do umount -l "$m" || true; done
}

ensure_debootstrap() {
  command -v debootstrap >/dev/null && return
  log "installing debootstrap on the host"
  "${APT[@]}" install debootstrap || { "${APT[@]}" update && "${APT[@]}" install debootstrap; }
}

ensure_chroot() {
  [ -f "$ROOT/$MARKER" ] && return
  [ "$(id -u)" = 0 ] || die "must run as root (debootstrap/chroot)"
  mkdir -p "$CACHE"
  exec 9>"$CACHE/swift-trixie.lock"; flock 9   # one builder at a time
  [ -f "$ROOT/$MARKER" ] && return
  ensure_debootstrap
  local mirror start=$SECONDS
  mirror=$(host_mirror) || true
  [ -n "$mirror" ] || die "no Debian mirror in the apt sources; set CREWSAFE_DEBIAN_MIRROR"
  for tmp in "$ROOT" "$CACHE"/swift-trixie.tmp.*; do   # leftovers of interrupted runs
    [ -e "$tmp" ] || continue
    log "removing incomplete $tmp"; umount_under "$tmp"; rm -rf --one-file-system "$tmp"
  done
  tmp=$CACHE/swift-trixie.tmp.$$   # global: the EXIT trap uses it
  trap 'umount_under "$tmp"' EXIT
  log "debootstrap trixie from $mirror into $tmp (takes a few minutes)"
  debootstrap --variant=minbase trixie "$tmp" "$mirror" >"$CACHE/debootstrap.log" 2>&1 ||
    { tail -n 20 "$CACHE/debootstrap.log" >&2; die "debootstrap failed (log: $CACHE/debootstrap.log)"; }
  echo "deb $mirror trixie main" >"$tmp/etc/apt/sources.list"
  cp -L /etc/resolv.conf "$tmp/etc/resolv.conf"
  mountpoint -q "$tmp/proc" || mount -t proc proc "$tmp/proc"
  log "installing $PACKAGES"
  chroot "$tmp" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
    http_proxy="${http_proxy:-}" https_proxy="${https_proxy:-}" \
    sh -c "apt-get update -q && apt-get install -y -q --no-install-recommends $PACKAGES && apt-get clean" \
    >"$CACHE/apt.log" 2>&1 || { tail -n 20 "$CACHE/apt.log" >&2; die "apt-get in chroot failed (log: $CACHE/apt.log)"; }
  umount_under "$tmp"; trap - EXIT
  touch "$tmp/$MARKER"
  mv -T "$tmp" "$ROOT"
  log "chroot ready in $((SECONDS - start))s: $ROOT ($(du -sh --one-file-system "$ROOT" | cut -f1))"
}

run_in_chroot() {
  [ $# -ge 3 ] && [ "$2" = "--" ] || die "usage: $0 run <host-dir> -- <command...>"
  local dir; dir=$(realpath "$1"); shift 2
  [ -d "$dir" ] || die "no such directory: $dir"
  ensure_chroot
  exec 8>"$CACHE/swift-trixie.run.lock"; flock 8   # /work and /proc are shared: one run at a time
  trap 'umount_under "$ROOT/proc"; umount_under "$ROOT/work"' EXIT
  mkdir -p "$ROOT/work" "$ROOT/tmp"
  umount_under "$ROOT/work"
  mountpoint -q "$ROOT/proc" || mount -t proc proc "$ROOT/proc"
  local copied=
  if ! mount --bind "$dir" "$ROOT/work" 2>/dev/null; then
    log "bind mount failed; copying $dir in (and back out afterwards)"
    rm -rf --one-file-system "$ROOT/work"; cp -a "$dir" "$ROOT/work"; copied=1
  fi
  local rc=0 v pass=()
  # The environment is cleared, except the test suites' CREWSAFE_TEST_* variables.
  for v in $(compgen -e | grep '^CREWSAFE_TEST_' || true); do pass+=("$v=${!v}"); done
  chroot "$ROOT" /usr/bin/env -i PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin \
    HOME=/root TMPDIR=/tmp LANG=C.UTF-8 TERM="${TERM:-dumb}" "${pass[@]}" \
    /bin/sh -c 'cd /work && exec "$@"' sh "$@" || rc=$?
  if [ -n "$copied" ]; then
    cp -a "$ROOT/work/." "$dir/"; rm -rf --one-file-system "$ROOT/work"; mkdir -p "$ROOT/work"
  fi
  return $rc
}

case "${1:-}" in
  ensure) ensure_chroot; echo "$ROOT" ;;
  run) shift; run_in_chroot "$@" ;;
  *) echo "usage: $0 ensure | run <host-dir> -- <command...>" >&2; exit 2 ;;
esac
