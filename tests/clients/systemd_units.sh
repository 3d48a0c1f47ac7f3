#!/usr/bin/env bash
# The systemd units of systemd/: `systemd-analyze verify` (the system unit, and the user
# unit under a user manager) reports nothing about either, with ExecStart pointed at the
# binary under test (verify needs it to exist); `systemd-analyze security --offline` rates
# both hardened (exposure at most 2.0 of 10, 4.0 for the user unit); and the readiness
# protocol their Type=notify relies on really works: `server` and `run`, started with
# $NOTIFY_SOCKET as systemd starts them, send READY=1 once they listen, and STOPPING=1 on
# SIGTERM.
set -euo pipefail
name=systemd_units
source "$(dirname "$0")/common.bash"
source "$(dirname "$0")/gateway.bash"

command -v systemd-analyze >/dev/null || { echo "FAIL systemd-analyze is missing: apt-get install systemd"; exit 1; }
binary=$(realpath "$bin")
mkdir -m 700 "$dir/runtime"

for unit in smimp-server smimp-gateway; do
  sed "s#^ExecStart=/usr/local/bin/smimp-gateway #ExecStart=$binary #" "systemd/$unit.service" > "$dir/$unit.service"
  check "$unit.service: ExecStart runs the binary under test" 1 "$(grep -c "^ExecStart=$binary " "$dir/$unit.service")"
  check "$unit.service: Type=notify" 1 "$(grep -c '^Type=notify$' "$dir/$unit.service")"
done
check "smimp-gateway.service: the passphrase comes as a credential" 1 \
  "$(grep -c '^LoadCredential=passphrase:' "$dir/smimp-gateway.service")"

rc=0; out=$(systemd-analyze verify "$dir/smimp-server.service" 2>&1) || rc=$?
check "systemd-analyze verify smimp-server.service succeeds" 0 "$rc"
check "systemd-analyze verify smimp-server.service reports nothing" "" "$out"
rc=0; out=$(XDG_RUNTIME_DIR="$dir/runtime" systemd-analyze --user verify "$dir/smimp-gateway.service" 2>&1) || rc=$?
check "systemd-analyze --user verify smimp-gateway.service succeeds" 0 "$rc"
check "systemd-analyze --user verify smimp-gateway.service reports nothing" "" "$out"

# exposure UNIT [--user] — the overall exposure level systemd-analyze security gives.
exposure() {
  XDG_RUNTIME_DIR="$dir/runtime" systemd-analyze ${2:-} security --offline=yes "$1" 2>&1 \
    | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p'
}
# The offline rating scores a user unit as if it ran as root with every capability
# (about 2.5 points), which a user manager never grants, so its bound is higher.
for triple in "smimp-server.service::2.0" "smimp-gateway.service:--user:4.0"; do
  IFS=: read -r unit mode bound <<< "$triple"
  level=$(exposure "$dir/$unit" "$mode")
  check "$unit is hardened: exposure [$level] is at most $bound" 1 \
    "$(python3 -c 'import sys; print(1 if sys.argv[1] and float(sys.argv[1]) <= float(sys.argv[2]) else 0)' "$level" "$bound")"
done

# Readiness: a datagram socket standing in for systemd's, each message one line.
python3 - "$dir/notify.sock" "$dir/notify.log" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], "a") as log:
    while True:
        log.write(s.recv(4096).decode() + "\n")
        log.flush()
PY
pids+=($!)
for _ in $(seq 1 100); do [ -S "$dir/notify.sock" ] && break; sleep 0.1; done
# wait_lines TEXT COUNT — prints how many lines of the log are TEXT once there are COUNT (at most 20 s).
wait_lines() {
  for _ in $(seq 1 200); do
    [ "$(grep -c -x "$1" "$dir/notify.log" 2>/dev/null || true)" -ge "$2" ] && break; sleep 0.1
  done
  grep -c -x "$1" "$dir/notify.log" 2>/dev/null || echo 0
}
export NOTIFY_SOCKET="$dir/notify.sock"
start_gateway 8   # the server and `run`, both with $NOTIFY_SOCKET
unset NOTIFY_SOCKET
check "server and run each sent READY=1 once listening" 2 "$(wait_lines READY=1 2)"
check "nothing but READY=1 before shutdown" 2 "$(grep -c . "$dir/notify.log")"
run_pid=${pids[-1]}
kill -TERM "$run_pid"
rc=0; wait "$run_pid" || rc=$?
check "run exits 0 on SIGTERM" 0 "$rc"
check "run sent STOPPING=1 on SIGTERM" 1 "$(wait_lines STOPPING=1 1)"

finish
