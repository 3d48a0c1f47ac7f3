#!/usr/bin/env python3
"""Reads every .eml in fixtures/mail/ (or the directory given) with Python's standard
`email` package — a parser independent of the one under test — and prints, as one JSON
object keyed by file name, the fields a golden result must agree with: From (name and
address), To, Cc, Subject, Message-ID, In-Reply-To, References and the text/plain body.

tests/mail_goldens.rs compares this output with the golden files; run it by hand to
review a golden:
    python3 tools/mail_fields.py fixtures/mail
"""

import email
import email.policy
import email.utils
import json
import pathlib
import sys


def ids(value):
    """Message-IDs in a header, without their angle brackets, in order."""
    if value is None:
        return []
    return [part.strip("<>") for part in str(value).split() if part.startswith("<")]


def addresses(message, header):
    return [addr.lower() for _, addr in email.utils.getaddresses(message.get_all(header, []))]


def text_body(message):
    """The first text/plain part that is not an attachment, decoded, with LF line ends."""
    for part in message.walk():
        if part.get_content_type() == "text/plain" and part.get_content_disposition() != "attachment":
            return part.get_content().replace("\r\n", "\n")
    return None


def fields(path):
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    name, address = email.utils.parseaddr(str(message["From"]))
    return {
        "from": address.lower(),
        "from_name": name or None,
        "to": addresses(message, "To"),
        "cc": addresses(message, "Cc"),
        "subject": str(message["Subject"]) if message["Subject"] is not None else None,
        "message_id": (ids(message["Message-ID"]) or [None])[0],
        "in_reply_to": ids(message["In-Reply-To"]),
        "references": ids(message["References"]),
        "body": text_body(message),
    }


def main():
    directory = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "fixtures/mail")
    emls = sorted(directory.glob("*.eml"))
    if not emls:
        sys.exit(f"no .eml files in {directory}")
    print(json.dumps({path.stem: fields(path) for path in emls}, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
