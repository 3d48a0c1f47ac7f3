# Shared by the scripts in tests/clients/ (sourced, not run): the binary under test, a
# scratch directory and background processes cleaned up on exit, counted checks, the
# "ran to the end" guard, and loopback port helpers. The sourcing script sets `name`
# first and ends with `finish`.
#
# A script passes only by reaching `finish` with no failed check: the EXIT trap fails
# it (status 1, and a FAIL line saying so) whenever it stops anywhere else, whether a
# command failed under `set -e` or something called `exit 0` early.

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
bin=${SMIMP_BIN:-target/debug/smimp-gateway}
[ -x "$bin" ] || { echo "$name: $bin is missing: run cargo build first" >&2; exit 1; }

dir=$(mktemp -d)
pids=()
finished=no
cleanup() {
  local rc=$?
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null
  rm -rf "$dir"
  if [ "$finished" != yes ]; then
    echo "FAIL $name: stopped before its end (exit status $rc); the checks after that point did not run"
    exit 1
  fi
}
trap cleanup EXIT
# Stopped by a signal (tests/run's time limit, ^C): the EXIT trap reports that status.
trap 'exit 143' TERM
trap 'exit 130' INT

passed=0 failed=0
check() { # check NAME EXPECTED ACTUAL
  if [ "$2" = "$3" ]; then passed=$((passed + 1)); echo "ok   $1";
  else failed=$((failed + 1)); echo "FAIL $1: expected [$2], got [$3]"; fi
}
contains() { # contains NAME NEEDLE HAYSTACK
  case "$3" in *"$2"*) passed=$((passed + 1)); echo "ok   $1";;
  *) failed=$((failed + 1)); echo "FAIL $1: [$2] not in:"; printf '%s\n' "$3" | tail -n 15;; esac
}
# tally WHAT STATUS OUTPUT — the result of an embedded program (Python) that prints
# "ok   ..." and "FAIL ..." lines and, as its very last line, "end WHAT": prints the
# output, counts its lines, and fails unless the program exited 0 and printed that last
# line, so an uncaught exception or an early exit cannot pass silently.
tally() {
  printf '%s\n' "$3"
  passed=$((passed + $(printf '%s\n' "$3" | grep -c '^ok ' || true)))
  failed=$((failed + $(printf '%s\n' "$3" | grep -c '^FAIL' || true)))
  check "$1: exits 0" 0 "$2"
  check "$1: ran to its end" "end $1" "$(printf '%s\n' "$3" | tail -n 1)"
}
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_port() { # at most 10 s
  for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; return 1
}
finish() {
  finished=yes
  echo "$name: $passed passed, $failed failed"
  [ "$passed" -gt 0 ] && [ "$failed" -eq 0 ]
}
