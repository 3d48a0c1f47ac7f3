"""Content hashes of a message, for the client scripts in tests/clients/ (run, not
imported): what a reader sees of it, independent of how the gateway re-encodes it on
the way (transfer encoding, line breaks, header order, MIME boundaries).

    python3 mailhash.py FILE...   one line per part of each FILE, in order:
        text SHA256           a text/plain part: decoded, CRLF as LF, trailing newlines dropped
        attachment NAME SHA256  an attachment: its decoded bytes
        whole SHA256          with --whole: the file's bytes, CRLF as LF, without the lines
                              the gateway adds above a message the account stored itself
                              (the X-SMIMP-Verified notice) and without a trailing newline

    python3 mailhash.py --make FROM TO SUBJECT   writes to stdout (CRLF line ends) a
        message with a text body and a 6 KB binary attachment, both derived from SUBJECT

The script compares these lines for what it sent and what came back."""

import email
import email.policy
import hashlib
import sys


def sha(data):
    return hashlib.sha256(data).hexdigest()


def parts(raw):
    message = email.message_from_bytes(raw, policy=email.policy.default)
    for part in message.walk():
        if part.is_multipart():
            continue
        name = part.get_filename()
        if name:
            yield f"attachment {name} {sha(part.get_payload(decode=True))}"
        elif part.get_content_type() == "text/plain":
            text = part.get_content().replace("\r\n", "\n").rstrip("\n")
            yield f"text {sha(text.encode())}"


def whole(raw):
    raw = raw.replace(b"\r\n", b"\n")
    lines = raw.split(b"\n")
    # The notice the gateway puts above mail the account stored itself, with its folded lines.
    if lines and lines[0].startswith(b"X-SMIMP-Verified: none"):
        lines = lines[1:]
        while lines and lines[0][:1] in (b" ", b"\t"):
            lines = lines[1:]
    body = b"\n".join(lines).rstrip(b"\n")
    return "whole " + sha(body)


def make(sender, to, subject):
    from email.message import EmailMessage

    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = sender, to, subject
    message.set_content(f"{subject}: this body went through SMIMP sealed.\nSecond line, ending here.\n")
    data = b"".join(hashlib.sha256(f"{subject} {i}".encode()).digest() for i in range(192))
    message.add_attachment(data, maintype="application", subtype="octet-stream", filename="data.bin")
    sys.stdout.buffer.write(message.as_bytes(policy=email.policy.SMTP))


def main():
    args = sys.argv[1:]
    if args[:1] == ["--make"]:
        make(*args[1:4])
        return
    with_whole = "--whole" in args
    for path in (a for a in args if a != "--whole"):
        with open(path, "rb") as f:
            raw = f.read()
        for line in parts(raw):
            print(line)
        if with_whole:
            print(whole(raw))


main()
