# Shared by the SMTP client scripts (sourced after common.bash, not run): one reference
# server for example.org with alice and bob, both set up on one gateway with `init`, and
# `smimp-gateway run` listening on free loopback ports. Every client script (swaks, msmtp,
# curl) then talks to the same setup, so what differs between them is only the client.
#
# Sets: server_port smtp_port smtps_port imap_port imaps_port ca (the gateway's CA, the file mail clients
# trust) alice_password; logs in $dir/server.log and $dir/run.log (the delivery log).

# start_gateway ZERO_BITS [SED_EXPRESSION...] — the server's PoW difficulty for senders
# off the whitelist; further sed expressions edit the server's configuration (the
# benchmark lifts the login rate limit with one).
start_gateway() {
  local zero_bits=$1 edits=() expression
  shift
  for expression in "$@"; do edits+=(-e "$expression"); done
  server_port=$(free_port) smtp_port=$(free_port) smtps_port=$(free_port) imap_port=$(free_port) imaps_port=$(free_port)
  mkdir -p "$dir/server" "$dir/gateway"
  sed -e "s/^listen = .*/listen = \"127.0.0.1:$server_port\"/" -e "s/^public_base = .*/public_base = \"example.org:$server_port\"/" \
      -e "s/^default_zero_bits = .*/default_zero_bits = $zero_bits/" "${edits[@]}" config/server.example.toml > "$dir/server/server.toml"
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
      -e "s/^tls_listen = \"127.0.0.1:1465\"/tls_listen = \"127.0.0.1:$smtps_port\"/" \
      -e "s/^listen = \"127.0.0.1:1143\"/listen = \"127.0.0.1:$imap_port\"/" \
      -e "s/^tls_listen = \"127.0.0.1:1993\"/tls_listen = \"127.0.0.1:$imaps_port\"/" \
      -e 's/^poll_interval = .*/poll_interval = "2s"/' \
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
  wait_port "$smtps_port"
  ca="$dir/gateway/gateway-data/tls/ca.pem"
}

# wait_delivered COUNT RECIPIENT — prints 1 once the delivery log shows at least COUNT
# messages sent to RECIPIENT (an SMIMP address), 0 if that does not happen within 20 s.
wait_delivered() {
  for _ in $(seq 1 200); do
    if [ "$(sed 's/\x1b\[[0-9;]*m//g' "$dir/run.log" | grep -c "recipient=$2 route=\"smimp\" outcome=\"sent\"")" -ge "$1" ]; then
      echo 1; return
    fi
    sleep 0.1
  done
  echo 0
}

# check_only_sealed_at_rest TEXT... — the "never in the clear" checks on disk, after
# delivery: the recipient server's SQLite files (database, WAL and shared memory) hold
# the message only as a sealed envelope, and the gateway's queue only sealed payloads,
# so none of the given subject or body texts appear in them. As a control that the right
# files are searched, the server's database must name the recipient, which it stores in
# the clear as routing data.
check_only_sealed_at_rest() {
  local server_files=("$dir"/server/smimp-server.sqlite*) gateway_files=("$dir"/gateway/gateway-data/gateway.sqlite*)
  [ -e "${server_files[0]}" ] || { failed=$((failed + 1)); echo "FAIL the server's database is not in $dir/server"; return; }
  [ -e "${gateway_files[0]}" ] || { failed=$((failed + 1)); echo "FAIL the gateway's database is not in $dir/gateway"; return; }
  contains "the server's database files are the ones holding bob's mailbox" "1" \
    "$(grep -a -q -F 'bob#example.org' "${server_files[@]}" && echo 1 || echo 0)"
  local text found
  for text in "$@"; do
    found=$(grep -a -l -F -- "$text" "${server_files[@]}" "${gateway_files[@]}" || true)
    check "not in the clear in any database file: \"$text\"" "" "$found"
  done
}
