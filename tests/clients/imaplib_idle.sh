#!/usr/bin/env bash
# IDLE with Python's imaplib (3.11 has no idle(): the command is driven by hand over the
# library's connection) in each of the three modes (plain on loopback, STARTTLS, implicit
# TLS, certificates checked against the gateway's CA): one connection idles on INBOX, a
# second connection APPENDs a message there, and the untagged EXISTS must reach the
# idling connection within a bounded wait (10 s); DONE ends the IDLE with OK, and the
# appended message, fetched back, hashes equal to what was appended (the whole message
# below the gateway's stored-by-this-account notice, and its text and attachment).
set -euo pipefail
name=imaplib_idle
source "$(dirname "$0")/common.bash"
source "$(dirname "$0")/gateway.bash"

start_gateway 0
wait_port "$imap_port"
wait_port "$imaps_port"
bob_password=$(sed -n 's/^  password: //p' "$dir/gateway/bob.init")
for mode in plain starttls tls; do
  python3 tests/clients/mailhash.py --make "Bob <bob@example.org>" "Bob <bob@example.org>" "idle $mode" > "$dir/$mode.eml"
done

rc=0
out=$(CA="$ca" IMAP_PORT="$imap_port" IMAPS_PORT="$imaps_port" BOB_PASSWORD="$bob_password" DIR="$dir" \
      python3 - 2>&1 <<'PY'
import imaplib, os, ssl, subprocess, time

ctx = ssl.create_default_context(cafile=os.environ["CA"])
WAIT = 10.0
def say(ok, what, detail=""):
    print(("ok   " if ok else "FAIL ") + what + ("" if ok else f": {detail}"), flush=True)

def connect(mode):
    if mode == "tls":
        imap = imaplib.IMAP4_SSL("localhost", int(os.environ["IMAPS_PORT"]), ssl_context=ctx, timeout=30)
    else:
        imap = imaplib.IMAP4("localhost", int(os.environ["IMAP_PORT"]), timeout=30)
        if mode == "starttls":
            imap.starttls(ssl_context=ctx)
    imap.login("bob@example.org", os.environ["BOB_PASSWORD"])
    return imap

def hashes(path, whole=True):
    args = ["python3", "tests/clients/mailhash.py"] + (["--whole"] if whole else []) + [path]
    return subprocess.run(args, capture_output=True, check=True, text=True).stdout

for mode in ("plain", "starttls", "tls"):
    path = os.path.join(os.environ["DIR"], f"{mode}.eml")
    message = open(path, "rb").read()
    idler = connect(mode)
    say(idler.sock.__class__.__name__ == ("socket" if mode == "plain" else "SSLSocket"),
        f"{mode}: the idling connection is {'not ' if mode == 'plain' else ''}on TLS", idler.sock)
    typ, data = idler.select("INBOX")
    before = int(data[0])
    tag = idler._new_tag()
    idler.send(tag + b" IDLE\r\n")
    line = idler.readline()
    say(line.startswith(b"+"), f"{mode}: IDLE is accepted", line)

    other = connect(mode)
    start = time.monotonic()
    typ, data = other.append("INBOX", None, None, message)
    say(typ == "OK" and b"APPENDUID" in data[0], f"{mode}: APPEND from a second connection", data)
    uid = data[0].split(b"]")[0].split()[-1].decode() if typ == "OK" else None
    other.logout()

    # Lines until the EXISTS for the new message, each read bounded by what is left of
    # the wait; the end of the stream or a timeout ends it.
    woke = None
    try:
        while woke is None and time.monotonic() - start < WAIT:
            idler.sock.settimeout(max(0.1, WAIT - (time.monotonic() - start)))
            line = idler.readline()
            if not line:
                break
            parts = line.split()
            if len(parts) == 3 and parts[0] == b"*" and parts[2] == b"EXISTS" and int(parts[1]) > before:
                woke = time.monotonic() - start
    except (TimeoutError, OSError) as e:
        print(f"     ({mode}: waiting for EXISTS: {e!r})")
    say(woke is not None, f"{mode}: the untagged EXISTS reaches the idling connection within {WAIT:.0f} s"
        + (f" (after {woke:.2f} s)" if woke is not None else ""), "nothing came")
    idler.sock.settimeout(30)
    idler.send(b"DONE\r\n")
    while True:
        line = idler.readline()
        if not line or line.startswith(tag):
            break
    say(line.startswith(tag + b" OK"), f"{mode}: DONE ends the IDLE with OK", line)
    if uid:
        typ, data = idler.uid("FETCH", uid, "(BODY.PEEK[])")
        fetched = os.path.join(os.environ["DIR"], f"{mode}.fetched.eml")
        open(fetched, "wb").write(data[0][1])
        say(hashes(fetched) == hashes(path), f"{mode}: the appended message hashes as appended (whole, text, attachment)",
            hashes(fetched) + " vs " + hashes(path))
    idler.logout()
print("end python")
PY
) || rc=$?
tally python "$rc" "$out"
finish
