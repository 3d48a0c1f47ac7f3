#!/usr/bin/env bash
# Operating the gateway from the command line, on a real setup (gateway.bash: a server,
# alice and bob set up with `init`, `run`): after a message goes through, `status` lists
# both accounts, an empty queue, the delivery (recipient, state, attempts) and the trust
# event of first contact, and never the message's content; `setup-client` prints the
# configured ports, security and CA for all three clients, refuses an unknown account,
# and writes a Thunderbird autoconfig file that Python's XML parser reads as a
# clientConfig 1.1 with the configured IMAP and SMTP servers.
set -euo pipefail
name=ops_cli
source "$(dirname "$0")/common.bash"
source "$(dirname "$0")/gateway.bash"

start_gateway 8
config="$dir/gateway/gateway.toml"

message="$dir/message.eml"
printf 'From: alice@example.org\r\nTo: bob@example.org\r\nSubject: status check\r\n\r\nA body no status may show.\r\n' > "$message"
curl --no-progress-meter --max-time 20 --url "smtp://localhost:$smtp_port" --ssl-reqd --cacert "$ca" \
  --user "alice@example.org:$alice_password" --mail-from alice@example.org --mail-rcpt bob@example.org \
  --upload-file "$message"
check "the message was delivered" 1 "$(wait_delivered 1 'bob#example.org')"

out=$("$bin" status --config "$config")
contains "status lists alice" "  alice@example.org  login alice@example.org  since " "$out"
contains "status lists bob" "  bob@example.org  login bob@example.org  since " "$out"
contains "status shows the empty queue" "outbound queue: 0 waiting" "$out"
contains "status shows no work in progress once idle" "work in progress (0):" "$out"
contains "status shows the delivery with its outcome" "alice@example.org → bob@example.org  sent  1 attempt  queued " "$out"
contains "status shows the first contact with bob" "  bob@example.org  first_contact  " "$out"
case "$out" in *"status check"*|*"no status may show"*) check "status shows no content" "none" "content";;
  *) check "status shows no content" "none" "none";; esac
rc=0; out=$("$bin" status --config "$dir/nowhere.toml" 2>&1) || rc=$?
check "status on a missing configuration fails" 1 "$rc"
contains "... naming the file" "$dir/nowhere.toml" "$out"

out=$("$bin" setup-client --config "$config")
contains "setup-client: alice's settings" "Mail client settings for alice@example.org" "$out"
contains "setup-client: bob's settings" "Mail client settings for bob@example.org" "$out"
contains "setup-client: IMAP with STARTTLS" "server 127.0.0.1  port $imap_port  security STARTTLS" "$out"
contains "setup-client: IMAP with SSL/TLS" "or server 127.0.0.1  port $imaps_port  security SSL/TLS" "$out"
contains "setup-client: SMTP with STARTTLS" "server 127.0.0.1  port $smtp_port  security STARTTLS" "$out"
contains "setup-client: SMTP with SSL/TLS" "or server 127.0.0.1  port $smtps_port  security SSL/TLS" "$out"
contains "setup-client: normal password" "Authentication: normal password" "$out"
contains "setup-client: the CA run made" "Certificate authority to trust: $ca" "$out"
# The needle must be a whole fingerprint (32 colon-separated hex bytes), never a part
# that any output would contain.
fingerprint=$("$bin" export-ca --config "$config" 2>&1 >/dev/null | sed -n 's/^SHA-256 fingerprint: //p')
check "export-ca prints the CA's SHA-256 fingerprint in full" 1 \
  "$(printf '%s\n' "$fingerprint" | grep -c -x -E '([0-9A-F]{2}:){31}[0-9A-F]{2}')"
contains "setup-client: its fingerprint" "SHA-256 fingerprint: $fingerprint" "$out"
for client in "Thunderbird" "Outlook (Windows)" "Apple Mail (macOS)"; do
  contains "setup-client: how to set up $client" "$client" "$out"
done

rc=0; out=$("$bin" setup-client --config "$config" --account carol@example.org 2>&1) || rc=$?
check "setup-client refuses an account the gateway does not serve" 1 "$rc"
contains "... naming it and the served ones" "carol@example.org is not set up on this gateway (it serves: alice@example.org, bob@example.org)" "$out"
rc=0; out=$("$bin" setup-client --config "$config" --thunderbird-autoconfig "$dir/both.xml" 2>&1) || rc=$?
check "an autoconfig file needs one account" 1 "$rc"
contains "... and says so" "--account ADDRESS" "$out"

out=$("$bin" setup-client --config "$config" --account alice@example.org --thunderbird-autoconfig "$dir/alice.xml")
contains "setup-client says where it wrote the autoconfig file" "to $dir/alice.xml" "$out"
parsed=$(python3 - "$dir/alice.xml" <<'PY'
import sys
import xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
assert root.tag == "clientConfig" and root.get("version") == "1.1", (root.tag, root.attrib)
providers = root.findall("emailProvider")
assert len(providers) == 1
p = providers[0]
print("provider", p.get("id"), p.findtext("domain"))
for server in p.findall("incomingServer") + p.findall("outgoingServer"):
    print(server.tag, server.get("type"), server.findtext("hostname"), server.findtext("port"),
          server.findtext("socketType"), server.findtext("username"), server.findtext("authentication"))
PY
)
check "the autoconfig file is a clientConfig 1.1 with exactly these servers" "provider example.org example.org
incomingServer imap 127.0.0.1 $imaps_port SSL alice@example.org password-cleartext
incomingServer imap 127.0.0.1 $imap_port STARTTLS alice@example.org password-cleartext
outgoingServer smtp 127.0.0.1 $smtps_port SSL alice@example.org password-cleartext
outgoingServer smtp 127.0.0.1 $smtp_port STARTTLS alice@example.org password-cleartext" "$parsed"

finish
