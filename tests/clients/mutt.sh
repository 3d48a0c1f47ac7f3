#!/usr/bin/env bash
# mutt against `smimp-gateway run` in the three modes (plain on loopback, STARTTLS,
# implicit TLS): a batch send through the gateway's SMTP with an FCC to the IMAP Sent
# folder (for neomutt, from its compose menu in tmux), the index of Sent read in tmux, and the message fetched back from alice's Sent
# and from bob's INBOX with text and attachment hashing as written. The test is
# mutt.bash's, shared with neomutt.sh.
set -euo pipefail
name=mutt
source "$(dirname "$0")/common.bash"
source "$(dirname "$0")/gateway.bash"
source "$(dirname "$0")/mutt.bash"
for program in mutt tmux; do
  command -v "$program" >/dev/null || { echo "mutt: $program is not installed (apt-get install $program)" >&2; exit 1; }
done

start_gateway 0
wait_port "$imap_port"
wait_port "$imaps_port"
mutt_test mutt
finish
