#!/usr/bin/env bash
# neomutt against `smimp-gateway run` in the three modes (plain on loopback, STARTTLS,
# implicit TLS): a batch send through the gateway's SMTP, and a send from its compose
# menu in tmux with an FCC to the IMAP Sent folder (neomutt skips an FCC to IMAP in batch
# mode), the index of Sent read in tmux, and the messages fetched back from alice's Sent
# and bob's INBOX with text and attachment hashing as written. The test is mutt.bash's,
# shared with mutt.sh.
set -euo pipefail
name=neomutt
source "$(dirname "$0")/common.bash"
source "$(dirname "$0")/gateway.bash"
source "$(dirname "$0")/mutt.bash"
for program in neomutt tmux; do
  command -v "$program" >/dev/null || { echo "neomutt: $program is not installed (apt-get install $program)" >&2; exit 1; }
done

start_gateway 0
wait_port "$imap_port"
wait_port "$imaps_port"
mutt_test neomutt
finish
