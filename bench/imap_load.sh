#!/usr/bin/env bash
# IMAP under load: smimp-gateway against Dovecot on the same machine, in one run
# (docs/performance.md, "IMAP APPEND and mixed load"). The reference server runs with its
# shipped limits; both servers are reached over implicit TLS with the same certificate by
# the same client (bench/imap_load.py):
#   1. APPEND of a 4 KB message to INBOX, COUNT times over one connection: p50 and p99
#      latency and APPENDs/s (for the gateway each APPEND is sealed and stored at the
#      account's SMIMP server before the tagged OK);
#   2. a mixed load of 5 concurrent clients for SECONDS (login, select, fetch, store,
#      append, store \Deleted, expunge, logout in a loop): commands/s and protocol errors.
# The gateway's resident memory (now and peak, from /proc) is reported beside.
#
#   cargo build --release --bin smimp-gateway && bash bench/imap_load.sh
# Environment: SMIMP_BIN (default target/release/smimp-gateway), COUNT (default 1000),
# SECONDS_MIXED (default 10). Needs dovecot-imapd.
set -euo pipefail
export SMIMP_BIN=${SMIMP_BIN:-target/release/smimp-gateway}
name=imap_load
source "$(dirname "$0")/../tests/clients/common.bash"
source tests/clients/gateway.bash
source bench/dovecot.bash
count=${COUNT:-1000} seconds=${SECONDS_MIXED:-10}

start_gateway 0
gateway_pid=${pids[-1]}
wait_port "$imaps_port"
start_dovecot alice benchpass

load() { # load MODE PORT USER PASSWORD [--nodelay]
  python3 bench/imap_load.py "$1" --port "$2" --ca "$ca" --user "$3" --password "$4" --count "$count" \
    --clients 5 --seconds "$seconds" "${@:5}"
}
g_append=$(load append "$imaps_port" alice@example.org "$alice_password")
d_append=$(load append "$dovecot_port" alice benchpass)
g_append_nd=$(load append "$imaps_port" alice@example.org "$alice_password" --nodelay)
d_append_nd=$(load append "$dovecot_port" alice benchpass --nodelay)
g_mixed=$(load mixed "$imaps_port" alice@example.org "$alice_password")
d_mixed=$(load mixed "$dovecot_port" alice benchpass)
read -r rss_now rss_peak <<<"$(rss_kib "$gateway_pid")"

echo "$name: $(nproc) cores, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1), binary $SMIMP_BIN, $(date -u +%F)"
GA="$g_append" DA="$d_append" GN="$g_append_nd" DN="$d_append_nd" GM="$g_mixed" DM="$d_mixed" RSS_NOW="$rss_now" RSS_PEAK="$rss_peak" python3 - <<'PY'
import json, os
ga, da, gn, dn, gm, dm = (json.loads(os.environ[k]) for k in ("GA", "DA", "GN", "DN", "GM", "DM"))
print("| measurement | smimp-gateway | Dovecot | gateway ÷ Dovecot |")
print("|---|---|---|---|")
print(f"| APPEND 4 KB, p50 latency ({ga['appends']} over one connection) | {ga['p50_ms']:.1f} ms | {da['p50_ms']:.1f} ms | {ga['p50_ms'] / da['p50_ms']:.2f}x |")
print(f"| APPEND 4 KB, p99 latency | {ga['p99_ms']:.1f} ms | {da['p99_ms']:.1f} ms | {ga['p99_ms'] / da['p99_ms']:.2f}x |")
print(f"| APPENDs/s, one connection | {ga['per_second']:.0f} | {da['per_second']:.0f} | {ga['per_second'] / da['per_second']:.2f} |")
print(f"| APPEND 4 KB, p50 / p99, client with TCP_NODELAY | {gn['p50_ms']:.1f} / {gn['p99_ms']:.1f} ms | {dn['p50_ms']:.1f} / {dn['p99_ms']:.1f} ms | {gn['p50_ms'] / dn['p50_ms']:.2f}x |")
print(f"| APPENDs/s, client with TCP_NODELAY | {gn['per_second']:.0f} | {dn['per_second']:.0f} | {gn['per_second'] / dn['per_second']:.2f} |")
print(f"| mixed load, {gm['clients']} clients, {gm['seconds']:.0f} s: commands/s | {gm['per_second']:.0f} | {dm['per_second']:.0f} | {gm['per_second'] / dm['per_second']:.2f} |")
print(f"| mixed load: protocol errors | {gm['errors']} {gm['error_kinds'] or ''} | {dm['errors']} {dm['error_kinds'] or ''} | |")
print(f"| gateway RSS after the run / peak | {int(os.environ['RSS_NOW']) // 1024} MiB / {int(os.environ['RSS_PEAK']) // 1024} MiB | | |")
PY
finished=yes
