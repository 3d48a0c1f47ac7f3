#!/usr/bin/env bash
# `smimp-gateway demo --json --dir DIR`, the real binary, used as a script would: its one
# JSON object on stdout names settings that work — the CA files parse, the SMIMP server
# answers over HTTPS verified against its CA, SMTP with STARTTLS (and SSL/TLS) verified
# against gateway_ca_file accepts the printed logins and a message from alice to bob,
# and IMAP (the JSON must name an IMAP port) logs in and finds the welcome message,
# verified. SIGTERM stops it with exit status 0. A second run on the same directory
# reuses the accounts: same usernames and passwords, the welcome message not sent again.
set -euo pipefail
name=demo
source "$(dirname "$0")/common.bash"

# start_demo N — starts the demo in the background; 0 once its JSON line is out (at most 300 s).
start_demo() {
  "$bin" demo --json --dir "$dir/demo" --zero-bits 12 > "$dir/run$1.json" 2> "$dir/run$1.log" &
  demo_pid=$!
  pids+=("$demo_pid")
  for _ in $(seq 1 3000); do
    grep -q '^{.*}$' "$dir/run$1.json" 2>/dev/null && return 0
    kill -0 "$demo_pid" 2>/dev/null || { echo "the demo exited early:"; tail -n 20 "$dir/run$1.log"; return 1; }
    sleep 0.1
  done
  echo "the demo printed no settings within 300 s:"; tail -n 20 "$dir/run$1.log"; return 1
}

# stop_demo N — SIGTERM, then the exit status must be 0.
stop_demo() {
  kill -TERM "$demo_pid"
  local rc=0
  wait "$demo_pid" || rc=$?
  check "run $1: the demo exits 0 on SIGTERM" 0 "$rc"
}

# check_settings JSON — the settings work (python3: json, ssl, smtplib, imaplib); its
# last line is "end settings" (see tally).
check_settings() {
  python3 - "$1" <<'PY'
import imaplib, json, os, smtplib, ssl, subprocess, sys

def ok(name): print(f"ok   {name}")
def fail(name, why): print(f"FAIL {name}: {why}")

text = open(sys.argv[1]).read()
lines = [l for l in text.splitlines() if l.strip()]
if len(lines) != 1:
    fail("stdout is one JSON object", f"{len(lines)} lines"); sys.exit(1)
s = json.loads(lines[0]); ok("stdout is one JSON object")
for key in ("accounts", "gateway_ca_file", "server"):
    (ok if key in s else lambda n: fail(n, "missing"))(f"the JSON has {key}")
if [a["address"] for a in s["accounts"]] == ["alice@example.test", "bob@example.test"]: ok("two accounts, alice and bob")
else: fail("two accounts, alice and bob", s["accounts"])
try:
    context = ssl.create_default_context(cafile=s["gateway_ca_file"]); ok("gateway_ca_file exists and parses as a CA")
except Exception as e:
    fail("gateway_ca_file exists and parses as a CA", e); sys.exit(1)
server = s["server"]
for key in ("url", "ca_file", "database"):
    (ok if server.get(key) else lambda n: fail(n, "missing"))(f"server.{key} is given")
if os.path.exists(server["database"]): ok("server.database exists")
else: fail("server.database exists", server["database"])
try:
    ssl.create_default_context(cafile=server["ca_file"]); ok("server.ca_file parses as a CA")
except Exception as e:
    fail("server.ca_file parses as a CA", e)
host_port = server["url"].removeprefix("https://")
domain, port = host_port.split(":")
version = subprocess.run(["curl", "--silent", "--show-error", "--max-time", "10", "--cacert", server["ca_file"],
                          "--resolve", f"{domain}:{port}:127.0.0.1", server["url"] + "/version"],
                         capture_output=True, text=True)
if '"0.1"' in version.stdout: ok("the SMIMP server answers /version over HTTPS verified against server.ca_file")
else: fail("the SMIMP server answers /version", version.stdout + version.stderr)

alice, bob = s["accounts"]
for account in s["accounts"]:
    who, smtp = account["address"], account["smtp"]
    try:
        with smtplib.SMTP(smtp["host"], smtp["port"], timeout=20) as c:
            c.starttls(context=context)
            c.login(account["username"], account["password"])
        ok(f"{who}: SMTP STARTTLS on {smtp['port']}, certificate verified, login accepted")
    except Exception as e:
        fail(f"{who}: SMTP STARTTLS login", repr(e))
    if smtp.get("tls_port"):
        try:
            with smtplib.SMTP_SSL(smtp["host"], smtp["tls_port"], context=context, timeout=20) as c:
                c.login(account["username"], account["password"])
            ok(f"{who}: SMTP SSL/TLS on {smtp['tls_port']}, certificate verified, login accepted")
        except Exception as e:
            fail(f"{who}: SMTP SSL/TLS login", repr(e))
try:
    with smtplib.SMTP(alice["smtp"]["host"], alice["smtp"]["port"], timeout=60) as c:
        c.starttls(context=context)
        c.login(alice["username"], alice["password"])
        refused = c.sendmail(alice["address"], [bob["address"]],
                             f"From: {alice['address']}\r\nTo: {bob['address']}\r\nSubject: from the demo test\r\n\r\nHello Bob.\r\n")
    if refused: fail("alice's message to bob is accepted", refused)
    else: ok("alice's message to bob is accepted over STARTTLS with the printed login")
except Exception as e:
    fail("alice's message to bob is accepted", repr(e))
try:
    with smtplib.SMTP(alice["smtp"]["host"], alice["smtp"]["port"], timeout=20) as c:
        c.starttls(context=context)
        c.login(alice["username"], alice["password"] + "x")
    fail("a wrong password is refused", "it was accepted")
except smtplib.SMTPAuthenticationError as e:
    ok(f"a wrong password is refused ({e.smtp_code})")

imap = bob["imap"]
if imap.get("port") is None:
    fail("the demo's JSON names an IMAP port", "imap.port is null, so the IMAP checks cannot run")
else:
    try:
        c = imaplib.IMAP4(imap["host"], imap["port"], timeout=30)
        c.starttls(ssl_context=context)
        c.login(bob["username"], bob["password"])
        c.select("INBOX", readonly=True)
        typ, data = c.uid("SEARCH", None, "SUBJECT", '"Welcome to SMIMP"')
        uids = data[0].split()
        if typ == "OK" and uids: ok(f"IMAP STARTTLS on {imap['port']}: bob finds the welcome message")
        else: fail("IMAP: bob finds the welcome message", (typ, data))
        if uids:
            typ, data = c.uid("FETCH", uids[0], "(BODY.PEEK[HEADER])")
            header = b"".join(part[1] for part in data if isinstance(part, tuple)).decode(errors="replace")
            if "X-SMIMP-Verified: pass" in header: ok("IMAP: the welcome message is marked verified")
            else: fail("IMAP: the welcome message is marked verified", header[:500])
        c.logout()
    except Exception as e:
        fail("IMAP STARTTLS login and welcome message", repr(e))
    if imap.get("tls_port"):
        try:
            c = imaplib.IMAP4_SSL(imap["host"], imap["tls_port"], ssl_context=context, timeout=30)
            c.login(bob["username"], bob["password"])
            c.logout()
            ok(f"IMAP SSL/TLS on {imap['tls_port']}: login accepted")
        except Exception as e:
            fail("IMAP SSL/TLS login", repr(e))
print("end settings")
PY
}

start_demo 1
rc=0; out=$(check_settings "$dir/run1.json") || rc=$?
tally settings "$rc" "$out"
first=$(python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); print(s["welcome"]["sent_by_this_run"], s["welcome"]["verified"][:4], s["state_file"])' "$dir/run1.json")
check "run 1 sent the welcome message, and it was verified" "True pass" "$(printf '%s' "$first" | cut -d' ' -f1,2)"
state_file=$(printf '%s' "$first" | cut -d' ' -f3-)
check "the passwords are kept in a file only its owner can read" 600 "$(stat -c %a "$state_file")"
stop_demo 1

start_demo 2
rc=0; out=$(check_settings "$dir/run2.json") || rc=$?
tally settings "$rc" "$out"
same=$(python3 - "$dir/run1.json" "$dir/run2.json" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
logins = lambda s: [(x["address"], x["username"], x["password"]) for x in s["accounts"]]
print(logins(a) == logins(b), b["welcome"]["sent_by_this_run"], a["welcome"]["uid"] == b["welcome"]["uid"])
PY
)
check "run 2 reuses the accounts (same usernames and passwords) and the welcome message already there" \
  "True False True" "$same"
stop_demo 2

if grep -q "Hello Bob" "$dir"/run*.log; then failed=$((failed + 1)); echo "FAIL message content appeared in the log"
else passed=$((passed + 1)); echo "ok   no message content in the demo's log"; fi
finish
