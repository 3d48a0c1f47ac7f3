"""Times the IMAP work a mail client does on a large mailbox, against any IMAP server
over TLS (bench/imap_compare.sh runs it against smimp-gateway and Dovecot with the same
10,000 messages): the first-sync header fetch, once cold and once warm, and a fetch of
every full body. Prints one JSON object; `--export DIR` also writes every message into
DIR as a Maildir (for loading the same messages into the peer)."""

import argparse
import imaplib
import json
import os
import ssl
import time

HEADERS = "(UID FLAGS RFC822.SIZE BODY.PEEK[HEADER.FIELDS (From To Cc Subject Date Message-ID Content-Type)])"


def timed(imap, *command):
    start = time.perf_counter()
    typ, data = imap.uid(*command)
    elapsed = time.perf_counter() - start
    if typ != "OK":
        raise SystemExit(f"{command[0]} failed: {data}")
    return elapsed, data


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ca", required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--expect", type=int, required=True)
    parser.add_argument("--export")
    args = parser.parse_args()
    ctx = ssl.create_default_context(cafile=args.ca)
    imap = imaplib.IMAP4_SSL("localhost", args.port, ssl_context=ctx, timeout=600)
    imap.login(args.user, args.password)
    start = time.perf_counter()
    typ, data = imap.select("INBOX", readonly=True)
    select = time.perf_counter() - start
    count = int(data[0])
    if count != args.expect:
        raise SystemExit(f"INBOX holds {count} messages, expected {args.expect}")
    cold, data = timed(imap, "FETCH", "1:*", HEADERS)
    headers = sum(1 for item in data if isinstance(item, tuple))
    warm, _ = timed(imap, "FETCH", "1:*", HEADERS)
    bodies, data = timed(imap, "FETCH", "1:*", "(BODY.PEEK[])")
    messages = [item[1] for item in data if isinstance(item, tuple)]
    if headers != count or len(messages) != count:
        raise SystemExit(f"fetched {headers} headers and {len(messages)} bodies of {count}")
    if args.export:
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(args.export, sub), exist_ok=True)
        for n, message in enumerate(messages):
            with open(os.path.join(args.export, "cur", f"{1700000000 + n}.{n}.bench:2,"), "wb") as f:
                f.write(message)
    imap.logout()
    print(json.dumps({
        "messages": count,
        "select_s": round(select, 3),
        "headers_cold_s": round(select + cold, 3),
        "headers_warm_s": round(warm, 3),
        "bodies_s": round(bodies, 3),
        "bytes": sum(len(m) for m in messages),
    }))


if __name__ == "__main__":
    main()
