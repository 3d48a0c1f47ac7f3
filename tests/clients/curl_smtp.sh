#!/usr/bin/env bash
# A real SMTP client (Debian's curl) submits mail through `smimp-gateway run`: smtp://
# with --ssl-reqd (STARTTLS, required), smtps:// (implicit TLS) and smtp:// in the clear
# on loopback, the gateway's certificate checked against the CA the gateway made
# (--cacert) and refused against any other CA, AUTH PLAIN and AUTH LOGIN with the
# credentials `init` printed, wrong credentials and an unknown recipient refused with
# their reasons, and every accepted message delivered encrypted to the recipient's SMIMP
# server, whose database holds only sealed envelopes.
set -euo pipefail
name=curl_smtp
source "$(dirname "$0")/common.bash"
source "$(dirname "$0")/gateway.bash"

start_gateway 12

# send URL CA MECHANISM PASSWORD RECIPIENT SUBJECT BODY — one message with curl -v;
# prints the transcript and curl's error.
send() {
  local message="$dir/message.eml"
  printf 'From: Alice <alice@example.org>\r\nTo: %s\r\nSubject: %s\r\n\r\n%s\r\n' "$5" "$6" "$7" > "$message"
  curl -v --no-progress-meter --max-time 20 --url "$1" --ssl-reqd --cacert "$2" --login-options "AUTH=$3" \
    --user "alice@example.org:$4" --mail-from alice@example.org --mail-rcpt "$5" --upload-file "$message" 2>&1
}

out=$(send "smtp://localhost:$smtp_port" "$ca" PLAIN "$alice_password" bob@example.org \
        "sent by curl" "This message left curl in the clear and SMIMP encrypted.") || true
contains "smtp:// --ssl-reqd (STARTTLS) + AUTH PLAIN: the message is accepted" "< 250 2.0.0 message accepted for delivery" "$out"
contains "curl switched to TLS with STARTTLS" "> STARTTLS" "$out"
contains "curl verified the gateway's certificate" "SSL certificate verify ok" "$out"

out=$(send "smtp://localhost:$smtp_port" "$ca" LOGIN "$alice_password" bob@example.org "curl login" "Sent by curl with AUTH LOGIN.") || true
contains "STARTTLS + AUTH LOGIN: the message is accepted" "< 250 2.0.0 message accepted for delivery" "$out"
contains "curl used AUTH LOGIN" "> AUTH LOGIN" "$out"

out=$(send "smtps://localhost:$smtps_port" "$ca" PLAIN "$alice_password" bob@example.org "curl implicit TLS" "Sent by curl over smtps.") || true
contains "smtps:// (implicit TLS) + AUTH PLAIN: the message is accepted" "< 250 2.0.0 message accepted for delivery" "$out"

# Plain on loopback: smtp:// without --ssl-reqd stays in the clear (the gateway allows
# AUTH there on loopback only).
printf 'From: Alice <alice@example.org>\r\nTo: bob@example.org\r\nSubject: curl plain\r\n\r\nSent by curl in the clear on loopback.\r\n' > "$dir/plain.eml"
out=$(curl -v --no-progress-meter --max-time 20 --url "smtp://localhost:$smtp_port" --login-options "AUTH=PLAIN" \
        --user "alice@example.org:$alice_password" --mail-from alice@example.org --mail-rcpt bob@example.org \
        --upload-file "$dir/plain.eml" 2>&1) || true
contains "smtp:// in the clear on loopback + AUTH PLAIN: the message is accepted" "< 250 2.0.0 message accepted for delivery" "$out"
check "curl stayed in the clear (no STARTTLS)" 0 "$(printf '%s\n' "$out" | grep -c '> STARTTLS' || true)"

out=$(send "smtp://localhost:$smtp_port" "$ca" PLAIN "$alice_password" nobody@example.org "to nobody" "x") || true
contains "an unknown recipient is refused at RCPT TO with its reason" "< 550 5.1.1 nobody@example.org has no SMIMP profile" "$out"

out=$(send "smtp://localhost:$smtp_port" "$ca" PLAIN wrong bob@example.org "wrong password" "x") || true
contains "wrong credentials are refused" "< 535 5.7.8" "$out"

out=$(send "smtps://localhost:$smtps_port" "$dir/gateway/server-ca.pem" PLAIN "$alice_password" bob@example.org "wrong CA" "x") || true
# The other CA has the same name as the gateway's, so OpenSSL takes it for the issuer and
# fails on the signature (curl error 35) rather than on a missing issuer (60).
check "a certificate from another CA is refused by curl (TLS error 35 or 60)" "1" \
  "$(printf '%s\n' "$out" | grep -c -E '^curl: \((35|60)\)')"
case "$out" in *"> MAIL FROM"*) check "nothing is sent when the certificate check fails" "refused" "sent";;
  *) check "nothing is sent when the certificate check fails" "refused" "refused";; esac

check "all four messages were delivered encrypted to bob's SMIMP server" "1" "$(wait_delivered 4 'bob#example.org')"
check "no other delivery was attempted" "4" "$(sed 's/\x1b\[[0-9;]*m//g' "$dir/run.log" | grep -c 'outcome=')"
if grep -q "left curl in the clear" "$dir/run.log" "$dir/server.log"; then
  failed=$((failed + 1)); echo "FAIL message content appeared in a log"
else
  passed=$((passed + 1)); echo "ok   no message content in any log"
fi
check_only_sealed_at_rest "sent by curl" "left curl in the clear" "Sent by curl with AUTH LOGIN" "Sent by curl over smtps" \
  "Sent by curl in the clear on loopback"

finish
