# Shared by mutt.sh and neomutt.sh (sourced after common.bash and gateway.bash, not run):
# the same test for either program, in each of the three ways a client reaches the
# gateway (plain on loopback, STARTTLS, implicit TLS):
#  1. a batch send (-batch mode: stdin is not a terminal) of a text body and a binary
#     attachment through the gateway's SMTP (smtp:// without TLS, smtp:// with
#     ssl_starttls, smtps://), with an FCC (`record`) to the IMAP Sent folder over the
#     same mode (neomutt skips an FCC to IMAP in batch mode, so it also sends the message
#     from its compose menu in tmux, and that copy's FCC is checked);
#  2. the program started in a detached tmux session on that Sent folder: its index shows
#     the subject;
#  3. the message fetched back with Python's imaplib, from alice's Sent (the FCC) and from
#     bob's INBOX (delivered encrypted through SMIMP): text and attachment hash as sent.
# Certificates are checked against the gateway's CA (ssl_ca_certificates_file, GnuTLS),
# and mutt would stop to ask about one it cannot verify: it then never sends.

# mutt_config MODE — writes $dir/MODE/muttrc for alice.
mutt_config() {
  local smtp imap starttls=no force=no
  case "$1" in
    plain) smtp="smtp://alice%40example.org@localhost:$smtp_port/" imap="imap://localhost:$imap_port/";;
    starttls) smtp="smtp://alice%40example.org@localhost:$smtp_port/" imap="imap://localhost:$imap_port/" starttls=yes force=yes;;
    tls) smtp="smtps://alice%40example.org@localhost:$smtps_port/" imap="imaps://localhost:$imaps_port/" force=yes;;
  esac
  mkdir -p "$dir/$1/cache"
  cat > "$dir/$1/muttrc" <<CONF
set from="alice@example.org"
set realname="Alice"
set use_from=yes
set hostname="example.org"
set smtp_url="$smtp"
set smtp_pass="$alice_password"
set imap_user="alice@example.org"
set imap_pass="$alice_password"
set folder="$imap"
set spoolfile="+INBOX"
set record="+Sent"
set copy=yes
set ssl_starttls=$starttls
set ssl_force_tls=$force
set ssl_ca_certificates_file="$ca"
set certificate_file="$dir/$1/certificates"
set header_cache="$dir/$1/cache"
set imap_passive=yes
set mail_check=60
set timeout=10
set sort=date
set index_format="%4C %-15.15F %s"
set confirmappend=no
set move=no
CONF
}

# fetch_back FILE USER PASSWORD FOLDER SUBJECT — the message with SUBJECT in FOLDER (over
# implicit TLS), waiting up to 30 s for it; its raw bytes into FILE.
fetch_back() {
  CA="$ca" PORT="$imaps_port" USER="$2" PASSWORD="$3" FOLDER="$4" SUBJECT="$5" python3 - > "$1" <<'PY'
import imaplib, os, ssl, sys, time
ctx = ssl.create_default_context(cafile=os.environ["CA"])
imap = imaplib.IMAP4_SSL("localhost", int(os.environ["PORT"]), ssl_context=ctx, timeout=30)
imap.login(os.environ["USER"], os.environ["PASSWORD"])
for _ in range(300):
    imap.select(os.environ["FOLDER"], readonly=True)
    found = imap.search(None, "SUBJECT", '"' + os.environ["SUBJECT"] + '"')[1][0].split()
    if found:
        sys.stdout.buffer.write(imap.fetch(found[-1], "(BODY.PEEK[])")[1][0][1])
        break
    time.sleep(0.1)
imap.logout()
PY
}

# tui_send MODE SUBJECT — $program sends the body and attachment of MODE to bob from its
# compose menu in a detached tmux session (the editor does nothing; `y` sends); waits
# (at most 30 s) until the program has ended.
tui_send() {
  local session="$name-send-$1-$$"
  tmux new-session -d -s "$session" -x 160 -y 40 \
    "timeout --foreground 60 $program -n -F '$dir/$1/muttrc' -e 'set editor=true' -s '$2' -i '$dir/$1/body.txt' -a '$dir/$1/data-$1.bin' -- bob@example.org 2>'$dir/$1/send.err'"
  local screen
  # Prompts for the header fields (already given on the command line) are answered with
  # Enter until the compose menu shows.
  for _ in $(seq 1 100); do
    screen=$(tmux capture-pane -p -t "$session" 2>/dev/null || true)
    case "$screen" in *"Compose"*) break;; esac
    case "$(printf '%s\n' "$screen" | grep -v '^$' | tail -n 1)" in
      To:*|Subject:*|Cc:*|Bcc:*) tmux send-keys -t "$session" Enter;;
    esac
    sleep 0.2
  done
  tmux send-keys -t "$session" y
  for _ in $(seq 1 300); do tmux has-session -t "$session" 2>/dev/null || return 0; sleep 0.1; done
  tmux capture-pane -p -t "$session" | grep -v '^$' | tail -n 5
  tmux kill-session -t "$session" 2>/dev/null || true
}

# mutt_test PROGRAM — the whole test with PROGRAM (mutt or neomutt).
mutt_test() {
  local program=$1 mode out rc subject session screen
  local bob_password
  bob_password=$(sed -n 's/^  password: //p' "$dir/gateway/bob.init")
  export HOME="$dir/home" TERM=xterm-256color
  mkdir -p "$HOME"
  for mode in plain starttls tls; do
    mutt_config "$mode"
    subject="$program $mode"
    printf '%s: written in %s, sealed by the gateway.\nSecond line.\n' "$program" "$mode" > "$dir/$mode/body.txt"
    head -c 6000 /dev/urandom > "$dir/$mode/data-$mode.bin"
    printf 'text %s\nattachment data-%s.bin %s\n' \
      "$(printf '%s' "$(cat "$dir/$mode/body.txt")" | sha256sum | cut -d' ' -f1)" "$mode" \
      "$(sha256sum < "$dir/$mode/data-$mode.bin" | cut -d' ' -f1)" > "$dir/$mode/expected"
    rc=0
    out=$(timeout 60 "$program" -n -F "$dir/$mode/muttrc" -s "$subject" -a "$dir/$mode/data-$mode.bin" -- bob@example.org \
            < "$dir/$mode/body.txt" 2>&1) || rc=$?
    [ "$rc" -eq 0 ] || printf '%s\n' "$out" | tail -n 10
    check "$mode: $program sends in batch mode (exit status)" 0 "$rc"

    fetch_back "$dir/$mode/received.eml" bob@example.org "$bob_password" INBOX "$subject"
    check "$mode: delivered to bob through SMIMP: text and attachment hash as written" \
      "$(cat "$dir/$mode/expected")" "$(python3 tests/clients/mailhash.py "$dir/$mode/received.eml")"
    contains "$mode: bob's copy says it was verified" "X-SMIMP-Verified: pass" "$(cat "$dir/$mode/received.eml")"

    # neomutt skips an FCC to IMAP in batch mode ("not supported in batch mode"): it sends
    # the same message again from its compose menu in tmux, whose FCC is then checked.
    if [ "$program" = neomutt ]; then
      tui_send "$mode" "$subject (composed)"
      subject="$subject (composed)"
    fi
    fetch_back "$dir/$mode/sent.eml" alice@example.org "$alice_password" Sent "$subject"
    check "$mode: the FCC in alice's Sent: text and attachment hash as written" \
      "$(cat "$dir/$mode/expected")" "$(python3 tests/clients/mailhash.py "$dir/$mode/sent.eml")"

    # The index of Sent, read in a terminal.
    session="$name-$mode-$$"
    tmux new-session -d -s "$session" -x 160 -y 40 \
      "timeout --foreground 60 $program -n -F '$dir/$mode/muttrc' -f '+Sent' 2>'$dir/$mode/tui.err'"
    screen=""
    for _ in $(seq 1 150); do
      screen=$(tmux capture-pane -p -t "$session" 2>/dev/null || true)
      case "$screen" in *"$subject"*) break;; esac
      sleep 0.1
    done
    contains "$mode: $program's index of Sent shows the subject (read in tmux)" "$subject" "$screen"
    case "$screen" in *"$subject"*) ;; *) echo "its standard error:"; cat "$dir/$mode/tui.err";; esac
    tmux send-keys -t "$session" q 2>/dev/null || true
    tmux kill-session -t "$session" 2>/dev/null || true
  done
}
