#!/usr/bin/env bash
# The first sync of a large INBOX (docs/performance.md, "First sync at 10,000 and 100,000
# messages"): smimp-gateway against Dovecot on the same machine, in one run per size.
#
# The reference server runs with its shipped configuration, beside the gateway. COUNT
# messages of 4 KB from alice to bob are sealed and signed by the protocol core and stored
# straight into the server's database (examples/seed_mailbox.rs: proof of work and one
# round trip each would take hours at 100,000). Then one client (bench/imap_client.py)
# times, over implicit TLS: SELECT plus the header fetch a mail client does first, cold
# (the gateway fetches, verifies, decrypts, renders and seals every message during
# SELECT), the same fetch warm, and every full body. Dovecot serves the very messages
# the gateway showed, from a Maildir, timed the same way. The gateway's resident memory
# comes from /proc: the peak over the run (VmHWM) and the settled size 10 s after.
#
#   bash bench/imap_sync.sh            (10,000 then 100,000 messages)
#   bash bench/imap_sync.sh COUNT      (one size)
# Needs dovecot-imapd. Builds the release binary and example first.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -eq 0 ]; then
  for count in 10000 100000; do bash "$0" "$count"; done
  exit 0
fi
count=$1
[ "$count" -ge 1 ] && [ "$count" -le 200000 ] || { echo "imap_sync: COUNT must be 1 to 200000" >&2; exit 1; }
cargo build --release --bin smimp-gateway --example seed_mailbox >&2
target=${CARGO_TARGET_DIR:-target}
export SMIMP_BIN=$target/release/smimp-gateway
name=imap_sync
source tests/clients/common.bash
source tests/clients/gateway.bash
source bench/dovecot.bash

start_gateway "$(sed -n 's/^default_zero_bits = //p' config/server.example.toml)"
gateway_pid=${pids[-1]}
wait_port "$imaps_port"
bob_password=$(sed -n 's/^  password: //p' "$dir/gateway/bob.init")

echo "== seeding $count messages" >&2
timeout 1800 "$target/release/examples/seed_mailbox" --server-config "$dir/server/server.toml" \
  --gateway-config "$dir/gateway/gateway.toml" --from alice@example.org --to bob@example.org --count "$count" >&2
read -r rss_before _ <<<"$(rss_kib "$gateway_pid")"

gateway=$(timeout 3600 python3 bench/imap_client.py --port "$imaps_port" --ca "$ca" --user bob@example.org \
            --password "$bob_password" --expect "$count" --export "$dir/dovecot/home/bob/Maildir")
echo "gateway: $gateway" >&2
read -r _ rss_peak <<<"$(rss_kib "$gateway_pid")"
sleep 10
read -r rss_settled _ <<<"$(rss_kib "$gateway_pid")"

start_dovecot bob benchpass
peer=$(timeout 3600 python3 bench/imap_client.py --port "$dovecot_port" --ca "$ca" --user bob --password benchpass \
         --expect "$count")
echo "dovecot: $peer" >&2

echo "$name: $(nproc) cores, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1), $(date -u +%F)"
GATEWAY="$gateway" PEER="$peer" PEAK="$rss_peak" SETTLED="$rss_settled" BEFORE="$rss_before" python3 - <<'PY'
import json, os
g, d = json.loads(os.environ["GATEWAY"]), json.loads(os.environ["PEER"])
n = g["messages"]
print(f"| measurement ({n} messages, {g['bytes'] // 1024} KiB) | smimp-gateway | Dovecot | gateway ÷ Dovecot |")
print("|---|---|---|---|")
print(f"| first sync: SELECT alone | {g['select_s']:.2f} s ({n / g['select_s']:.0f} msg/s) | {d['select_s']:.2f} s | {g['select_s'] / d['select_s']:.2f}x |")
for key, label in (("headers_cold_s", "SELECT + header fetch, cold"),
                   ("headers_warm_s", "header fetch, warm"),
                   ("bodies_s", "every full body (BODY.PEEK[])")):
    rate = f" ({n / g[key]:.0f} msg/s)" if key == "headers_cold_s" else ""
    print(f"| {label} | {g[key]:.2f} s{rate} | {d[key]:.2f} s | {g[key] / d[key]:.2f}x |")
mib = lambda k: int(os.environ[k]) // 1024
print(f"| gateway RSS: peak over the run / settled 10 s after / before the sync | {mib('PEAK')} / {mib('SETTLED')} / {mib('BEFORE')} MiB | | |")
PY
finished=yes
