#!/usr/bin/env bash
# mbsync (Debian's isync) on two devices of one account: gateway A (from gateway.bash)
# and gateway B, with data directories of their own, both against the one reference
# server. Each device's mbsync syncs the account's INBOX to its own Maildir; a flag set
# in device A's Maildir reaches the server through A's IMAP and comes down to device
# B's Maildir through B's IMAP, which follows the server's change feed (docs/protocol.md
# §8.29). Every mbsync run must exit 0.
#
# Until device enrollment exists, device B is what enrollment will leave behind, made
# by hand: a copy of alice's keystore file and a gateway store that registers only her
# account (an online SQLite backup of A's store, pruned of A's other account, queue and
# IMAP view).
set -euo pipefail
name=mbsync_two_devices
source "$(dirname "$0")/common.bash"
source "$(dirname "$0")/gateway.bash"
command -v mbsync >/dev/null || { echo "mbsync: mbsync is not installed (apt-get install isync)" >&2; exit 1; }

start_gateway 0
wait_port "$imaps_port"
for n in 1 2; do
  printf 'From: Bob <bob@example.org>\r\nTo: Alice <alice@example.org>\r\nSubject: Two devices %s\r\n\r\nNote %s for both devices.\r\n' "$n" "$n" > "$dir/m$n.eml"
  bob_password=$(sed -n 's/^  password: //p' "$dir/gateway/bob.init")
  curl --no-progress-meter --max-time 30 --url "smtp://localhost:$smtp_port" --ssl-reqd --cacert "$ca" \
    --user "bob@example.org:$bob_password" --mail-from bob@example.org --mail-rcpt alice@example.org \
    --upload-file "$dir/m$n.eml"
done
check "both messages were delivered encrypted" 1 "$(wait_delivered 2 'alice#example.org')"

# Device B: its own configuration, ports and data directory.
b="$dir/gateway-b"
b_imaps_port=$(free_port) b_imap_port=$(free_port) b_smtp_port=$(free_port) b_smtps_port=$(free_port)
mkdir -p "$b/gateway-data/keystores"
cp "$dir/gateway/server-ca.pem" "$dir/gateway/passphrase.txt" "$b/"
sed -e "s/^listen = \"127.0.0.1:$smtp_port\"/listen = \"127.0.0.1:$b_smtp_port\"/" \
    -e "s/^tls_listen = \"127.0.0.1:$smtps_port\"/tls_listen = \"127.0.0.1:$b_smtps_port\"/" \
    -e "s/^listen = \"127.0.0.1:$imap_port\"/listen = \"127.0.0.1:$b_imap_port\"/" \
    -e "s/^tls_listen = \"127.0.0.1:$imaps_port\"/tls_listen = \"127.0.0.1:$b_imaps_port\"/" \
    "$dir/gateway/gateway.toml" > "$b/gateway.toml"
keystore=$(find "$dir/gateway/gateway-data/keystores" -name 'alice@example.org.keystore')
cp "$keystore" "$b/gateway-data/keystores/"
B_STORE="$b/gateway-data/gateway.sqlite" B_KEYSTORE="$b/gateway-data/keystores/alice@example.org.keystore" \
A_STORE="$dir/gateway/gateway-data/gateway.sqlite" python3 - <<'PY'
import os, sqlite3
source = sqlite3.connect(os.environ["A_STORE"])
target = sqlite3.connect(os.environ["B_STORE"])
source.backup(target)  # online: A is running
target.executescript("""
DELETE FROM accounts WHERE address <> 'alice#example.org';
DELETE FROM outbound;
DELETE FROM mailboxes;
DELETE FROM message_cache;
DELETE FROM progress;
""")
target.execute("UPDATE accounts SET keystore_path = ?", (os.environ["B_KEYSTORE"],))
target.commit()
PY
RUST_LOG=info "$bin" run --config "$b/gateway.toml" > "$dir/run-b.out" 2>"$dir/run-b.log" &
pids+=($!)
wait_port "$b_imaps_port"
b_ca="$b/gateway-data/tls/ca.pem"
alice_password=$(sed -n 's/^  password: //p' "$dir/gateway/alice.init")

# mbsyncrc DEVICE PORT CA — one device's configuration: implicit TLS, its own Maildir.
mbsyncrc() {
  mkdir -p "$dir/$1"
  cat > "$dir/$1.mbsyncrc" <<CONF
IMAPAccount alice
Host localhost
Port $2
User alice@example.org
Pass $alice_password
SSLType IMAPS
CertificateFile $3
AuthMechs LOGIN PLAIN

IMAPStore alice-remote
Account alice

MaildirStore alice-local
Path $dir/$1/
Inbox $dir/$1/INBOX
SubFolders Verbatim

Channel alice
Far :alice-remote:
Near :alice-local:
Patterns INBOX
Create Both
Expunge Both
SyncState *
CONF
}
mbsyncrc a "$imaps_port" "$ca"
mbsyncrc b "$b_imaps_port" "$b_ca"

# sync DEVICE WHAT — one mbsync run; it must succeed.
sync() {
  local rc=0 out
  out=$(mbsync -c "$dir/$1.mbsyncrc" -a 2>&1) || rc=$?
  printf '%s\n' "$out" | tail -n 3
  check "device $1: the $2 sync exits 0" 0 "$rc"
}
flagged() { find "$dir/$1/INBOX" -type f -name '*:2,*F*' | wc -l; }

sync a first
sync b first
for device in a b; do
  check "device $device: the Maildir holds both messages" 2 "$(grep -rl 'Subject: Two devices' "$dir/$device/INBOX" | wc -l)"
  check "device $device: nothing is flagged yet" 0 "$(flagged "$device")"
done

# Flag note 1 in device A's Maildir and sync A: the flag goes to A's gateway and the server.
file=$(grep -rl "Note 1 for both devices" "$dir/a/INBOX")
case "$file" in *:2,*) mv "$file" "${file}F";; *) mv "$file" "${file}:2,F";; esac
sync a second

# Device B brings it down (its gateway follows the server's feed at each SELECT).
for round in 1 2 3 4 5; do
  sync b "flag ($round)"
  [ "$(flagged b)" = 1 ] && break
  sleep 1
done
check "device B's Maildir has the flag set on device A" 1 "$(flagged b)"
check "and on the same message" 1 \
  "$(grep -l 'Note 1 for both devices' $(find "$dir/b/INBOX" -type f -name '*:2,*F*') | wc -l)"
finish
