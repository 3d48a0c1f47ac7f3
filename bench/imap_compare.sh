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
command -v dovecot >/dev/null || { echo "imap_compare: dovecot is not installed (apt-get install dovecot-imapd)" >&2; exit 1; }

# The server runs with its shipped limits. The gateway still logs in once per delivery,
# so the default login limit (60 a minute per address) paces the seeding: that is the
# gateway's defect (one SMIMP session per account and server is the fix), not a limit to lift.
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

mkdir -p "$dir/dovecot/run"
# Dovecot's auth and mail processes run as its own users: they must reach the scratch dir.
chmod 755 "$dir"
printf 'bob:{PLAIN}benchpass\n' > "$dir/dovecot/users"
dovecot_port=$(free_port)
chown -R dovecot:dovecot "$dir/dovecot" 2>/dev/null || true
cat > "$dir/dovecot/dovecot.conf" <<CONF
protocols = imap
listen = 127.0.0.1
base_dir = $dir/dovecot/run
state_dir = $dir/dovecot/state
log_path = $dir/dovecot/dovecot.log
ssl = required
ssl_cert = <$dir/gateway/gateway-data/tls/server.pem
ssl_key = <$dir/gateway/gateway-data/tls/server-key.pem
auth_mechanisms = plain login
first_valid_uid = 0
service imap-login {
  inet_listener imap {
    port = 0
  }
  inet_listener imaps {
    port = $dovecot_port
    ssl = yes
  }
}
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%n $dir/dovecot/users
}
userdb {
  driver = static
  args = uid=dovecot gid=dovecot home=$dir/dovecot/home/%n mail=maildir:~/Maildir
}
CONF
chown -R dovecot:dovecot "$dir/dovecot/home"
dovecot -F -c "$dir/dovecot/dovecot.conf" &
pids+=($!)
wait_port "$dovecot_port"
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
