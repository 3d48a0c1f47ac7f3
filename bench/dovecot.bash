# Shared by the IMAP benchmarks (sourced after tests/clients/common.bash and gateway.bash,
# not run): Dovecot on loopback as the peer, with its own directories under $dir, over
# TLS with the gateway's certificate so both are reached the same way.
#
# start_dovecot USER PASSWORD — sets dovecot_port and dovecot_maildir (USER's Maildir,
# which a benchmark may fill before or after the start).
start_dovecot() {
  command -v dovecot >/dev/null || { echo "$name: dovecot is not installed (apt-get install dovecot-imapd)" >&2; exit 1; }
  mkdir -p "$dir/dovecot/run" "$dir/dovecot/home/$1/Maildir"
  dovecot_maildir="$dir/dovecot/home/$1/Maildir"
  # Dovecot's auth and mail processes run as its own users: they must reach the scratch dir.
  chmod 755 "$dir"
  printf '%s:{PLAIN}%s\n' "$1" "$2" > "$dir/dovecot/users"
  dovecot_port=$(free_port)
  cat > "$dir/dovecot/dovecot.conf" <<CONF
protocols = imap
listen = 127.0.0.1
base_dir = $dir/dovecot/run
state_dir = $dir/dovecot/state
log_path = $dir/dovecot/dovecot.log
ssl = required
ssl_cert = <$dir/gateway/gateway-data/tls/server.pem
ssl_key = <$dir/gateway/gateway-data/tls/server-key.pem
auth_mechanisms = plain login
first_valid_uid = 0
service imap-login {
  inet_listener imap {
    port = 0
  }
  inet_listener imaps {
    port = $dovecot_port
    ssl = yes
  }
}
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%n $dir/dovecot/users
}
userdb {
  driver = static
  args = uid=dovecot gid=dovecot home=$dir/dovecot/home/%n mail=maildir:~/Maildir
}
CONF
  chown -R dovecot:dovecot "$dir/dovecot"
  dovecot -F -c "$dir/dovecot/dovecot.conf" &
  pids+=($!)
  wait_port "$dovecot_port"
}

# rss_kib PID — the process's resident set now and at its peak, in KiB ("now peak").
rss_kib() {
  echo "$(sed -n 's/^VmRSS:\s*\([0-9]*\).*/\1/p' "/proc/$1/status") $(sed -n 's/^VmHWM:\s*\([0-9]*\).*/\1/p' "/proc/$1/status")"
}
