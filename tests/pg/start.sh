#!/usr/bin/env bash
# Starts a private PostgreSQL cluster for the server's store tests and prints, for
# `eval`, the variables the tests read:
#   SMIMP_TEST_POSTGRES      URL of its maintenance database (tests create their own)
#   SMIMP_TEST_POSTGRES_DIR  its directory, for tests/pg/stop.sh
# The cluster is the caller's alone: its own data directory under a new temporary
# directory, a free port on 127.0.0.1 only, a Unix socket in that directory, trust
# authentication (nothing outside this machine can reach it), durability off (it is
# thrown away). Run as root, it runs the server as the `postgres` user (initdb refuses
# root). Usage: eval "$(bash tests/pg/start.sh)"; ...; bash tests/pg/stop.sh "$SMIMP_TEST_POSTGRES_DIR"
set -euo pipefail

bin=${PG_BIN:-}
if [ -z "$bin" ]; then
  bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
fi
if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
  echo "tests/pg/start.sh: PostgreSQL's initdb was not found (install Debian's postgresql package, or set PG_BIN)" >&2
  exit 1
fi

dir=$(mktemp -d "${TMPDIR:-/tmp}/smimp-pg.XXXXXX")
as_owner=()
if [ "$(id -u)" = 0 ]; then
  if ! id postgres >/dev/null 2>&1; then
    echo "tests/pg/start.sh: run as root, the cluster needs the postgres user (from Debian's postgresql package)" >&2
    exit 1
  fi
  chown postgres: "$dir"
  as_owner=(runuser -u postgres --)
fi
chmod 700 "$dir"

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"${as_owner[@]}" "$bin/initdb" -D "$dir/data" -U smimp --auth=trust -E UTF8 --locale=C >"$dir/initdb.log" 2>&1 || {
  cat "$dir/initdb.log" >&2
  exit 1
}
"${as_owner[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
  -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=400" \
  start >/dev/null || {
  cat "$dir/server.log" >&2
  exit 1
}
echo "export SMIMP_TEST_POSTGRES=postgres://smimp@127.0.0.1:$port/postgres"
echo "export SMIMP_TEST_POSTGRES_DIR=$dir"
