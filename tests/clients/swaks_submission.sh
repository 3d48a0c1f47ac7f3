#!/usr/bin/env bash
# A real SMTP client (Debian's swaks) submits mail through `smimp-gateway run`:
# STARTTLS and implicit TLS with the gateway's certificate verified against the CA it
# made, AUTH PLAIN with the credentials `init` printed, a recipient refused at RCPT TO
# with its reason, wrong credentials refused, and the accepted message delivered
# encrypted to the recipient's SMIMP server (seen in the gateway's delivery log).
set -euo pipefail
name=swaks_submission
source "$(dirname "$0")/common.bash"
command -v swaks >/dev/null || { echo "swaks_submission: swaks is not installed (apt-get install swaks)" >&2; exit 1; }

server_port=$(free_port) smtp_port=$(free_port) smtps_port=$(free_port)
mkdir -p "$dir/server" "$dir/gateway"
sed -e "s/^listen = .*/listen = \"127.0.0.1:$server_port\"/" -e "s/^public_base = .*/public_base = \"example.org:$server_port\"/" \
    -e 's/^default_zero_bits = .*/default_zero_bits = 12/' config/server.example.toml > "$dir/server/server.toml"
for user in alice bob; do
  "$bin" server add-account --config "$dir/server/server.toml" "$user@example.org" \
    | sed -n 's/^one-time initialisation password: //p' > "$dir/gateway/$user.otp"
done
"$bin" server --config "$dir/server/server.toml" 2>"$dir/server.log" &
pids+=($!)
wait_port "$server_port"
"$bin" server export-ca --config "$dir/server/server.toml" > "$dir/gateway/server-ca.pem"

sed -e 's/^trusted_ca_files = .*/trusted_ca_files = ["server-ca.pem"]/' \
    -e "s/^# \"example.org\" = .*/\"example.org\" = \"127.0.0.1:$server_port\"/" \
    -e 's/^kdf_memory_kib = .*/kdf_memory_kib = 1024/' -e 's/^kdf_passes = .*/kdf_passes = 1/' \
    -e "s/^listen = \"127.0.0.1:1025\"/listen = \"127.0.0.1:$smtp_port\"/" \
    -e "s/^tls_listen = .*/tls_listen = \"127.0.0.1:$smtps_port\"/" \
    config/gateway.example.toml > "$dir/gateway/gateway.toml"
printf 'a long keystore passphrase\n' > "$dir/gateway/passphrase.txt"
for user in alice bob; do
  "$bin" init --config "$dir/gateway/gateway.toml" --address "$user@example.org" --password-file "$dir/gateway/$user.otp" \
    > "$dir/gateway/$user.init"
done
alice_password=$(sed -n 's/^  password: //p' "$dir/gateway/alice.init")

RUST_LOG=info "$bin" run --config "$dir/gateway/gateway.toml" > "$dir/run.out" 2>"$dir/run.log" &
pids+=($!)
wait_port "$smtp_port"
ca="$dir/gateway/gateway-data/tls/ca.pem"
common=(--server localhost --from alice@example.org --tls-verify --tls-ca-path "$ca" --auth PLAIN
        --auth-user alice@example.org --auth-password "$alice_password" --timeout 20)

out=$(swaks "${common[@]}" --port "$smtp_port" --tls --to bob@example.org \
        --header "Subject: sent by swaks" --body "This message left swaks in the clear and SMIMP encrypted." 2>&1) || true
contains "STARTTLS + AUTH PLAIN: the message is accepted (inside TLS)" "<~  250 2.0.0 message accepted for delivery" "$out"
contains "the gateway advertised STARTTLS and AUTH" "250-AUTH PLAIN LOGIN" "$out"

out=$(swaks "${common[@]}" --port "$smtps_port" --tlsc --to bob@example.org --header "Subject: implicit TLS" 2>&1) || true
contains "implicit TLS: the message is accepted" "<~  250 2.0.0 message accepted for delivery" "$out"

out=$(swaks "${common[@]}" --port "$smtp_port" --tls --to nobody@example.org 2>&1) || true
contains "an unknown recipient is refused at RCPT TO with its reason" "550 5.1.1 nobody@example.org has no SMIMP profile" "$out"

out=$(swaks --server localhost --port "$smtp_port" --tls --tls-verify --tls-ca-path "$ca" --from alice@example.org \
        --to bob@example.org --auth PLAIN --auth-user alice@example.org --auth-password wrong --timeout 20 2>&1) || true
contains "wrong credentials are refused" "535 5.7.8" "$out"

delivered=0
for _ in $(seq 1 200); do
  if [ "$(sed 's/\x1b\[[0-9;]*m//g' "$dir/run.log" | grep -c 'recipient=bob#example.org outcome="sent"')" -ge 2 ]; then delivered=1; break; fi
  sleep 0.1
done
contains "both messages were delivered encrypted to bob's SMIMP server" "1" "$delivered"
contains "the delivery log names the proof of work, never the content" "zero_bits=12" "$(cat "$dir/run.log")"
if grep -q "left swaks in the clear" "$dir/run.log" "$dir/server.log"; then
  failed=$((failed + 1)); echo "FAIL message content appeared in a log"
else
  passed=$((passed + 1)); echo "ok   no message content in any log"
fi

finish
