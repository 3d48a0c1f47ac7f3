#!/usr/bin/env bash
# Requests/s and latency of the reference server (`smimp-gateway server`) under the
# load of examples/server_load.rs, in one run, for three configurations
# (docs/performance.md, "Reference server under load"; docs/scaling.md):
#   sqlite  one instance on SQLite
#   pg      one instance on PostgreSQL
#   pg×2    two instances on one PostgreSQL database (same server.toml database URL,
#           two ports, one certificate), each virtual client's calls alternating
#           between them, so that any disagreement between them shows as an error or
#           a divergence (a stored message not listed, a deleted one still listed)
# Each configuration gets a fresh database and its own accounts (`server add-account`,
# then initialised by the load tool), the shipped limits, and PoW at 0 bits
# (`default_zero_bits = 0`) so that the server, not hashing, is measured. PostgreSQL is
# a private cluster started here (tests/pg/start.sh) and stopped at the end.
#
# Usage: cargo build --release --bin smimp-gateway --example server_load && bash bench/server_load.sh
# Environment: SMIMP_BIN (default target/release/smimp-gateway), SMIMP_LOAD (default
# target/release/examples/server_load), CLIENTS (default 8), ONE_SECONDS (the single
# instance runs, default 10), TWO_SECONDS (the two-instance run, default 30).
# Also reported: the CPU seconds the server instance(s) and the PostgreSQL cluster used
# during the run (/proc/PID/stat), and each instance's resident set at its end.
# Every wait is bounded; everything listens on 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."
name=server_load
bin=${SMIMP_BIN:-target/release/smimp-gateway}
load=${SMIMP_LOAD:-target/release/examples/server_load}
clients=${CLIENTS:-8} one_seconds=${ONE_SECONDS:-10} two_seconds=${TWO_SECONDS:-30}
for exe in "$bin" "$load"; do
  [ -x "$exe" ] || { echo "$name: $exe is missing: run cargo build --release --bin smimp-gateway --example server_load" >&2; exit 1; }
done

dir=$(mktemp -d)
pids=()
pg_dir=
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -n "$pg_dir" ]; then bash tests/pg/stop.sh "$pg_dir" || true; fi
  rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_port() { # at most 30 s
  for _ in $(seq 1 300); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done
  echo "$name: nothing listens on 127.0.0.1:$1 after 30 s" >&2; return 1
}
# rss PID — resident set now and at its peak, in MiB ("now peak").
rss() {
  awk '/^VmRSS:/ { now = $2 } /^VmHWM:/ { peak = $2 } END { printf "%.0f %.0f", now / 1024, peak / 1024 }' "/proc/$1/status"
}

# cpu PID... — user + system CPU seconds the processes have used so far.
cpu() {
  local ticks=0 pid fields
  for pid in "$@"; do
    fields=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null) || continue
    ticks=$((ticks + $(echo "$fields" | awk '{ print $12 + $13 }')))
  done
  python3 -c "print($ticks / $(getconf CLK_TCK))"
}
# The PostgreSQL cluster's processes: the postmaster and its children (backends, writers).
pg_pids() {
  local postmaster
  postmaster=$(head -n 1 "$pg_dir/data/postmaster.pid")
  echo "$postmaster" $(ps -o pid= --ppid "$postmaster")
}

pg_env=$(bash tests/pg/start.sh)
eval "$pg_env"
pg_dir=$SMIMP_TEST_POSTGRES_DIR
pg_base=${SMIMP_TEST_POSTGRES%/*}
# tests/pg/start.sh turns durability off (its clusters are thrown away); the SQLite
# store commits with a full sync, so for a fair comparison the cluster restarts here
# with PostgreSQL's durable defaults (fsync, synchronous_commit, full_page_writes on).
pg_port=${pg_base##*:}
pg_bin=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)}
as_owner=()
if [ "$(id -u)" = 0 ]; then as_owner=(runuser -u postgres --); fi
"${as_owner[@]}" "$pg_bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/server.log" -w -t 60 -m fast \
  -o "-c listen_addresses=127.0.0.1 -p $pg_port -k $pg_dir -c max_connections=400" restart >/dev/null
[ "$(psql -qtA "$SMIMP_TEST_POSTGRES" -c 'SHOW fsync')" = on ] || { echo "$name: PostgreSQL still runs without fsync" >&2; exit 1; }

# configure FILE DATABASE PORT — a server.toml from the shipped example.
configure() {
  sed -e "s|^listen = .*|listen = \"127.0.0.1:$3\"|" -e "s|^public_base = .*|public_base = \"example.org:$3\"|" \
      -e "s|^database = .*|database = \"$2\"|" -e "s|^default_zero_bits = .*|default_zero_bits = 0|" \
      config/server.example.toml > "$1"
}

# measure LABEL DATABASE INSTANCES SECONDS — runs one configuration; appends its
# result (the load tool's JSON with the label and RSS added) to $dir/results.
measure() {
  local label=$1 database=$2 instances=$3 seconds=$4
  local conf=$dir/$label i port
  local ports=() configs=() servers=() started=()
  mkdir -p "$conf"
  for i in $(seq 1 "$instances"); do
    port=$(free_port)
    ports+=("$port")
    configs+=("$conf/server$i.toml")
    configure "$conf/server$i.toml" "$database" "$port"
    servers+=(--server "127.0.0.1:$port")
  done
  : > "$conf/accounts"
  for i in $(seq 1 "$clients"); do
    printf 'load%s@example.org %s\n' "$i" "$("$bin" server add-account --config "${configs[0]}" "load$i@example.org" 2>>"$conf/admin.log" \
      | sed -n 's/^one-time initialisation password: //p')" >> "$conf/accounts"
  done
  # One after the other: the first makes the development CA and certificate in the
  # shared directory, the second finds them there.
  for i in $(seq 0 $((instances - 1))); do
    "$bin" server --config "${configs[$i]}" 2>"$conf/server$i.log" &
    pids+=($!)
    started+=($!)
    wait_port "${ports[$i]}"
  done
  "$bin" server export-ca --config "${configs[0]}" > "$conf/ca.pem"
  local cpu_before pg_before
  cpu_before=$(cpu "${started[@]}")
  pg_before=$(cpu $(pg_pids))
  "$load" --domain example.org --ca "$conf/ca.pem" "${servers[@]}" --accounts "$conf/accounts" \
    --clients "$clients" --seconds "$seconds" > "$conf/result.json"
  local cpu_used pg_used
  cpu_used=$(python3 -c "print(round($(cpu "${started[@]}") - $cpu_before, 2))")
  pg_used=$(python3 -c "print(round($(cpu $(pg_pids)) - $pg_before, 2))")
  local memory=()
  for i in "${started[@]}"; do memory+=("$(rss "$i")"); done
  for i in "${started[@]}"; do kill "$i"; wait "$i" 2>/dev/null || true; done
  python3 - "$label" "$conf/result.json" "$cpu_used" "$pg_used" "${memory[@]}" >> "$dir/results" <<'EOF'
import json, sys
result = json.load(open(sys.argv[2]))
result["config"] = sys.argv[1]
result["server_cpu_s"] = float(sys.argv[3])
result["postgres_cpu_s"] = float(sys.argv[4])
result["rss_mib"] = [list(map(int, m.split())) for m in sys.argv[5:]]
print(json.dumps(result))
EOF
  echo "$name: $label: $(cat "$conf/result.json")" >&2
}

new_pg_database() {
  local db=smimp_load_$1
  psql -q "$SMIMP_TEST_POSTGRES" -c "CREATE DATABASE $db" >/dev/null
  echo "$pg_base/$db"
}

measure sqlite server.sqlite 1 "$one_seconds"
measure pg "$(new_pg_database one)" 1 "$one_seconds"
measure pg×2 "$(new_pg_database two)" 2 "$two_seconds"

python3 - "$dir/results" <<'EOF'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
kinds = ["get_message_key", "get_pow_params", "send_message", "list_messages", "get_message", "delete_message"]
short = ["key", "pow", "send", "list", "get", "delete"]
print("| config | clients × s | requests/s | " + " | ".join(f"p99 {k} ms" for k in short)
      + " | login p99 ms | errors | divergence | RSS now/peak MiB |")
print("|---" * (len(short) + 7) + "|")
for r in rows:
    p99 = " | ".join(str(r["kinds"][k]["p99_ms"]) for k in kinds)
    rss = ", ".join(f"{now}/{peak}" for now, peak in r["rss_mib"])
    print(f"| {r['config']} | {r['clients']} × {r['seconds']} | {r['requests_per_s']} | {p99} | "
          f"{r['login']['p99_ms']} | {r['errors']} | {r['divergence']} | {rss} |")
print()
print("| config | " + " | ".join(f"{k}/s" for k in short) + " | p50 send ms | rounds "
      + "| server CPU s | PostgreSQL CPU s | server CPU ms/request | PostgreSQL CPU ms/request |")
print("|---" * (len(short) + 7) + "|")
for r in rows:
    rates = " | ".join(str(r["kinds"][k]["per_s"]) for k in kinds)
    per = lambda s: f"{1000 * s / r['requests']:.3f}"
    print(f"| {r['config']} | {rates} | {r['kinds']['send_message']['p50_ms']} | {r['rounds']} | "
          f"{r['server_cpu_s']} | {r['postgres_cpu_s']} | {per(r['server_cpu_s'])} | {per(r['postgres_cpu_s'])} |")
print()
base = next(r for r in rows if r["config"] == "sqlite")
for r in rows:
    if r is not base:
        print(f"{r['config']} ÷ sqlite, requests/s: {r['requests_per_s'] / base['requests_per_s']:.2f}")
for r in rows:
    if r["first_error"]:
        print(f"{r['config']}: first error: {r['first_error']}")
EOF
