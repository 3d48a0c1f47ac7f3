#!/usr/bin/env bash
# mbsync (Debian's isync) syncs an account whose mail arrived encrypted through the
# gateway's SMTP to a local Maildir over the gateway's IMAP (implicit TLS, certificate
# checked against the gateway's CA), and back: the Maildir holds the original subject
# and body; a flag set in the Maildir reaches the gateway (and the SMIMP server); a
# message put in the Maildir's Sent folder is uploaded with APPEND, once; a further sync
# with nothing changed succeeds and changes nothing (no file name, no file's content);
# the text of each message hashes as sent. Then the same account in the two other modes,
# plain on loopback and STARTTLS, each into its own Maildir. Every mbsync run must exit 0.
set -euo pipefail
name=mbsync
source "$(dirname "$0")/common.bash"
source "$(dirname "$0")/gateway.bash"
command -v mbsync >/dev/null || { echo "mbsync: mbsync is not installed (apt-get install isync)" >&2; exit 1; }

start_gateway 0
wait_port "$imaps_port"
bob_password=$(sed -n 's/^  password: //p' "$dir/gateway/bob.init")

for n in 1 2; do
  printf 'From: Alice <alice@example.org>\r\nTo: Bob <bob@example.org>\r\nSubject: Maildir test %s\r\n\r\nOriginal body number %s, end to end encrypted.\r\n' "$n" "$n" > "$dir/m$n.eml"
  curl --no-progress-meter --max-time 30 --url "smtp://localhost:$smtp_port" --ssl-reqd --cacert "$ca" \
    --user "alice@example.org:$alice_password" --mail-from alice@example.org --mail-rcpt bob@example.org \
    --upload-file "$dir/m$n.eml"
done
check "both messages were delivered encrypted" 1 "$(wait_delivered 2 'bob#example.org')"

mkdir -p "$dir/mail"
cat > "$dir/mbsyncrc" <<CONF
IMAPAccount bob
Host localhost
Port $imaps_port
User bob@example.org
Pass $bob_password
SSLType IMAPS
CertificateFile $ca
AuthMechs LOGIN PLAIN

IMAPStore bob-remote
Account bob

MaildirStore bob-local
Path $dir/mail/
Inbox $dir/mail/INBOX
SubFolders Verbatim

Channel bob
Far :bob-remote:
Near :bob-local:
Patterns *
Create Both
Expunge Both
SyncState *
CONF

# sync WHICH — one mbsync run over every mailbox; it must succeed.
sync() {
  local rc=0 out
  out=$(mbsync -c "$dir/mbsyncrc" -a 2>&1) || rc=$?
  printf '%s\n' "$out" | tail -n 5
  check "the $1 sync exits 0" 0 "$rc"
}
# maildir_state — every file of the Maildir (not mbsync's own dot files): its name and a
# hash of its content, one per line.
maildir_state() { (cd "$dir/mail" && find . -type f -not -name '.*' -exec sha256sum {} + | sort -k 2); }

sync first
found=$(grep -rl "Original body number 1, end to end encrypted." "$dir/mail/INBOX" 2>/dev/null | wc -l)
check "the Maildir's INBOX holds the first message's original body" 1 "$found"
found=$(grep -rl "Subject: Maildir test 2" "$dir/mail/INBOX" 2>/dev/null | wc -l)
check "the Maildir's INBOX holds the second message's subject" 1 "$found"
for box in Sent Drafts Trash Junk Archive; do
  check "mbsync created the $box folder" yes "$([ -d "$dir/mail/$box/cur" ] && echo yes || echo no)"
done

# Flag the first message in the Maildir; put a message into Sent.
file=$(grep -rl "Original body number 1" "$dir/mail/INBOX")
case "$file" in *:2,*) flagged="${file}F";; *) flagged="${file}:2,F";; esac
mv "$file" "$flagged"
printf 'From: Bob <bob@example.org>\r\nTo: Alice <alice@example.org>\r\nSubject: written offline\r\nMessage-ID: <offline.1@example.org>\r\n\r\nUploaded by mbsync.\r\n' \
  > "$dir/mail/Sent/new/$(date +%s).offline.host"
sync second

cat > "$dir/check.py" <<'PY'
import imaplib, os, ssl
ctx = ssl.create_default_context(cafile=os.environ["CA"])
imap = imaplib.IMAP4_SSL("localhost", int(os.environ["IMAPS_PORT"]), ssl_context=ctx, timeout=30)
imap.login("bob@example.org", os.environ["BOB_PASSWORD"])
imap.select("INBOX", readonly=True)
typ, data = imap.search(None, "FLAGGED")
print("flagged:", data[0].decode())
imap.select("Sent", readonly=True)
typ, data = imap.search(None, "SUBJECT", '"written offline"')
print("sent:", data[0].decode())
imap.logout()
print("end check.py")
PY
rc=0; out=$(CA="$ca" IMAPS_PORT="$imaps_port" BOB_PASSWORD="$bob_password" python3 "$dir/check.py" 2>&1) || rc=$?
tally check.py "$rc" "$out"
check "the flag set in the Maildir reached the gateway (exactly the first message)" "flagged: 1" "$(grep '^flagged:' <<< "$out")"
check "the message put in the Maildir's Sent was uploaded, once" "sent: 1" "$(grep '^sent:' <<< "$out")"

before=$(maildir_state)
sync third
after=$(maildir_state)
check "a third sync with nothing new changes nothing (names and contents)" "$before" "$after"
for n in 1 2; do
  file=$(grep -rl "Subject: Maildir test $n" "$dir/mail/INBOX" | head -n 1)
  check "implicit TLS: message $n's text hashes as sent" "$(python3 tests/clients/mailhash.py "$dir/m$n.eml")" \
    "$(python3 tests/clients/mailhash.py "$file")"
done

# The other two modes, each into a Maildir of its own: plain on loopback (SSLType None)
# and STARTTLS on the plain port (certificate checked against the same CA). Each sync
# brings both messages with their text as sent (and the flag set above); a second sync
# with nothing new changes nothing.
for mode in plain starttls; do
  type=None
  [ "$mode" = starttls ] && type=STARTTLS
  mkdir -p "$dir/$mode"
  sed -e "s/^Port .*/Port $imap_port/" -e "s/^SSLType .*/SSLType $type/" -e "s#^Path .*#Path $dir/$mode/#" \
      -e "s#^Inbox .*#Inbox $dir/$mode/INBOX#" "$dir/mbsyncrc" > "$dir/$mode.mbsyncrc"
  rc=0; out=$(mbsync -c "$dir/$mode.mbsyncrc" -a 2>&1) || rc=$?
  printf '%s\n' "$out" | tail -n 5
  check "$mode: the first sync exits 0" 0 "$rc"
  for n in 1 2; do
    file=$(grep -rl "Subject: Maildir test $n" "$dir/$mode/INBOX" 2>/dev/null | head -n 1 || true)
    check "$mode: message $n's text hashes as sent" "$(python3 tests/clients/mailhash.py "$dir/m$n.eml")" \
      "$([ -n "$file" ] && python3 tests/clients/mailhash.py "$file")"
  done
  check "$mode: the message flagged over implicit TLS comes flagged" 1 \
    "$(find "$dir/$mode/INBOX" -type f -name '*:2,*F*' | wc -l)"
  before=$(cd "$dir/$mode" && find . -type f -not -name '.*' -exec sha256sum {} + | sort -k 2)
  rc=0; out=$(mbsync -c "$dir/$mode.mbsyncrc" -a 2>&1) || rc=$?
  check "$mode: the second sync exits 0" 0 "$rc"
  check "$mode: the second sync changes nothing" "$before" \
    "$(cd "$dir/$mode" && find . -type f -not -name '.*' -exec sha256sum {} + | sort -k 2)"
done
finish
