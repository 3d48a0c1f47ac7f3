#!/usr/bin/env bash
# Stops the cluster tests/pg/start.sh started in directory $1 and removes it.
set -euo pipefail
dir=${1:?usage: tests/pg/stop.sh DIR (SMIMP_TEST_POSTGRES_DIR from tests/pg/start.sh)}
[ -d "$dir/data" ] || { echo "tests/pg/stop.sh: $dir holds no cluster" >&2; exit 1; }
bin=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)}
as_owner=()
if [ "$(id -u)" = 0 ]; then
  as_owner=(runuser -u postgres --)
fi
"${as_owner[@]}" "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null || true
rm -rf "$dir"
