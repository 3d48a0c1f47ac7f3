#!/usr/bin/env bash
# offlineimap (Debian's offlineimap3) syncs an account whose mail arrived encrypted through
# the gateway's SMTP to a local Maildir, in each of the three ways a client reaches the
# gateway's IMAP: plain on loopback, STARTTLS on the plain port, implicit TLS. Every
# sync must exit 0; each mode's Maildir holds every message with the text and attachment
# hashing equal to what was sent; a flag set in the Maildir reaches the gateway. The
# STARTTLS sync runs several times: offlineimap's imaplib2 reads and writes one TLS
# connection from two threads, and it hung at its first command after STARTTLS when the
# gateway sent TLS 1.3 session tickets after the handshake; imaplib2 alone then repeats
# that first step 40 times.
#
# Certificates: implicit TLS checks the gateway's certificate against its CA
# (sslcacertfile). offlineimap3 never checks the certificate after STARTTLS (it calls
# imaplib2's starttls() without the CA file), whatever the configuration says; nothing
# here turns a check off.
set -euo pipefail
name=offlineimap
source "$(dirname "$0")/common.bash"
source "$(dirname "$0")/gateway.bash"
command -v offlineimap >/dev/null || { echo "offlineimap: not installed (apt-get install offlineimap3)" >&2; exit 1; }
hash_of() { python3 tests/clients/mailhash.py "$@"; }

start_gateway 0
wait_port "$imap_port"
wait_port "$imaps_port"
bob_password=$(sed -n 's/^  password: //p' "$dir/gateway/bob.init")

modes=(plain starttls tls)
for mode in "${modes[@]}"; do
  python3 tests/clients/mailhash.py --make "Alice <alice@example.org>" "Bob <bob@example.org>" "offlineimap $mode" > "$dir/$mode.eml"
  curl --no-progress-meter --max-time 30 --url "smtp://localhost:$smtp_port" --ssl-reqd --cacert "$ca" \
    --user "alice@example.org:$alice_password" --mail-from alice@example.org --mail-rcpt bob@example.org \
    --upload-file "$dir/$mode.eml"
done
check "the three messages were delivered encrypted" 1 "$(wait_delivered 3 'bob#example.org')"

# config MODE — an offlineimaprc syncing bob's account to $dir/MODE/mail.
config() {
  local port=$imap_port ssl=no starttls=no
  case "$1" in starttls) starttls=yes;; tls) port=$imaps_port ssl=yes;; esac
  mkdir -p "$dir/$1/mail"
  cat > "$dir/$1/rc" <<CONF
[general]
accounts = bob
metadata = $dir/$1/meta
[Account bob]
localrepository = local
remoterepository = remote
[Repository local]
type = Maildir
localfolders = $dir/$1/mail
[Repository remote]
type = IMAP
remotehost = localhost
remoteport = $port
remoteuser = bob@example.org
remotepass = $bob_password
ssl = $ssl
starttls = $starttls
sslcacertfile = $ca
CONF
}
# sync MODE WHAT — one offlineimap run; it must exit 0 (within 60 s: the hang it once
# had lasted until the gateway's 30 s login timeout).
sync() {
  local rc=0 out start=$SECONDS
  out=$(timeout 60 offlineimap -c "$dir/$1/rc" -o -u basic 2>&1) || rc=$?
  [ "$rc" -eq 0 ] || printf '%s\n' "$out" | tail -n 15
  check "$1: the $2 sync exits 0 (took $((SECONDS - start)) s)" 0 "$rc"
}
# server_flagged — the subjects of bob's INBOX messages the gateway has \Flagged, sorted.
server_flagged() {
  CA="$ca" PORT="$imaps_port" PASSWORD="$bob_password" python3 - <<'PY'
import imaplib, os, ssl, email
ctx = ssl.create_default_context(cafile=os.environ["CA"])
imap = imaplib.IMAP4_SSL("localhost", int(os.environ["PORT"]), ssl_context=ctx, timeout=30)
imap.login("bob@example.org", os.environ["PASSWORD"])
imap.select("INBOX", readonly=True)
subjects = []
for n in imap.search(None, "FLAGGED")[1][0].split():
    header = imap.fetch(n, "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")[1][0][1]
    subjects.append(str(email.message_from_bytes(header)["Subject"]))
print(",".join(sorted(subjects)))
imap.logout()
PY
}

flagged=()
for mode in "${modes[@]}"; do
  config "$mode"
  sync "$mode" first
  for sent in "${modes[@]}"; do
    file=$(grep -rl "^Subject: offlineimap $sent" "$dir/$mode/mail/INBOX" 2>/dev/null || true)
    check "$mode: the Maildir's INBOX holds one copy of the message \"offlineimap $sent\"" 1 "$(printf '%s' "$file" | grep -c . || true)"
    [ -n "$file" ] || continue
    check "$mode: \"offlineimap $sent\": text and attachment hash as sent" "$(hash_of "$dir/$sent.eml")" "$(hash_of "$file")"
  done
  for box in Sent Drafts Trash; do
    check "$mode: offlineimap made the $box folder" yes "$([ -d "$dir/$mode/mail/$box/cur" ] && echo yes || echo no)"
  done
  # Flag this mode's own message in the Maildir (the flag letters after ":2," sorted).
  file=$(grep -rl "^Subject: offlineimap $mode" "$dir/$mode/mail/INBOX")
  info=${file##*:2,}
  [ "$info" != "$file" ] || info=""
  letters=$(printf '%sF' "$info" | fold -w1 | sort -u | tr -d '\n')
  mv "$file" "${file%:2,*}:2,$letters"
  sync "$mode" second
  flagged+=("offlineimap $mode")
  check "$mode: the flag set in the Maildir reached the gateway (exactly the messages flagged so far)" \
    "$(printf '%s\n' "${flagged[@]}" | sort | paste -sd, -)" "$(server_flagged)"
done

# The STARTTLS sync again, a few times: each must finish quickly.
for n in 1 2 3; do sync starttls "repeated ($n)"; done

# The hang came about 1 time in 20 at the first command after STARTTLS; offlineimap's own
# IMAP library (imaplib2, with offlineimap's interpreter) repeats just that step 40 times,
# with the certificate checked this time: each CAPABILITY must be answered within 5 s.
rc=0
out=$(CA="$ca" PORT="$imap_port" /usr/bin/python3 - 2>&1 <<'PY'
import imaplib2, os
stalled = []
for n in range(40):
    imap = imaplib2.IMAP4("localhost", int(os.environ["PORT"]), timeout=5)
    try:
        imap.starttls(ca_certs=os.environ["CA"])  # then CAPABILITY, over TLS
        if "STARTTLS" in imap.capabilities:
            stalled.append(f"{n}: STARTTLS still offered over TLS")
    except Exception as e:
        stalled.append(f"{n}: {e}")
    try:
        imap.logout()
    except Exception:
        pass
print(("ok   " if not stalled else "FAIL ") + "imaplib2: 40 STARTTLS connections, CAPABILITY answered on each"
      + ("" if not stalled else ": " + "; ".join(stalled)))
print("end imaplib2")
PY
) || rc=$?
tally imaplib2 "$rc" "$out"
finish
