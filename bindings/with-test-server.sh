#!/usr/bin/env bash
# Runs a command with the reference server (release build, test faults on) listening on a
# free loopback port, a device enrolled, and these variables exported for the binding suites:
#   CREWSAFE_TEST_SERVER_URL    e.g. http://127.0.0.1:41234
#   CREWSAFE_TEST_DEVICE_ID     the enrolled device id (device-0001)
#   CREWSAFE_TEST_DEVICE_TOKEN  its bearer token
#   CREWSAFE_TEST_DISPATCHER_TOKEN  a dispatcher token (to acknowledge an SOS)
# The server and its temporary database are removed when the command ends.
#
#   bindings/with-test-server.sh <command...>
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release -p crewsafe-server --quiet
bin=target/release/crewsafe-server
work=$(mktemp -d)
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then
    # A SIGTERM that reaches the forked shell before it execs the server is lost: insist.
    kill "$server_pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

export CREWSAFE_TEST_DEVICE_ID=device-0001
CREWSAFE_TEST_DEVICE_TOKEN=$("$bin" enroll-device --db "$work/server.db" --device-id "$CREWSAFE_TEST_DEVICE_ID")
CREWSAFE_TEST_DISPATCHER_TOKEN=$("$bin" enroll-dispatcher --db "$work/server.db" --name test-dispatcher)
export CREWSAFE_TEST_DEVICE_TOKEN CREWSAFE_TEST_DISPATCHER_TOKEN

: >"$work/out"   # exists before the loop reads it (set -e)
# No per-device rate limit: the suites run many phones' worth of tests as one device.
"$bin" --db "$work/server.db" --listen 127.0.0.1:0 --test-faults --device-rate 0 >"$work/out" 2>"$work/log" &
server_pid=$!
for _ in $(seq 1 100); do
  url=$(sed -n 's/^listening on //p' "$work/out" 2>/dev/null || true)
  [ -n "$url" ] && break
  sleep 0.1
done
[ -n "${url:-}" ] || { echo "the test server did not start:" >&2; cat "$work/log" >&2; exit 1; }
export CREWSAFE_TEST_SERVER_URL=$url
echo "[test server] $url" >&2
"$@"
