#!/usr/bin/env bash
# IMAP on a 10,000-message INBOX: smimp-gateway against Dovecot on the same machine, in
# one run (docs/performance.md). The messages go in through the gateway's SMTP, so they
# arrive at the SMIMP server sealed, with PoW at 0 bits; the gateway's first SELECT then
# syncs them cold (fetch, verify, decrypt, render, seal into the cache), and the same
# client times the first-sync header fetch cold and warm and a fetch of every full body.
# Dovecot then serves the very messages the gateway rendered, from a Maildir, over TLS
# with the same certificate, and is timed the same way. Results are ratios to Dovecot.
#
#   bash bench/imap_compare.sh [COUNT]     (default 10000; needs dovecot-imapd, curl)
set -euo pipefail
count=${1:-10000}
cd "$(dirname "$0")/.."
cargo build --release --bin smimp-gateway >&2
export SMIMP_BIN=target/release/smimp-gateway
name=imap_compare
source tests/clients/common.bash
source tests/clients/gateway.bash
source bench/dovecot.bash

# The server runs with its shipped limits.
start_gateway 0
wait_port "$imaps_port"
bob_password=$(sed -n 's/^  password: //p' "$dir/gateway/bob.init")

echo "== submitting $count messages over SMTP" >&2
CA="$ca" PORT="$smtp_port" PASSWORD="$alice_password" COUNT="$count" python3 - <<'PY'
import os, smtplib, ssl
from email.message import EmailMessage
ctx = ssl.create_default_context(cafile=os.environ["CA"])
smtp = smtplib.SMTP("localhost", int(os.environ["PORT"]), timeout=120)
smtp.starttls(context=ctx)
smtp.login("alice@example.org", os.environ["PASSWORD"])
body = ("A line of a realistic message body, about seventy characters long here.\n" * 50)
for n in range(int(os.environ["COUNT"])):
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "Alice <alice@example.org>", "Bob <bob@example.org>", f"Message {n}"
    msg.set_content(body)
    smtp.send_message(msg)
smtp.quit()
PY
started=$(date +%s)
until [ "$(wait_delivered "$count" 'bob#example.org')" = 1 ]; do
  [ $(( $(date +%s) - started )) -lt 1800 ] || { echo "imap_compare: delivery did not finish in 30 minutes" >&2; exit 1; }
done
echo "== delivered in $(( $(date +%s) - started )) s" >&2

gateway=$(python3 bench/imap_client.py --port "$imaps_port" --ca "$ca" --user bob@example.org --password "$bob_password" \
            --expect "$count" --export "$dir/dovecot/home/bob/Maildir")
echo "gateway: $gateway" >&2

start_dovecot bob benchpass
peer=$(python3 bench/imap_client.py --port "$dovecot_port" --ca "$ca" --user bob --password benchpass --expect "$count")
echo "dovecot: $peer" >&2

GATEWAY="$gateway" PEER="$peer" python3 - <<'PY'
import json, os
g, d = json.loads(os.environ["GATEWAY"]), json.loads(os.environ["PEER"])
print(f"| measurement ({g['messages']} messages, {g['bytes'] // 1024} KiB) | smimp-gateway | Dovecot | ratio |")
print("|---|---|---|---|")
for key, label in (("headers_cold_s", "first-sync header fetch, cold (SELECT + UID FETCH)"),
                   ("headers_warm_s", "first-sync header fetch, warm"),
                   ("bodies_s", "every full body (UID FETCH 1:* BODY.PEEK[])")):
    print(f"| {label} | {g[key]:.3f} s | {d[key]:.3f} s | {g[key] / d[key]:.2f}x |")
PY
