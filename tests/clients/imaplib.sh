#!/usr/bin/env bash
# Python's imaplib and smtplib (the standard library's real clients) against
# `smimp-gateway run`: mail sent over SMTP (STARTTLS) arrives encrypted at the recipient's
# SMIMP server and is read back over IMAP (implicit TLS, STARTTLS and in the clear on
# loopback, the certificate checked against the gateway's CA) decrypted and verified: LIST
# with the special-use mailboxes, SELECT, FETCH of the whole message, its envelope,
# structure and header fields, STORE and SEARCH, APPEND to Sent with APPENDUID, UID MOVE,
# EXPUNGE, IDLE woken by new mail, and a wrong password refused.
set -euo pipefail
name=imaplib
source "$(dirname "$0")/common.bash"
source "$(dirname "$0")/gateway.bash"

start_gateway 0
wait_port "$imap_port"
wait_port "$imaps_port"
bob_password=$(sed -n 's/^  password: //p' "$dir/gateway/bob.init")

rc=0
out=$(CA="$ca" SMTP_PORT="$smtp_port" IMAP_PORT="$imap_port" IMAPS_PORT="$imaps_port" \
      ALICE_PASSWORD="$alice_password" BOB_PASSWORD="$bob_password" python3 - 2>&1 <<'PY'
import imaplib, os, smtplib, ssl, time, threading
from email.message import EmailMessage

ctx = ssl.create_default_context(cafile=os.environ["CA"])
def say(ok, what, detail=""):
    print(("ok   " if ok else "FAIL ") + what + ("" if ok else f": {detail}"), flush=True)

def send(subject, body):
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "Alice <alice@example.org>", "Bob <bob@example.org>", subject
    msg.set_content(body)
    with smtplib.SMTP("localhost", int(os.environ["SMTP_PORT"]), timeout=30) as smtp:
        smtp.starttls(context=ctx)
        smtp.login("alice@example.org", os.environ["ALICE_PASSWORD"])
        smtp.send_message(msg)

send("Grüße from smtplib", "This line went through SMIMP encrypted.\n")
imap = imaplib.IMAP4_SSL("localhost", int(os.environ["IMAPS_PORT"]), ssl_context=ctx, timeout=30)
try:
    imap.login("bob@example.org", "wrong password")
    say(False, "a wrong password is refused", "login succeeded")
except imaplib.IMAP4.error as e:
    say("AUTHENTICATIONFAILED" in str(e), "a wrong password is refused with [AUTHENTICATIONFAILED]", str(e))
imap = imaplib.IMAP4_SSL("localhost", int(os.environ["IMAPS_PORT"]), ssl_context=ctx, timeout=30)
typ, _ = imap.login("bob@example.org", os.environ["BOB_PASSWORD"])
say(typ == "OK", "LOGIN over implicit TLS with the credentials init printed")
typ, caps = imap.capability()
for cap in (b"IMAP4rev1", b"IDLE", b"UIDPLUS", b"MOVE", b"SPECIAL-USE"):
    say(cap in caps[0], f"CAPABILITY lists {cap.decode()}", caps)
typ, boxes = imap.list()
listing = b"\n".join(boxes)
for attr, box in ((b"\\Sent", b"Sent"), (b"\\Drafts", b"Drafts"), (b"\\Trash", b"Trash")):
    say(attr in listing and box in listing, f"LIST shows {box.decode()} with {attr.decode()}", listing)
count = 0
for _ in range(200):
    typ, data = imap.select("INBOX")
    count = int(data[0])
    if count >= 1:
        break
    time.sleep(0.1)
say(count == 1, "the message arrives in INBOX", count)
typ, data = imap.fetch("1", "(RFC822)")
raw = data[0][1]
say("Grüße from smtplib" in raw.decode("utf-8", "replace") or b"=?utf-8?" in raw.lower(), "FETCH RFC822 has the subject", raw[:300])
say(b"This line went through SMIMP encrypted." in raw, "FETCH RFC822 has the body, decrypted", raw[-300:])
say(b"X-SMIMP-Verified: pass" in raw, "the message says it was verified", raw[:600])
typ, data = imap.fetch("1", "(ENVELOPE BODYSTRUCTURE)")
text = data[0].decode("utf-8", "replace") if isinstance(data[0], bytes) else str(data)
say("alice" in text and '"TEXT" "PLAIN"' in text.upper(), "FETCH ENVELOPE and BODYSTRUCTURE", text)
typ, data = imap.fetch("1", "(BODY.PEEK[HEADER.FIELDS (FROM)])")
say(b"alice@example.org" in data[0][1], "FETCH BODY.PEEK[HEADER.FIELDS (FROM)]", data)
typ, data = imap.store("1", "+FLAGS", "(\\Flagged)")
say(typ == "OK" and b"\\Flagged" in data[0], "STORE +FLAGS (\\Flagged)", data)
typ, data = imap.search(None, "FLAGGED", "FROM", "alice")
say(data[0].split() == [b"1"], "SEARCH FLAGGED FROM alice", data)
typ, data = imap.search(None, "UNFLAGGED")
say(data[0].split() == [], "SEARCH UNFLAGGED finds nothing", data)
draft = b"From: bob@example.org\r\nTo: alice@example.org\r\nSubject: appended\r\n\r\nKept byte for byte.\r\n"
typ, data = imap.append("Sent", "(\\Seen)", None, draft)
say(typ == "OK" and b"APPENDUID" in data[0], "APPEND to Sent answers APPENDUID", data)
imap.select("Sent")
typ, data = imap.fetch("1", "(BODY.PEEK[])")
# Mail the account stored itself is marked so, never as verified, above the bytes as appended.
notice = b"X-SMIMP-Verified: none; stored by this account (APPEND, COPY or a delivery report), not verified as received mail\r\n"
say(data[0][1] == notice + draft, "the appended message comes back byte for byte below the stored-by-this-account notice", data)
imap.select("INBOX")
typ, data = imap.uid("MOVE", "1", "Archive") if hasattr(imap, "uid") else (None, None)
say(typ == "OK", "UID MOVE to Archive", data)
typ, data = imap.select("Archive")
say(int(data[0]) == 1, "the moved message is in Archive", data)
imap.store("1", "+FLAGS", "(\\Deleted)")
typ, data = imap.expunge()
say(typ == "OK" and data == [b"1"], "EXPUNGE removes the \\Deleted message", data)

# Plain on loopback (no TLS): LOGIN and the same message.
clear = imaplib.IMAP4("localhost", int(os.environ["IMAP_PORT"]), timeout=30)
typ, _ = clear.login("bob@example.org", os.environ["BOB_PASSWORD"])
say(typ == "OK" and clear.sock.__class__.__name__ == "socket", "LOGIN in the clear on loopback")
clear.select("Sent", readonly=True)
typ, data = clear.fetch("1", "(BODY.PEEK[])")
say(data[0][1] == notice + draft, "in the clear on loopback, the appended message comes back byte for byte", data)
clear.logout()

# IDLE: a second message wakes the idling client.
plain = imaplib.IMAP4("localhost", int(os.environ["IMAP_PORT"]), timeout=60)
typ, _ = plain.starttls(ssl_context=ctx)
say(typ == "OK", "STARTTLS on the plain port")
plain.login("bob@example.org", os.environ["BOB_PASSWORD"])
plain.select("INBOX")
tag = plain._new_tag()
plain.send(tag + b" IDLE\r\n")
say(plain.readline().startswith(b"+"), "IDLE is accepted")
threading.Timer(1.0, send, ("second", "Woken up.\n")).start()
# readline() gives b"" at end of file: the connection closing ends the wait with a
# failure (exit status 1), never an endless loop.
def read_line():
    line = plain.readline()
    if not line:
        say(False, "the IMAP connection stays open", "end of file")
        raise SystemExit(1)
    return line
woke = False
deadline = time.time() + 90
while time.time() < deadline:
    if b"EXISTS" in read_line():
        woke = True
        break
plain.send(b"DONE\r\n")
say(woke, "IDLE reports the new message with EXISTS")
while True:
    line = read_line()
    if line.startswith(tag):
        say(b"OK" in line, "IDLE ends with DONE", line)
        break
plain.logout()
imap.logout()
print("end python")
PY
) || rc=$?
tally python "$rc" "$out"
check_only_sealed_at_rest "This line went through SMIMP encrypted." "Kept byte for byte."
finish
