#!/usr/bin/env bash
# curl's IMAP client reads the decrypted, verified mailbox from `smimp-gateway run`:
# imaps:// (implicit TLS), imap:// with --ssl-reqd (STARTTLS) and imap:// in the clear on
# loopback, the certificate checked against the gateway's CA and refused against another;
# LIST, EXAMINE, a SEARCH and a FETCH of the whole message; a wrong password refused.
set -euo pipefail
name=curl_imap
source "$(dirname "$0")/common.bash"
source "$(dirname "$0")/gateway.bash"

start_gateway 0
wait_port "$imaps_port"
bob_password=$(sed -n 's/^  password: //p' "$dir/gateway/bob.init")
printf 'From: Alice <alice@example.org>\r\nTo: Bob <bob@example.org>\r\nSubject: read by curl\r\n\r\nThis body was sealed on the way and opened by the gateway.\r\n' > "$dir/m.eml"
curl --no-progress-meter --max-time 30 --url "smtp://localhost:$smtp_port" --ssl-reqd --cacert "$ca" \
  --user "alice@example.org:$alice_password" --mail-from alice@example.org --mail-rcpt bob@example.org --upload-file "$dir/m.eml"
check "the message was delivered encrypted" 1 "$(wait_delivered 1 'bob#example.org')"

imap() { curl --no-progress-meter --max-time 30 --cacert "$ca" --user "bob@example.org:$bob_password" "$@" 2>&1; }
out=$(imap "imaps://localhost:$imaps_port/") || true
contains "LIST over imaps:// shows INBOX" "INBOX" "$out"
contains "LIST shows Sent with its special use" '\Sent' "$out"
out=$(imap "imaps://localhost:$imaps_port/INBOX" -X 'SEARCH SUBJECT "read by curl"') || true
check "SEARCH SUBJECT finds exactly the message (the whole answer line)" "* SEARCH 1" \
  "$(printf '%s\n' "$out" | tr -d '\r' | grep '^\* SEARCH' || true)"
out=$(imap "imaps://localhost:$imaps_port/INBOX;UID=1") || true
contains "FETCH over imaps:// gives the decrypted body" "This body was sealed on the way and opened by the gateway." "$out"
contains "FETCH gives the verification header" "X-SMIMP-Verified: pass" "$out"
out=$(imap --ssl-reqd "imap://localhost:$imap_port/INBOX;UID=1") || true
contains "imap:// with STARTTLS gives the same message" "This body was sealed on the way and opened by the gateway." "$out"
out=$(curl -v --no-progress-meter --max-time 30 --user "bob@example.org:$bob_password" "imap://localhost:$imap_port/INBOX;UID=1" 2>&1) || true
contains "imap:// in the clear on loopback gives the same message" "This body was sealed on the way and opened by the gateway." "$out"
check "curl stayed in the clear there (no STARTTLS)" 0 "$(printf '%s\n' "$out" | grep -c 'STARTTLS$' || true)"
out=$(imap "imaps://localhost:$imaps_port/INBOX" -X 'EXAMINE INBOX') || true
contains "EXAMINE reports the UIDVALIDITY" "UIDVALIDITY" "$out"
out=$(curl --no-progress-meter --max-time 30 --cacert "$ca" --user "bob@example.org:wrong" "imaps://localhost:$imaps_port/" 2>&1) || true
contains "a wrong password is refused" "Login denied" "$out"
out=$(curl --no-progress-meter --max-time 30 --cacert /etc/ssl/certs/ca-certificates.crt --user "bob@example.org:$bob_password" \
        "imaps://localhost:$imaps_port/" 2>&1) || true
contains "the gateway's certificate is refused against the public CAs" "SSL certificate problem" "$out"
finish
