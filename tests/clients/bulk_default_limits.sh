#!/usr/bin/env bash
# 10,000 IMAP APPENDs and 10,000 SMTP deliveries from one gateway against a reference
# server with its shipped limits (only the proof-of-work difficulty is 0 bits, so that
# the run measures limits, not hashing): Python's imaplib appends to alice's INBOX over
# one implicit-TLS connection and smtplib submits alice -> bob over four STARTTLS
# connections; not one command may be refused, no delivery may meet a rate limit, and
# every message must be stored: alice's INBOX holds every append with the right content
# (spot-checked by SHA-256), bob's server mailbox every delivery.
# BULK (default 10000) sets both counts.
# time-limit: 2400
set -euo pipefail
name=bulk_default_limits
source "$(dirname "$0")/common.bash"
source "$(dirname "$0")/gateway.bash"
count=${BULK:-10000}

start_gateway 0
wait_port "$imaps_port"

rc=0
out=$(CA="$ca" SMTP_PORT="$smtp_port" IMAPS_PORT="$imaps_port" ALICE_PASSWORD="$alice_password" COUNT="$count" \
      python3 - 2>&1 <<'PY'
import hashlib, imaplib, os, smtplib, ssl, threading, time

ctx = ssl.create_default_context(cafile=os.environ["CA"])
count = int(os.environ["COUNT"])
def say(ok, what, detail=""):
    print(("ok   " if ok else "FAIL ") + what + ("" if ok else f": {detail}"), flush=True)

def message(kind, n):
    head = f"From: alice@example.org\r\nTo: bob@example.org\r\nSubject: {kind} {n}\r\n\r\n"
    return (head + f"{kind} number {n} of {count}\r\n" + "filler text for a realistic size\r\n" * 30).encode()

imap = imaplib.IMAP4_SSL("localhost", int(os.environ["IMAPS_PORT"]), ssl_context=ctx, timeout=60)
imap.login("alice@example.org", os.environ["ALICE_PASSWORD"])
refused = []
started = time.monotonic()
for n in range(count):
    typ, data = imap.append("INBOX", None, None, message("append", n))
    if typ != "OK":
        refused.append((n, data))
    if (n + 1) % 1000 == 0:
        print(f"     {n + 1} appended in {time.monotonic() - started:.1f} s", flush=True)
say(not refused, f"{count} APPENDs at the server's default limits, none refused", refused[:3])
typ, data = imap.select("INBOX")
say(int(data[0]) == count, f"INBOX holds all {count} appended messages", data)
for n in (0, count // 2, count - 1):
    typ, data = imap.uid("FETCH", str(n + 1), "(BODY.PEEK[])")
    body = data[0][1] if typ == "OK" and data and isinstance(data[0], tuple) else b""
    # The one header the gateway adds to mail the account stored itself.
    if body.startswith(b"X-SMIMP-Verified: none;"):
        body = body[body.index(b"\r\n") + 2:]
    same = hashlib.sha256(body).hexdigest() == hashlib.sha256(message("append", n)).hexdigest()
    say(same, f"appended message {n} reads back with the SHA-256 it was appended with", body[:200])
imap.logout()

errors = []
def sender(index, share):
    try:
        with smtplib.SMTP("localhost", int(os.environ["SMTP_PORT"]), timeout=120) as smtp:
            smtp.starttls(context=ctx)
            smtp.login("alice@example.org", os.environ["ALICE_PASSWORD"])
            for n in range(index, count, share):
                smtp.sendmail("alice@example.org", ["bob@example.org"], message("delivery", n))
    except Exception as e:
        errors.append(f"connection {index}: {e!r}")
threads = [threading.Thread(target=sender, args=(i, 4)) for i in range(4)]
started = time.monotonic()
for t in threads: t.start()
for t in threads: t.join()
print(f"     {count} submitted in {time.monotonic() - started:.1f} s", flush=True)
say(not errors, f"{count} messages submitted over four connections, none refused", errors[:3])
print("end python", flush=True)
PY
) || rc=$?
tally python "$rc" "$out"

# Deliveries may trail the submissions; wait for them, bounded (a minute without progress).
sent_to_bob() { sed 's/\x1b\[[0-9;]*m//g' "$dir/run.log" | grep -c 'recipient=bob#example.org route="smimp" outcome="sent"' || true; }
last=-1 still=0
while [ "$(sent_to_bob)" -lt "$count" ] && [ "$still" -lt 60 ]; do
  now=$(sent_to_bob)
  if [ "$now" = "$last" ]; then still=$((still + 1)); else still=0 last=$now; fi
  sleep 1
done
check "all $count deliveries to bob were sent (the delivery log)" "$count" "$(sent_to_bob)"
[ "$(sent_to_bob)" = "$count" ] || sed 's/\x1b\[[0-9;]*m//g' "$dir/run.log" | grep -v 'outcome="sent"' | tail -n 20
limited=$(sed 's/\x1b\[[0-9;]*m//g' "$dir/run.log" "$dir/server.log" | grep -c -i 'rate_limited\|too many' || true)
check "no rate-limit refusal in the gateway's or the server's log" 0 "$limited"
stored=$(python3 - "$dir/server/smimp-server.sqlite" <<'PY'
import sqlite3, sys
db = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
print(db.execute("SELECT COUNT(*) FROM messages WHERE recipient = 'bob#example.org'").fetchone()[0])
PY
)
check "bob's server mailbox holds every delivery" "$count" "$stored"
finish
