#!/usr/bin/env bash
# Delivered messages per second through `smimp-gateway run`, and accepted messages per
# second of its SMTP submission against Debian's Postfix on the same machine in the same
# run (docs/performance.md, "SMTP submission and delivery").
#
# A reference server for example.org (`smimp-gateway server` with its shipped limits and
# PoW at 0 bits, so that delivery, not hashing, is measured) and the gateway run from the
# release binary on loopback; Python's smtplib (bench/smtp_submit.py)
# submits COUNT messages of 4 KB and of 1 MB over 1 and over 8 concurrent STARTTLS
# connections. "delivered/s" counts from the first submission until the gateway's log
# shows every message sent to the recipient's server; "accepted/s" from the first
# connection to the last 250.
#
# The peer: Postfix's smtpd with STARTTLS (the gateway's own certificate) queueing into a
# discard transport, fed the same messages by the same client. Postfix's master must start
# as root, so the peer runs only as root with postfix installed; otherwise it is skipped.
#
# Usage: cargo build --release --bin smimp-gateway && bash bench/smtp_throughput.sh
# Environment: SMIMP_BIN (default target/release/smimp-gateway), SMALL (messages of 4 KB,
# default 200), LARGE (messages of 1 MB, default 20). Every wait is bounded.
set -euo pipefail
export SMIMP_BIN=${SMIMP_BIN:-target/release/smimp-gateway}
name=smtp_throughput
source "$(dirname "$0")/../tests/clients/common.bash"
source tests/clients/gateway.bash
small=${SMALL:-200} large=${LARGE:-20}
submit=bench/smtp_submit.py

start_gateway 0
gateway_pid=${pids[-1]}
source bench/dovecot.bash   # for rss_kib

sent() { sed 's/\x1b\[[0-9;]*m//g' "$dir/run.log" | grep -c 'outcome="sent"' || true; }
now() { date +%s.%N; }
field() { python3 -c 'import json, sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }
rate() { python3 -c 'import sys; print(f"{float(sys.argv[1]) / float(sys.argv[2]):.1f}")' "$1" "$2"; }

# gateway SIZE COUNT CONNECTIONS — prints "accepted/s delivered/s".
gateway() {
  local before started result finished deadline
  before=$(sent)
  started=$(now)
  result=$(python3 "$submit" --port "$smtp_port" --ca "$ca" --user alice@example.org --password "$alice_password" \
             --size "$1" --count "$2" --connections "$3")
  [ "$(field "$result" accepted)" = "$2" ] || { echo "$name: not all accepted: $result" >&2; exit 1; }
  deadline=$((SECONDS + 600))
  while [ "$(sent)" -lt $((before + $2)) ]; do
    [ "$SECONDS" -lt "$deadline" ] || { echo "$name: not all delivered within 600 s" >&2; exit 1; }
    sleep 0.05
  done
  finished=$(now)
  if grep -q 'outcome="deferred"\|outcome="failed"' "$dir/run.log"; then
    echo "$name: a delivery was deferred or failed:" >&2; grep 'outcome=' "$dir/run.log" | grep -v '"sent"' | head -3 >&2; exit 1
  fi
  echo "$(rate "$2" "$(field "$result" seconds)") $(rate "$2" "$(python3 -c "print($finished - $started)")")"
}

# Postfix on loopback with its own directories, smtpd → cleanup → queue → discard.
postfix_port=
start_postfix() {
  [ "$(id -u)" = 0 ] && command -v postfix >/dev/null || return 1
  local p="$dir/postfix"
  chmod 711 "$dir"
  mkdir -p "$p/etc" "$p/queue" "$p/data"
  chmod 755 "$p"
  chown postfix "$p/data"
  postfix_port=$(free_port)
  cat > "$p/etc/main.cf" <<CF
compatibility_level = 3.6
queue_directory = $p/queue
data_directory = $p/data
meta_directory = /etc/postfix
maillog_file = $p/maillog
maillog_file_prefixes = $p
myhostname = bench.localdomain
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
default_transport = discard
relay_transport = discard
local_transport = discard
message_size_limit = 33554432
smtpd_tls_security_level = encrypt
smtpd_tls_cert_file = $dir/gateway/gateway-data/tls/server.pem
smtpd_tls_key_file = $dir/gateway/gateway-data/tls/server-key.pem
CF
  # Only the services this path uses; none chrooted, since the queue is in $dir.
  cat > "$p/etc/master.cf" <<CF
127.0.0.1:$postfix_port inet n - n - - smtpd
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
discard   unix  - - n - - discard
retry     unix  - - n - - error
error     unix  - - n - - error
tlsmgr    unix  - - n 1000? 1 tlsmgr
postlog   unix-dgram n - n - 1 postlogd
CF
  postfix -c "$p/etc" check && postfix -c "$p/etc" start >/dev/null || return 1
  stop_postfix() { postfix -c "$dir/postfix/etc" stop >/dev/null 2>&1 || true; }
  trap 'stop_postfix; cleanup' EXIT
  wait_port "$postfix_port"
}

# postfix SIZE COUNT CONNECTIONS — prints accepted/s.
postfix_rate() {
  local result
  result=$(python3 "$submit" --port "$postfix_port" --ca "$ca" --size "$1" --count "$2" --connections "$3")
  [ "$(field "$result" accepted)" = "$2" ] || { echo "$name: Postfix did not accept all: $result" >&2; exit 1; }
  rate "$2" "$(field "$result" seconds)"
}

peer=yes
start_postfix || { peer=no; echo "$name: Postfix is not run (needs root and the postfix package); no peer ratio" >&2; }

echo "$name: $(nproc) cores, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1), binary $SMIMP_BIN"
echo "| message | connections | count | gateway accepted/s | gateway delivered/s | Postfix accepted/s | gateway ÷ Postfix (accepted) |"
echo "|---|---|---|---|---|---|---|"
for spec in "4096 4 KB $small" "1048576 1 MB $large"; do
  read -r size label unit count <<< "$spec"
  for connections in 1 8; do
    read -r accepted delivered <<< "$(gateway "$size" "$count" "$connections")"
    if [ "$peer" = yes ]; then
      theirs=$(postfix_rate "$size" "$count" "$connections")
      ratio=$(python3 -c "print(f'{$accepted / $theirs:.2f}')")
    else
      theirs=— ratio=—
    fi
    echo "| $label $unit | $connections | $count | $accepted | $delivered | $theirs | $ratio |"
  done
done
read -r rss_now rss_peak <<<"$(rss_kib "$gateway_pid")"
echo
echo "gateway resident memory after the run: $((rss_now / 1024)) MiB, peak $((rss_peak / 1024)) MiB"
finished=yes
