#!/usr/bin/env python3
"""Submits COUNT messages of SIZE bytes over CONNECTIONS concurrent SMTP connections
(Python's smtplib, STARTTLS with the server's certificate checked against --ca) and
prints one JSON line: how many were accepted, and the seconds from the first
connection to the last 250. Each connection sends its share of the messages as
consecutive transactions, as a mail client flushing its outbox does. Used by
bench/smtp_throughput.sh for the gateway and for the Postfix peer alike."""

import argparse
import json
import smtplib
import ssl
import threading
import time


def message(size, subject):
    """An RFC 5322 message of about SIZE bytes: a few headers and 76-column text lines."""
    head = f"From: Alice <alice@example.org>\r\nTo: Bob <bob@example.org>\r\nSubject: {subject}\r\n\r\n"
    line = ("benchmark text " * 6)[:76] + "\r\n"
    lines = max(1, (size - len(head)) // len(line))
    return (head + line * lines).encode()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--ca", required=True)
    p.add_argument("--user")
    p.add_argument("--password")
    p.add_argument("--to", default="bob@example.org")
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--connections", type=int, default=1)
    p.add_argument("--size", type=int, required=True)
    args = p.parse_args()

    context = ssl.create_default_context(cafile=args.ca)
    accepted = [0] * args.connections
    errors = []

    def worker(index):
        share = args.count // args.connections + (1 if index < args.count % args.connections else 0)
        try:
            with smtplib.SMTP("localhost", args.port, timeout=120) as smtp:
                smtp.starttls(context=context)
                if args.user:
                    smtp.login(args.user, args.password)
                for n in range(share):
                    smtp.sendmail("alice@example.org", [args.to], message(args.size, f"bench {index}-{n}"))
                    accepted[index] += 1
        except (smtplib.SMTPException, OSError) as e:
            errors.append(f"connection {index}: {e}")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(args.connections)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.monotonic() - started
    print(json.dumps({"accepted": sum(accepted), "seconds": seconds, "errors": errors}))


if __name__ == "__main__":
    main()
