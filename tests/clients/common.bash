# Shared by the scripts in tests/clients/ (sourced, not run): the binary under test, a
# scratch directory and background processes cleaned up on exit, counted checks, and
# loopback port helpers. The sourcing script sets `name` first.

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
bin=${SMIMP_BIN:-target/debug/smimp-gateway}
[ -x "$bin" ] || { echo "$name: $bin is missing: run cargo build first" >&2; exit 1; }

dir=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT

passed=0 failed=0
check() { # check NAME EXPECTED ACTUAL
  if [ "$2" = "$3" ]; then passed=$((passed + 1)); echo "ok   $1";
  else failed=$((failed + 1)); echo "FAIL $1: expected [$2], got [$3]"; fi
}
contains() { # contains NAME NEEDLE HAYSTACK
  case "$3" in *"$2"*) passed=$((passed + 1)); echo "ok   $1";;
  *) failed=$((failed + 1)); echo "FAIL $1: [$2] not in:"; printf '%s\n' "$3" | tail -n 15;; esac
}
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_port() { # at most 10 s
  for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; return 1
}
finish() { echo "$name: $passed passed, $failed failed"; [ "$failed" -eq 0 ]; }
