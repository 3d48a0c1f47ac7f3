#!/usr/bin/env bash
# The README's first-use steps, run for real with the binary: a server with its
# development CA, `server add-account`, a gateway configuration that trusts that CA,
# `init` with the one-time password from a file (and on standard input), and the
# errors a user meets: a wrong password, an untrusted server, a second init. Every
# command's exit status is checked: 0 when it worked, 1 when it refused.
set -euo pipefail
name=init_cli
source "$(dirname "$0")/common.bash"

port=$(free_port)
mkdir -p "$dir/server" "$dir/gateway"
sed -e "s/^listen = .*/listen = \"127.0.0.1:$port\"/" -e "s/^public_base = .*/public_base = \"example.org:$port\"/" \
    config/server.example.toml > "$dir/server/server.toml"
alice_password=$("$bin" server add-account --config "$dir/server/server.toml" alice@example.org | sed -n 's/^one-time initialisation password: //p')
bob_password=$("$bin" server add-account --config "$dir/server/server.toml" bob@example.org | sed -n 's/^one-time initialisation password: //p')
"$bin" server --config "$dir/server/server.toml" 2>"$dir/server.log" &
pids+=($!)
wait_port "$port"
"$bin" server export-ca --config "$dir/server/server.toml" > "$dir/gateway/server-ca.pem"

# The gateway's configuration: the example, with the server's CA trusted and the
# domain resolved to the loopback port; a cheap KDF keeps the test quick.
sed -e 's/^trusted_ca_files = .*/trusted_ca_files = ["server-ca.pem"]/' \
    -e "s/^# \"example.org\" = .*/\"example.org\" = \"127.0.0.1:$port\"/" \
    -e 's/^kdf_memory_kib = .*/kdf_memory_kib = 1024/' -e 's/^kdf_passes = .*/kdf_passes = 1/' \
    config/gateway.example.toml > "$dir/gateway/gateway.toml"
printf 'a long keystore passphrase\n' > "$dir/gateway/passphrase.txt"
printf '%s\n' "$alice_password" > "$dir/gateway/otp.txt"

# run [INPUT] -- ARGS... — the binary with ARGS (INPUT on standard input when given); sets
# out (standard output and error) and rc (the exit status).
run() {
  local input=$1
  shift 2
  rc=0
  if [ -n "$input" ]; then out=$(printf '%s\n' "$input" | "$bin" "$@" 2>&1) || rc=$?
  else out=$("$bin" "$@" 2>&1 </dev/null) || rc=$?; fi
}

run "" -- init --config "$dir/gateway/gateway.toml" --address alice@example.org --password-file "$dir/gateway/otp.txt"
check "init exits 0" 0 "$rc"
contains "init prints the username" "username: alice@example.org" "$out"
check "init prints a generated password" "1" "$(printf '%s\n' "$out" | grep -cE '^  password: [A-Za-z0-9_-]{20,}$')"
check "the keystore is mode 0600" "600" "$(stat -c %a "$dir/gateway/gateway-data/keystores/alice@example.org.keystore")"
check "the server now publishes alice's history" "200" \
  "$(curl -sS --cacert "$dir/gateway/server-ca.pem" --resolve "example.org:$port:127.0.0.1" -o /dev/null -w '%{http_code}' \
     "https://example.org:$port/0.1/get_user/alice%23example.org/history")"

run "" -- init --config "$dir/gateway/gateway.toml" --address alice@example.org --password-file "$dir/gateway/otp.txt"
check "a second init exits 1" 1 "$rc"
contains "a second init is refused" "already set up on this gateway" "$out"

run wrong -- init --config "$dir/gateway/gateway.toml" --address bob@example.org
check "init with a wrong one-time password exits 1" 1 "$rc"
contains "a wrong one-time password says so" "refused the one-time initialisation password" "$out"

sed -e 's/^trusted_ca_files = .*/trusted_ca_files = []/' "$dir/gateway/gateway.toml" > "$dir/gateway/untrusting.toml"
run "$bob_password" -- init --config "$dir/gateway/untrusting.toml" --address bob@example.org
check "init against an untrusted server exits 1" 1 "$rc"
contains "an untrusted server certificate names the setting to change" "trusted_ca_files" "$out"

run "$bob_password" -- init --config "$dir/gateway/gateway.toml" --address bob@example.org
check "init with the password on standard input exits 0" 0 "$rc"
contains "init reads the password on standard input" "username: bob@example.org" "$out"

run "" -- keys replenish --config "$dir/gateway/gateway.toml" --address bob@example.org
check "keys replenish exits 0" 0 "$rc"
check "the key supply is already full" "added 0 ephemeral keys for bob@example.org" "$out"
run "" -- profile update --config "$dir/gateway/gateway.toml" --address bob@example.org --name Bob
check "profile update exits 0" 0 "$rc"
check "profile update" "profile of bob@example.org updated: the history has 2 records" "$out"
run "" -- keys rotate --master --config "$dir/gateway/gateway.toml" --address bob@example.org
check "master key rotation exits 0" 0 "$rc"
contains "master key rotation" "new master key of bob@example.org:" "$out"

printf 'not the passphrase\n' > "$dir/gateway/passphrase.txt"
run "" -- keys rotate --config "$dir/gateway/gateway.toml" --address bob@example.org
check "key rotation with a wrong keystore passphrase exits 1" 1 "$rc"
contains "a wrong keystore passphrase is named" "passphrase" "$out"

finish
