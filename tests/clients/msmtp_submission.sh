#!/usr/bin/env bash
# A real SMTP client (Debian's msmtp, on GnuTLS) submits mail through `smimp-gateway run`
# configured the way its users configure it, with an msmtprc: STARTTLS (tls on +
# tls_starttls on), implicit TLS (tls_starttls off) and in the clear on loopback (tls
# off), the gateway's certificate checked against the CA the gateway made (tls_trust_file)
# and refused against any other CA, AUTH PLAIN and AUTH LOGIN with the credentials `init`
# printed, wrong credentials and an unknown recipient refused with their reasons, and
# every accepted message delivered encrypted to the recipient's SMIMP server, whose
# database holds only sealed envelopes.
set -euo pipefail
name=msmtp_submission
source "$(dirname "$0")/common.bash"
source "$(dirname "$0")/gateway.bash"
command -v msmtp >/dev/null || { echo "msmtp_submission: msmtp is not installed (apt-get install msmtp)" >&2; exit 1; }

start_gateway 12

# msmtp insists that a file holding a password is private.
rc="$dir/msmtprc"
cat > "$rc" <<RC
defaults
host localhost
from alice@example.org
user alice@example.org
password $alice_password
tls on
tls_trust_file $ca
timeout 20

account starttls_plain
port $smtp_port
tls_starttls on
auth plain

account starttls_login : starttls_plain
auth login

account implicit_plain
port $smtps_port
tls_starttls off
auth plain

account loopback_plain
port $smtp_port
tls off
auth plain

account wrong_password : starttls_plain
password wrong

account wrong_ca : starttls_plain
tls_trust_file $dir/gateway/server-ca.pem
RC
chmod 600 "$rc"

# send ACCOUNT RECIPIENT SUBJECT BODY — one message; prints msmtp's transcript and errors.
send() {
  printf 'From: Alice <alice@example.org>\r\nTo: %s\r\nSubject: %s\r\n\r\n%s\r\n' "$2" "$3" "$4" \
    | msmtp -C "$rc" -a "$1" --debug "$2" 2>&1
}

out=$(send starttls_plain bob@example.org "sent by msmtp" "This message left msmtp in the clear and SMIMP encrypted.") || true
contains "STARTTLS + AUTH PLAIN: the message is accepted" "<-- 250 2.0.0 message accepted for delivery" "$out"
contains "the gateway advertised STARTTLS before TLS" "<-- 250-STARTTLS" "$out"
contains "msmtp verified the gateway's certificate" "TLS session parameters" "$out"

out=$(send starttls_login bob@example.org "msmtp login" "Sent with AUTH LOGIN.") || true
contains "STARTTLS + AUTH LOGIN: the message is accepted" "<-- 250 2.0.0 message accepted for delivery" "$out"
contains "msmtp used AUTH LOGIN" "--> AUTH LOGIN" "$out"

out=$(send implicit_plain bob@example.org "msmtp implicit TLS" "Sent over implicit TLS.") || true
contains "implicit TLS + AUTH PLAIN: the message is accepted" "<-- 250 2.0.0 message accepted for delivery" "$out"

out=$(send loopback_plain bob@example.org "msmtp plain" "Sent in the clear on loopback.") || true
contains "plain on loopback + AUTH PLAIN: the message is accepted" "<-- 250 2.0.0 message accepted for delivery" "$out"
check "msmtp stayed in the clear (no STARTTLS)" 0 "$(printf '%s\n' "$out" | grep -c -- '--> STARTTLS' || true)"

out=$(send starttls_plain nobody@example.org "to nobody" "x") || true
contains "an unknown recipient is refused at RCPT TO with its reason" "550 5.1.1 nobody@example.org has no SMIMP profile" "$out"

out=$(send wrong_password bob@example.org "wrong password" "x") || true
contains "wrong credentials are refused" "535 5.7.8" "$out"

out=$(send wrong_ca bob@example.org "wrong CA" "never sent") || true
contains "a certificate from another CA is refused by msmtp" "TLS certificate verification failed" "$out"
case "$out" in *"250 2.0.0 message accepted"*) check "nothing is sent when the certificate check fails" "refused" "accepted";;
  *) check "nothing is sent when the certificate check fails" "refused" "refused";; esac

check "all four messages were delivered encrypted to bob's SMIMP server" "1" "$(wait_delivered 4 'bob#example.org')"
check "no other delivery was attempted" "4" "$(sed 's/\x1b\[[0-9;]*m//g' "$dir/run.log" | grep -c 'outcome=')"
if grep -q "left msmtp in the clear" "$dir/run.log" "$dir/server.log"; then
  failed=$((failed + 1)); echo "FAIL message content appeared in a log"
else
  passed=$((passed + 1)); echo "ok   no message content in any log"
fi
check_only_sealed_at_rest "sent by msmtp" "left msmtp in the clear" "Sent with AUTH LOGIN" "Sent over implicit TLS" "Sent in the clear on loopback"

finish
