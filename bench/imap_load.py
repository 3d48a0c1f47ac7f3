#!/usr/bin/env python3
"""IMAP load against any IMAP server over TLS (bench/imap_load.sh runs it against
smimp-gateway and Dovecot in the same run). Two measurements, one JSON line each:

  append  COUNT APPENDs of a 4 KB message to INBOX over one connection, one after the
          other as a client uploading mail does: latency p50/p99 and APPENDs/s.
  mixed   CLIENTS concurrent clients for SECONDS, each looping as a stress tester does:
          LOGIN, SELECT INBOX, FETCH of a few messages' flags, envelope and header,
          STORE of a flag, APPEND, STORE \\Deleted on its own message, EXPUNGE, LOGOUT.
          Counts commands completed and protocol errors (any NO or BAD, any exception).
The loops are bounded in count (append) and time (mixed)."""

import argparse
import imaplib
import json
import socket
import ssl
import statistics
import threading
import time

BODY = ("A line of a realistic message body, about seventy characters long here.\r\n" * 55)


def message(subject):
    head = f"From: Alice <alice@example.org>\r\nTo: Bob <bob@example.org>\r\nSubject: {subject}\r\n\r\n"
    return (head + BODY).encode()[:4096]


class NoDelay(imaplib.IMAP4_SSL):
    """imaplib with TCP_NODELAY, as most mail clients set it: imaplib writes a literal
    and its closing CRLF separately, and without it Nagle's algorithm holds the CRLF
    until the server's delayed acknowledgement (about 40 ms on Linux)."""

    def _create_socket(self, timeout):
        sock = super()._create_socket(timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock


def connect(args):
    ctx = ssl.create_default_context(cafile=args.ca)
    kind = NoDelay if args.nodelay else imaplib.IMAP4_SSL
    imap = kind("localhost", args.port, ssl_context=ctx, timeout=60)
    imap.login(args.user, args.password)
    return imap


def append(args):
    imap = connect(args)
    latencies = []
    started = time.perf_counter()
    for n in range(args.count):
        t = time.perf_counter()
        typ, data = imap.append("INBOX", None, None, message(f"append {n}"))
        latencies.append(time.perf_counter() - t)
        if typ != "OK":
            raise SystemExit(f"APPEND {n} refused: {data}")
    total = time.perf_counter() - started
    imap.logout()
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    return {"appends": args.count, "seconds": total, "per_second": args.count / total,
            "p50_ms": statistics.median(latencies) * 1000, "p99_ms": p99 * 1000}


def one_round(args, index, counts):
    """One loop of the mixed load; returns the number of commands that completed OK."""
    done = 0
    imap = connect(args)
    done += 1
    typ, data = imap.select("INBOX")
    ok = typ == "OK"
    done += ok
    exists = int(data[0]) if ok else 0
    if exists:
        low = max(1, exists - 4)
        for command in ((f"{low}:{exists}", "(FLAGS ENVELOPE)"),
                        (f"{exists}", "(BODY.PEEK[HEADER.FIELDS (From Subject Date)])")):
            typ, data = imap.fetch(*command)
            done += check(typ, counts, "FETCH", data)
        typ, _ = imap.store(f"{low}", "+FLAGS", "(\\Seen)")
        done += check(typ, counts, "STORE")
    typ, data = imap.append("INBOX", None, None, message(f"mixed {index}"))
    done += check(typ, counts, "APPEND")
    typ, data = imap.uid("SEARCH", None, "SUBJECT", f'"mixed {index}"')
    done += check(typ, counts, "SEARCH")
    uids = data[0].split() if typ == "OK" and data[0] else []
    if uids:
        typ, _ = imap.uid("STORE", uids[-1].decode(), "+FLAGS", "(\\Deleted)")
        done += check(typ, counts, "STORE")
        typ, _ = imap.expunge()
        done += check(typ, counts, "EXPUNGE")
    typ, _ = imap.logout()
    done += typ == "BYE"
    return done


def check(typ, counts, what, data=None):
    if typ != "OK":
        counts["errors"] += 1
        counts["error_kinds"][what] = counts["error_kinds"].get(what, 0) + 1
        counts.setdefault("examples", []).append(f"{what}: {data!r}"[:200])
        return 0
    return 1


def mixed(args):
    counts = {"commands": 0, "rounds": 0, "errors": 0, "error_kinds": {}}
    lock = threading.Lock()
    deadline = time.perf_counter() + args.seconds

    def client(index):
        while time.perf_counter() < deadline:
            local = {"errors": 0, "error_kinds": {}}
            try:
                done = one_round(args, f"{index}-{counts['rounds']}", local)
            except Exception as e:  # a dropped connection or a BAD is a protocol error
                done, local["errors"] = 0, local["errors"] + 1
                local["error_kinds"][type(e).__name__] = 1
                local.setdefault("examples", []).append(repr(e)[:200])
            with lock:
                counts["commands"] += done
                counts["rounds"] += 1
                counts["errors"] += local["errors"]
                for k, v in local["error_kinds"].items():
                    counts["error_kinds"][k] = counts["error_kinds"].get(k, 0) + v
                counts.setdefault("examples", []).extend(local.get("examples", [])[:3])

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    counts.update(seconds=elapsed, per_second=counts["commands"] / elapsed, clients=args.clients)
    return counts


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=("append", "mixed"))
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--ca", required=True)
    p.add_argument("--user", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--count", type=int, default=1000)
    p.add_argument("--clients", type=int, default=5)
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--nodelay", action="store_true", help="set TCP_NODELAY on the client's socket")
    args = p.parse_args()
    print(json.dumps(append(args) if args.mode == "append" else mixed(args)))


if __name__ == "__main__":
    main()
