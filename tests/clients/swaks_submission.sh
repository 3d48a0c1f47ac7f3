#!/usr/bin/env bash
# A real SMTP client (Debian's swaks) submits mail through `smimp-gateway run`: STARTTLS,
# implicit TLS and in the clear on loopback, the gateway's certificate verified against
# the CA it made, AUTH PLAIN with the credentials `init` printed, a recipient refused at
# RCPT TO with its reason, wrong credentials refused, and the accepted message delivered
# encrypted to the recipient's SMIMP server (seen in the gateway's delivery log), where
# the server's database holds only the sealed envelope (no subject or body text), and bob
# reads it back decrypted and verified over the gateway's IMAP (curl).
set -euo pipefail
name=swaks_submission
source "$(dirname "$0")/common.bash"
source "$(dirname "$0")/gateway.bash"
command -v swaks >/dev/null || { echo "swaks_submission: swaks is not installed (apt-get install swaks)" >&2; exit 1; }

start_gateway 12
common=(--server localhost --from alice@example.org --tls-verify --tls-ca-path "$ca" --auth PLAIN
        --auth-user alice@example.org --auth-password "$alice_password" --timeout 20)

out=$(swaks "${common[@]}" --port "$smtp_port" --tls --to bob@example.org \
        --header "Subject: sent by swaks" --body "This message left swaks in the clear and SMIMP encrypted." 2>&1) || true
contains "STARTTLS + AUTH PLAIN: the message is accepted (inside TLS)" "<~  250 2.0.0 message accepted for delivery" "$out"
contains "the gateway advertised STARTTLS and AUTH" "250-AUTH PLAIN LOGIN" "$out"

out=$(swaks "${common[@]}" --port "$smtps_port" --tlsc --to bob@example.org --header "Subject: implicit TLS" 2>&1) || true
contains "implicit TLS: the message is accepted" "<~  250 2.0.0 message accepted for delivery" "$out"

out=$(swaks "${common[@]}" --port "$smtp_port" --to bob@example.org --header "Subject: plain on loopback" 2>&1) || true
contains "plain on loopback: the message is accepted (in the clear)" "<-  250 2.0.0 message accepted for delivery" "$out"
check "swaks stayed in the clear (no STARTTLS)" 0 "$(printf '%s\n' "$out" | grep -c ' -> STARTTLS' || true)"

out=$(swaks "${common[@]}" --port "$smtp_port" --tls --to nobody@example.org 2>&1) || true
contains "an unknown recipient is refused at RCPT TO with its reason" "550 5.1.1 nobody@example.org has no SMIMP profile" "$out"

out=$(swaks --server localhost --port "$smtp_port" --tls --tls-verify --tls-ca-path "$ca" --from alice@example.org \
        --to bob@example.org --auth PLAIN --auth-user alice@example.org --auth-password wrong --timeout 20 2>&1) || true
contains "wrong credentials are refused" "535 5.7.8" "$out"

check "the three messages were delivered encrypted to bob's SMIMP server" "1" "$(wait_delivered 3 'bob#example.org')"
contains "the delivery log names the proof of work, never the content" "zero_bits=12" "$(cat "$dir/run.log")"
if grep -q "left swaks in the clear" "$dir/run.log" "$dir/server.log"; then
  failed=$((failed + 1)); echo "FAIL message content appeared in a log"
else
  passed=$((passed + 1)); echo "ok   no message content in any log"
fi
check_only_sealed_at_rest "sent by swaks" "left swaks in the clear"

# The recipient's side: bob reads the message over the gateway's IMAP (curl), decrypted
# and verified, with the subject and body swaks sent.
wait_port "$imaps_port"
bob_password=$(sed -n 's/^  password: //p' "$dir/gateway/bob.init")
out=$(curl --no-progress-meter --max-time 60 --cacert "$ca" --user "bob@example.org:$bob_password" \
        "imaps://localhost:$imaps_port/INBOX;UID=1" 2>&1) || true
contains "bob's IMAP shows the subject swaks sent" "Subject: sent by swaks" "$out"
contains "bob's IMAP shows the body swaks sent, decrypted" "This message left swaks in the clear and SMIMP encrypted." "$out"
contains "and says it was verified" "X-SMIMP-Verified: pass" "$out"

finish
