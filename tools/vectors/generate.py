#!/usr/bin/env python3
"""SMIMP v0.1 crypto test vectors, made and checked by libsodium itself (PyNaCl).

    python3 tools/vectors/generate.py           write fixtures/vectors/libsodium.json
    python3 tools/vectors/generate.py --check   regenerate in memory and compare with the
                                                committed file, self-test it, then verify
                                                fixtures/vectors/rust.json with libsodium

Every construction follows docs/protocol.md sections 1-7 and is written here
independently of the Rust code. All cryptography goes through PyNaCl's libsodium
bindings. Seeds, nonces and timestamps are fixed, so re-running reproduces the
committed file byte for byte.

On first use the script creates tools/vectors/.venv, installs the pinned
tools/vectors/requirements.txt into it and re-executes itself there.
"""

import argparse
import base64
import binascii
import difflib
import json
import os
import re
import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
VENV = HERE / ".venv"
REQUIREMENTS = HERE / "requirements.txt"
LIBSODIUM_JSON = ROOT / "fixtures" / "vectors" / "libsodium.json"
RUST_JSON = ROOT / "fixtures" / "vectors" / "rust.json"
GENERATOR = "tools/vectors/generate.py"
REEXEC_GUARD = "SMIMP_VECTORS_IN_VENV"


# ---------------------------------------------------------------------------
# Virtual environment bootstrap (standard library only)
# ---------------------------------------------------------------------------

def _running_in_venv():
    try:
        return Path(sys.prefix).resolve() == VENV.resolve()
    except OSError:
        return False


def bootstrap():
    """Make sure we run inside tools/vectors/.venv with the pinned PyNaCl."""
    if _running_in_venv():
        return
    if os.environ.get(REEXEC_GUARD) == "1":
        sys.exit(f"generate.py: re-executed, but not inside {VENV}")
    python = VENV / "bin" / "python"
    if not python.exists():
        print("generate.py: creating tools/vectors/.venv", file=sys.stderr)
        result = subprocess.run([sys.executable, "-m", "venv", str(VENV)])
        if result.returncode != 0 or not python.exists():
            shutil.rmtree(VENV, ignore_errors=True)
            sys.exit("generate.py: `python3 -m venv` failed; on Debian install "
                     "python3-venv (apt-get install python3-venv)")
    stamp = VENV / ".installed-requirements.txt"
    wanted = REQUIREMENTS.read_text()
    if not stamp.exists() or stamp.read_text() != wanted:
        print("generate.py: installing tools/vectors/requirements.txt", file=sys.stderr)
        result = subprocess.run([str(python), "-m", "pip", "install", "--quiet",
                                 "--disable-pip-version-check", "-r", str(REQUIREMENTS)])
        if result.returncode != 0:
            sys.exit("generate.py: pip install -r tools/vectors/requirements.txt failed "
                     "(delete tools/vectors/.venv and retry if it is broken)")
        stamp.write_text(wanted)
    env = dict(os.environ)
    env[REEXEC_GUARD] = "1"
    os.execve(str(python), [str(python), str(Path(__file__).resolve()), *sys.argv[1:]], env)


# Filled by load_nacl() once we are inside the venv.
B = None
NACL_VERSION = None
BadSignatureError = None
CryptoError = None


def load_nacl():
    global B, NACL_VERSION, BadSignatureError, CryptoError
    import nacl
    import nacl.bindings
    import nacl.exceptions
    B = nacl.bindings
    NACL_VERSION = nacl.__version__
    BadSignatureError = nacl.exceptions.BadSignatureError
    CryptoError = nacl.exceptions.CryptoError


# PyNaCl does not bind sodium_version_string(); its changelog names the bundled copy.
BUNDLED_LIBSODIUM = {"1.6.2": "1.0.20-stable"}


def libsodium_version():
    try:
        from nacl._sodium import ffi, lib
        if hasattr(lib, "sodium_version_string"):
            return ffi.string(lib.sodium_version_string()).decode()
    except Exception:  # pragma: no cover - depends on the binding
        pass
    bundled = BUNDLED_LIBSODIUM.get(NACL_VERSION)
    if bundled:
        return f"{bundled} (bundled in PyNaCl {NACL_VERSION})"
    return f"PyNaCl {NACL_VERSION}"


# ---------------------------------------------------------------------------
# Primitives (docs/protocol.md section 2) and transcripts (section 3)
# ---------------------------------------------------------------------------

def H(data):
    """BLAKE2b, unkeyed, 32-byte output: crypto_generichash(out, 32, data, NULL, 0)."""
    return B.crypto_generichash_blake2b_salt_personal(data, digest_size=32)


def lp(x):
    return len(x).to_bytes(8, "big") + x


def transcript(label, *fields):
    return lp(label.encode("utf-8")) + b"".join(lp(f) for f in fields)


def th(label, *fields):
    return H(transcript(label, *fields))


def keypair(seed):
    """(ed25519 public, 64-byte libsodium secret key) from a 32-byte seed."""
    return B.crypto_sign_seed_keypair(seed)


def public_of(seed):
    return keypair(seed)[0]


def sign(secret_key, message):
    """Detached Ed25519 signature: the first 64 bytes of crypto_sign's output."""
    return B.crypto_sign(message, secret_key)[:64]


def verify(public_key, message, signature):
    if len(signature) != 64 or len(public_key) != 32:
        return False
    try:
        return B.crypto_sign_open(signature + message, public_key) == message
    except (BadSignatureError, CryptoError, ValueError, TypeError):
        return False


def pk_to_curve(public_key):
    return B.crypto_sign_ed25519_pk_to_curve25519(public_key)


def sk_to_curve(secret_key):
    return B.crypto_sign_ed25519_sk_to_curve25519(secret_key)


def scalarmult_base(secret):
    return B.crypto_scalarmult_base(secret)


def box(plaintext, nonce, public_key, secret_key):
    """crypto_box_easy: 16-byte MAC || encrypted bytes."""
    return B.crypto_box(plaintext, nonce, public_key, secret_key)


def box_open(ciphertext, nonce, public_key, secret_key):
    return B.crypto_box_open(ciphertext, nonce, public_key, secret_key)


def secretbox(plaintext, nonce, key):
    return B.crypto_secretbox(plaintext, nonce, key)


def secretbox_open(ciphertext, nonce, key):
    return B.crypto_secretbox_open(ciphertext, nonce, key)


# Labels (docs/protocol.md section 3).
L_PROFILE = "SMIMP-v0.1/profile-record"
L_MESSAGE_KEY = "SMIMP-v0.1/message-key"
L_SESSION = "SMIMP-v0.1/create-session"
L_LOGIN_TOKEN = "SMIMP-v0.1/login-token"
L_MESSAGE_FIELD = "SMIMP-v0.1/message-field"
L_MESSAGE_HASH = "SMIMP-v0.1/message-hash"
L_AVATAR = "SMIMP-v0.1/avatar"
L_LIST_ENTRY = "SMIMP-v0.1/list-entry"
L_INIT_PASSWORD = "SMIMP-v0.1/init-password"
L_POW = "SMIMP-v0.1/pow"
L_DEVICE_REQUEST = "SMIMP-v0.1/x-device-request"
L_DEVICE_WITNESS = "SMIMP-v0.1/x-device-witness"
L_DEVICE_APPROVAL = "SMIMP-v0.1/x-device-approval"
L_DEVICE_PIN = "SMIMP-v0.1/x-device-pin"

ALGORITHM = "curve25519xsalsa20poly1305"


def message_key_hash(address, kind, public_key):
    return th(L_MESSAGE_KEY, address.encode("utf-8"), kind.encode("utf-8"), public_key)


def profile_hash(data_text):
    return th(L_PROFILE, data_text.encode("utf-8"))


def login_hash(server_domain, address, token):
    """What a login signs: the server's domain as the client discovered it, the
    address and the token (docs/protocol.md section 3, section 9)."""
    return th(L_SESSION, server_domain.encode("utf-8"), address.encode("utf-8"), token)


def login_token_hash(token):
    return th(L_LOGIN_TOKEN, token)


def message_field_hash(ciphertext):
    return th(L_MESSAGE_FIELD, ciphertext)


def message_hash(sender, recipient, message_type, algorithm, message_public_key, nonce,
                 field_hash, proof_of_work, token_hash):
    return th(L_MESSAGE_HASH, sender.encode("utf-8"), recipient.encode("utf-8"),
              message_type.encode("utf-8"), algorithm.encode("utf-8"), message_public_key,
              nonce, field_hash, (proof_of_work or "").encode("utf-8"), token_hash)


# Proof of work (docs/protocol.md section 3.1).

def pow_prefix(token_hash, field_hash, recipient, message_type, pow_nonce):
    fixed = transcript(L_POW, token_hash, field_hash, recipient.encode("utf-8"),
                       message_type.encode("utf-8"), pow_nonce)
    return fixed + b"\x00" * ((128 - len(fixed) % 128) % 128)


def has_zero_bits(digest, zero_bits):
    for i in range(zero_bits):
        if (digest[i // 8] >> (7 - i % 8)) & 1:
            return False
    return True


def next_value(value):
    """Increment the last 8 bytes as a big-endian u64 (wrapping); first 24 unchanged."""
    low = (int.from_bytes(value[24:], "big") + 1) % (1 << 64)
    return value[:24] + low.to_bytes(8, "big")


def solve_pow(prefix, zero_bits, start_value, max_attempts=None):
    """Returns (value, hash, attempts) of the first solution from start_value."""
    value = start_value
    attempts = 0
    while max_attempts is None or attempts < max_attempts:
        attempts += 1
        digest = H(prefix + value)
        if has_zero_bits(digest, zero_bits):
            return value, digest, attempts
        value = next_value(value)
    return None


def pow_solution(digest, value, pow_nonce):
    return f"{digest.hex()}:{value.hex()}:{pow_nonce.hex()}"


# ---------------------------------------------------------------------------
# Fixed inputs
# ---------------------------------------------------------------------------

def material(name, n):
    """Arbitrary but fixed bytes, named so the file explains itself."""
    out = b""
    counter = 0
    while len(out) < n:
        out += H(b"smimp-gateway test vector material/" + name.encode("utf-8") + b"/"
                 + counter.to_bytes(4, "big"))
        counter += 1
    return out[:n]


def compact(obj):
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


ALICE = "alice#example.org"
BOB = "bob#example.org"
CAROL = "carol#example.org"

# Master seeds of the two users; set by init_seeds() once libsodium is loaded.
ALICE_SEED_1 = ALICE_SEED_2 = BOB_SEED = None


def init_seeds():
    global ALICE_SEED_1, ALICE_SEED_2, BOB_SEED
    ALICE_SEED_1 = material("alice master seed 1", 32)
    ALICE_SEED_2 = material("alice master seed 2", 32)
    BOB_SEED = material("bob master seed", 32)


# ---------------------------------------------------------------------------
# Generation
# ---------------------------------------------------------------------------

def gen_keypairs():
    seeds = [bytes(range(32)), b"\x01" * 32, b"\xff" * 32, b"\x00" * 32,
             material("keypair seed a", 32), material("keypair seed b", 32),
             ALICE_SEED_1, ALICE_SEED_2, BOB_SEED]
    out = []
    for seed in seeds:
        pk, sk = keypair(seed)
        out.append({"seed": seed.hex(), "ed25519_public": pk.hex(),
                    "curve25519_public": pk_to_curve(pk).hex(),
                    "curve25519_secret": sk_to_curve(sk).hex()})
    return out


def gen_signatures():
    messages = [b"", b"abc", material("signature message 1000", 1000),
                th(L_INIT_PASSWORD, b"hunter2"), "Grüße, Bob".encode("utf-8"),
                login_hash("example.org", ALICE, material("signature session token", 32))]
    out = []
    for seed in (bytes(range(32)), ALICE_SEED_1, b"\xff" * 32):
        sk = keypair(seed)[1]
        for message in messages:
            out.append({"seed": seed.hex(), "message": message.hex(),
                        "signature": sign(sk, message).hex()})
    return out


def gen_blake2b():
    inputs = [b"", b"abc", material("blake2b 127", 127), material("blake2b 128", 128),
              material("blake2b 129", 129), material("blake2b 200", 200),
              material("blake2b 256", 256), material("blake2b 1000", 1000)]
    return [{"input": x.hex(), "hash": H(x).hex()} for x in inputs]


def gen_transcripts():
    cases = [
        ("SMIMP-v0.1/test-no-fields", []),
        (L_LIST_ENTRY, [b""]),
        (L_LIST_ENTRY, [b"example.org"]),
        (L_LOGIN_TOKEN, [material("transcript login token", 32)]),
        (L_SESSION, [b"example.org", ALICE.encode(), material("transcript session token", 32)]),
        (L_SESSION, [b"example.net", ALICE.encode(), material("transcript session token", 32)]),
        (L_INIT_PASSWORD, ["pässwörd ✓".encode("utf-8")]),
        (L_MESSAGE_KEY, [BOB.encode(), b"nonephemeral", material("transcript message key", 32)]),
        (L_AVATAR, [ALICE.encode(), material("transcript avatar image", 300)]),
        (L_MESSAGE_HASH, [ALICE.encode(), BOB.encode(), b"short-message", ALGORITHM.encode(),
                          material("transcript mpk", 32), material("transcript nonce", 24),
                          material("transcript mfh", 32), b"", material("transcript lth", 32)]),
    ]
    out = []
    for label, fields in cases:
        t = transcript(label, *fields)
        out.append({"label": label, "fields": [f.hex() for f in fields],
                    "bytes": t.hex(), "hash": H(t).hex()})
    return out


def gen_boxes():
    out = []
    cases = [
        (material("box sender secret 1", 32), material("box recipient secret 1", 32),
         material("box nonce 1", 24), b""),
        (material("box sender secret 1", 32), material("box recipient secret 1", 32),
         material("box nonce 2", 24), b"hello, bob"),
        (material("box sender secret 2", 32), material("box recipient secret 2", 32),
         material("box nonce 3", 24), material("box plaintext 1000", 1000)),
        # A sender secret converted from an Ed25519 master key, as in section 3.2.
        (sk_to_curve(keypair(ALICE_SEED_1)[1]), material("box recipient secret 3", 32),
         material("box nonce 4", 24), compact({"message": "Grüße", "attachments": []}).encode()),
    ]
    for sender_sk, recipient_sk, nonce, plaintext in cases:
        sender_pk = scalarmult_base(sender_sk)
        recipient_pk = scalarmult_base(recipient_sk)
        out.append({"sender_secret": sender_sk.hex(), "sender_public": sender_pk.hex(),
                    "recipient_secret": recipient_sk.hex(), "recipient_public": recipient_pk.hex(),
                    "nonce": nonce.hex(), "plaintext": plaintext.hex(),
                    "ciphertext": box(plaintext, nonce, recipient_pk, sender_sk).hex()})
    return out


def gen_secretboxes():
    cases = [
        (material("secretbox key 1", 32), material("secretbox nonce 1", 24), b""),
        (material("secretbox key 1", 32), material("secretbox nonce 2", 24), b"abc"),
        (material("secretbox key 2", 32), material("secretbox nonce 3", 24),
         material("secretbox plaintext 1000", 1000)),
    ]
    return [{"key": k.hex(), "nonce": n.hex(), "plaintext": p.hex(),
             "ciphertext": secretbox(p, n, k).hex()} for k, n, p in cases]


def gen_profile_history():
    pk1, sk1 = keypair(ALICE_SEED_1)
    pk2, _ = keypair(ALICE_SEED_2)
    records = [
        ({"address": ALICE, "public_key": pk1.hex(), "previous_signed_hash": None,
          "name": "Alice", "website": None, "profiles": [], "additional_data": None,
          "changed_at": "2026-11-01 10:00:00"}, sk1),
        ({"address": ALICE, "public_key": pk1.hex(), "previous_signed_hash": None,
          "name": "Alice Müller", "website": "https://alice.example.org/",
          "profiles": ["https://social.example.org/@alice", "https://code.example.org/alice"],
          "additional_data": {"pronouns": "she/her"}, "changed_at": "2026-11-02 09:30:00"}, sk1),
        # Rotation to the second master key, signed by the previous (first) key.
        ({"address": ALICE, "public_key": pk2.hex(), "previous_signed_hash": None,
          "name": "Alice Müller", "website": "https://alice.example.org/",
          "profiles": ["https://social.example.org/@alice", "https://code.example.org/alice"],
          "additional_data": {"pronouns": "she/her"}, "changed_at": "2026-11-03 08:15:00"}, sk1),
    ]
    history = []
    previous = None
    for obj, signer in records:
        obj = dict(obj)
        obj["previous_signed_hash"] = previous
        data = compact(obj)
        signed = sign(signer, profile_hash(data)).hex()
        history.append({"data": data, "signed_hash": signed})
        previous = signed
    return {"address": ALICE, "seeds": [ALICE_SEED_1.hex(), ALICE_SEED_2.hex()],
            "history": history}


def make_message_key(owner_seed, address, kind, secret):
    public = scalarmult_base(secret)
    signature = sign(keypair(owner_seed)[1], message_key_hash(address, kind, public))
    return {"public_key": public.hex(), "kind": kind, "signature": signature.hex()}


def gen_message_keys():
    cases = [(ALICE_SEED_2, ALICE, "ephemeral", material("alice message secret ephemeral", 32)),
             (ALICE_SEED_2, ALICE, "nonephemeral", material("alice message secret nonephemeral", 32)),
             (BOB_SEED, BOB, "ephemeral", material("bob message secret ephemeral", 32)),
             (BOB_SEED, BOB, "nonephemeral", material("bob message secret nonephemeral", 32))]
    return [{"owner_seed": seed.hex(), "address": address, "kind": kind, "secret": secret.hex(),
             "document": make_message_key(seed, address, kind, secret)}
            for seed, address, kind, secret in cases]


def gen_pow():
    zero_bits = 14
    token_hash = login_token_hash(material("pow login token", 32))
    field_hash = message_field_hash(material("pow ciphertext", 200))
    pow_nonce = material("pow nonce", 32)
    # The low u64 starts near its maximum, so the search wraps it to zero on the way.
    start_value = material("pow start value", 24) + bytes.fromhex("ffffffffffffff00")
    prefix = pow_prefix(token_hash, field_hash, BOB, "email", pow_nonce)
    value, digest, attempts = solve_pow(prefix, zero_bits, start_value)
    return {"zero_bits": zero_bits, "login_token_hash": token_hash.hex(),
            "message_field_hash": field_hash.hex(), "recipient": BOB, "message_type": "email",
            "nonce": pow_nonce.hex(), "start_value": start_value.hex(), "attempts": attempts,
            "value": value.hex(), "hash": digest.hex(),
            "solution": pow_solution(digest, value, pow_nonce)}


def gen_envelope():
    sender_pk, sender_sk = keypair(ALICE_SEED_2)
    message_secret = material("envelope bob message secret", 32)
    message_key = make_message_key(BOB_SEED, BOB, "ephemeral", message_secret)
    message_public_key = bytes.fromhex(message_key["public_key"])
    attachment = "Q3 figures\nrevenue: 42\n".encode("utf-8")
    payload = compact({
        "to": [BOB, CAROL],
        "cc": [],
        "subject": "Quarterly report – draft",
        "thread_id": material("envelope thread id", 32).hex(),
        "reply_to_message_id": None,
        "date_sent": "2026-11-04 12:00:00",
        "body": "Hi Bob,\n\nthe **draft** is attached.\n\n- figures\n- notes",
        "signature_text": "Alice",
        "attachments": [{"filename": "report.txt", "content_type": "text/plain",
                         "content": base64.b64encode(attachment).decode("ascii"),
                         "content_id": None, "inline": False}],
        "extensions_data": None,
        "reply_to": None,
        "auto_reply_address": None,
    })
    nonce = material("envelope box nonce", 24)
    ciphertext = box(payload.encode("utf-8"), nonce, message_public_key, sk_to_curve(sender_sk))
    login_token = material("envelope login token", 32)
    token_hash = login_token_hash(login_token)
    field_hash = message_field_hash(ciphertext)
    zero_bits = 8
    pow_nonce = material("envelope pow nonce", 32)
    pow_start = material("envelope pow start value", 32)
    prefix = pow_prefix(token_hash, field_hash, BOB, "email", pow_nonce)
    value, digest, _ = solve_pow(prefix, zero_bits, pow_start)
    proof = pow_solution(digest, value, pow_nonce)
    mhash = message_hash(ALICE, BOB, "email", ALGORITHM, message_public_key, nonce, field_hash,
                         proof, token_hash)
    return {
        "sender_seed": ALICE_SEED_2.hex(), "sender_address": ALICE,
        "recipient_seed": BOB_SEED.hex(), "recipient_address": BOB,
        "message_secret": message_secret.hex(), "message_key": message_key,
        "payload": payload, "login_token": login_token.hex(), "zero_bits": zero_bits,
        "pow_nonce": pow_nonce.hex(), "pow_start_value": pow_start.hex(),
        "sent": {
            "message": base64.b64encode(ciphertext).decode("ascii"),
            "message_type": "email",
            "algorithm": ALGORITHM,
            "message_public_key": message_public_key.hex(),
            "nonce": nonce.hex(),
            "proof_of_work": proof,
            "message_hash": mhash.hex(),
            "message_signature": sign(sender_sk, mhash).hex(),
        },
    }


# Devices (docs/protocol.md section 12, extension x-devices).
def device_request_hash(address, name, sign_key, box_key, server_nonce):
    return th(L_DEVICE_REQUEST, address.encode("utf-8"), name.encode("utf-8"), sign_key, box_key, server_nonce)


def device_witness(address, name, sign_key, box_key, server_nonce):
    digest = th(L_DEVICE_WITNESS, address.encode("utf-8"), name.encode("utf-8"), sign_key, box_key, server_nonce)
    text = base64.b32encode(digest[:10]).decode("ascii")
    return "-".join(text[i:i + 4] for i in range(0, len(text), 4))


def device_pin_proof(pin, request_hash):
    key = th(L_DEVICE_PIN, pin.replace("-", "").replace(" ", "").upper().encode("utf-8"))
    return B.crypto_generichash_blake2b_salt_personal(request_hash, digest_size=32, key=key)


def device_approval_hash(address, request_id, name, sign_key, box_key, server_nonce, sealed):
    return th(L_DEVICE_APPROVAL, address.encode("utf-8"), request_id, name.encode("utf-8"), sign_key, box_key,
              server_nonce, bytes.fromhex(sealed["ephemeral_key"]), bytes.fromhex(sealed["nonce"]),
              H(base64.b64decode(sealed["ciphertext"])), sealed["issued_at"].to_bytes(8, "big"),
              bytes.fromhex(sealed["master_key"]))


def gen_device():
    address, name = "dana#example.org", "dana's laptop"
    sign_seed = material("device sign seed", 32)
    box_secret = material("device box secret", 32)
    sign_key, box_key = public_of(sign_seed), scalarmult_base(box_secret)
    server_nonce = material("device server nonce", 32)
    request_id = material("device request id", 32)
    rhash = device_request_hash(address, name, sign_key, box_key, server_nonce)
    pin = "WXYZ-2345-ABCD-6789"
    master_seed = material("device master seed", 32)
    master_pk, master_sk = keypair(master_seed)
    plaintext = compact({
        "master_seed": master_seed.hex(), "previous_master_seeds": [],
        "message_keys": [{"secret": material("device message key", 32).hex(), "kind": "ephemeral",
                          "created_at": 1796000000, "retired_at": None}],
        "storage_key": material("device storage key", 32).hex(),
        "devices": [{"name": name, "keys": {"sign_key": sign_key.hex(), "box_key": box_key.hex()},
                     "enrolled_at": 1796000000, "enrolled_by": "desk"}]})
    ephemeral_secret = material("device ephemeral secret", 32)
    box_nonce = material("device box nonce", 24)
    ciphertext = box(plaintext.encode("utf-8"), box_nonce, box_key, ephemeral_secret)
    sealed = {"ephemeral_key": scalarmult_base(ephemeral_secret).hex(), "nonce": box_nonce.hex(),
              "ciphertext": base64.b64encode(ciphertext).decode("ascii"), "issued_at": 1796000000,
              "master_key": master_pk.hex()}
    ahash = device_approval_hash(address, request_id, name, sign_key, box_key, server_nonce, sealed)
    sealed["signature"] = sign(master_sk, ahash).hex()
    return {"address": address, "name": name, "sign_seed": sign_seed.hex(), "box_secret": box_secret.hex(),
            "device": {"sign_key": sign_key.hex(), "box_key": box_key.hex()}, "server_nonce": server_nonce.hex(),
            "request_hash": rhash.hex(), "witness": device_witness(address, name, sign_key, box_key, server_nonce),
            "pin": pin, "pin_proof": device_pin_proof(pin, rhash).hex(), "request_id": request_id.hex(),
            "master_seed": master_seed.hex(), "ephemeral_secret": ephemeral_secret.hex(), "plaintext": plaintext,
            "approval_hash": ahash.hex(), "approval": sealed}


def generate():
    return {
        "generator": GENERATOR,
        "libsodium_version": libsodium_version(),
        "keypairs": gen_keypairs(),
        "signatures": gen_signatures(),
        "blake2b": gen_blake2b(),
        "transcripts": gen_transcripts(),
        "boxes": gen_boxes(),
        "secretboxes": gen_secretboxes(),
        "profile_history": gen_profile_history(),
        "message_keys": gen_message_keys(),
        "pow": gen_pow(),
        "envelope": gen_envelope(),
        "device_approval": gen_device(),
    }


def render(doc):
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"


# ---------------------------------------------------------------------------
# Verification: recompute every entry with libsodium
# ---------------------------------------------------------------------------

HEX_RE = re.compile(r"^(?:[0-9a-f]{2})*$")
TIMESTAMP_RE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")


class Malformed(Exception):
    pass


def unhex(value, length=None, what="value"):
    """Lowercase hex of an exact length (section 1: encoders write lowercase)."""
    if not isinstance(value, str) or not HEX_RE.match(value):
        raise Malformed(f"{what} is not lowercase hex: {value!r:.80}")
    raw = bytes.fromhex(value)
    if length is not None and len(raw) != length:
        raise Malformed(f"{what} is {len(raw)} bytes, expected {length}")
    return raw


def unbase64(value, what="value"):
    if not isinstance(value, str):
        raise Malformed(f"{what} is not a string")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as e:
        raise Malformed(f"{what} is not standard base64: {e}")
    if base64.b64encode(raw).decode("ascii") != value:
        raise Malformed(f"{what} is not canonical padded base64")
    return raw


class Checker:
    def __init__(self):
        self.passed = 0
        self.failed = 0
        self._section_passed = 0
        self._section_failed = 0

    def check(self, where, what, ok, detail=""):
        if ok:
            self.passed += 1
            self._section_passed += 1
        else:
            self.failed += 1
            self._section_failed += 1
            print(f"  FAIL {where}: {what}" + (f" ({detail})" if detail else ""))
        return ok

    def run_section(self, source, name, fn, *args):
        self._section_passed = 0
        self._section_failed = 0
        try:
            fn(self, *args)
        except (Malformed, KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
            self.check(name, "section is malformed", False, f"{type(e).__name__}: {e}")
        status = "ok" if self._section_failed == 0 else f"{self._section_failed} FAILED"
        print(f"{source} {name}: {self._section_passed} checks passed, {status}")


def each(c, name, entries, fn):
    """Run fn(c, where, entry) for every entry; a malformed entry is one failed check."""
    if not isinstance(entries, list) or not entries:
        c.check(name, "is a non-empty list", False)
        return
    for i, entry in enumerate(entries):
        where = f"{name}[{i}]"
        try:
            fn(c, where, entry)
        except (Malformed, KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
            c.check(where, "entry is well-formed", False, f"{type(e).__name__}: {e}")


def v_keypair(c, where, e):
    seed = unhex(e["seed"], 32, "seed")
    pk, sk = keypair(seed)
    curve_pk = pk_to_curve(pk)
    curve_sk = sk_to_curve(sk)
    c.check(where, "ed25519_public", unhex(e["ed25519_public"], 32) == pk)
    c.check(where, "curve25519_public (pk_to_curve25519)", unhex(e["curve25519_public"], 32) == curve_pk)
    c.check(where, "curve25519_secret (sk_to_curve25519)", unhex(e["curve25519_secret"], 32) == curve_sk)
    c.check(where, "scalarmult_base(curve25519_secret) == curve25519_public",
            scalarmult_base(curve_sk) == curve_pk)


def v_signature(c, where, e):
    seed = unhex(e["seed"], 32, "seed")
    message = unhex(e["message"], None, "message")
    signature = unhex(e["signature"], 64, "signature")
    pk, sk = keypair(seed)
    c.check(where, "signature equals libsodium's", signature == sign(sk, message))
    c.check(where, "signature verifies", verify(pk, message, signature))


def v_blake2b(c, where, e):
    data = unhex(e["input"], None, "input")
    c.check(where, "hash", unhex(e["hash"], 32, "hash") == H(data))


def v_transcript(c, where, e):
    label = e["label"]
    if not isinstance(label, str) or not isinstance(e["fields"], list):
        raise Malformed("label must be a string and fields a list")
    fields = [unhex(f, None, "field") for f in e["fields"]]
    t = transcript(label, *fields)
    c.check(where, "bytes", unhex(e["bytes"], None, "bytes") == t)
    c.check(where, "hash", unhex(e["hash"], 32, "hash") == H(t))


def v_box(c, where, e):
    sender_sk = unhex(e["sender_secret"], 32)
    recipient_sk = unhex(e["recipient_secret"], 32)
    sender_pk = unhex(e["sender_public"], 32)
    recipient_pk = unhex(e["recipient_public"], 32)
    nonce = unhex(e["nonce"], 24, "nonce")
    plaintext = unhex(e["plaintext"], None, "plaintext")
    ciphertext = unhex(e["ciphertext"], None, "ciphertext")
    c.check(where, "sender_public == scalarmult_base(sender_secret)", scalarmult_base(sender_sk) == sender_pk)
    c.check(where, "recipient_public == scalarmult_base(recipient_secret)",
            scalarmult_base(recipient_sk) == recipient_pk)
    c.check(where, "ciphertext equals crypto_box", box(plaintext, nonce, recipient_pk, sender_sk) == ciphertext)
    try:
        opened = box_open(ciphertext, nonce, sender_pk, recipient_sk)
    except CryptoError:
        opened = None
    c.check(where, "crypto_box_open gives plaintext", opened == plaintext)


def v_secretbox(c, where, e):
    key = unhex(e["key"], 32, "key")
    nonce = unhex(e["nonce"], 24, "nonce")
    plaintext = unhex(e["plaintext"], None, "plaintext")
    ciphertext = unhex(e["ciphertext"], None, "ciphertext")
    c.check(where, "ciphertext equals crypto_secretbox", secretbox(plaintext, nonce, key) == ciphertext)
    try:
        opened = secretbox_open(ciphertext, nonce, key)
    except CryptoError:
        opened = None
    c.check(where, "crypto_secretbox_open gives plaintext", opened == plaintext)


PROFILE_FIELDS = {"address", "public_key", "previous_signed_hash", "name", "website",
                  "profiles", "additional_data", "changed_at"}
PROFILE_REQUIRED = {"address", "public_key", "previous_signed_hash", "changed_at"}


def v_profile_history(c, ph):
    name = "profile_history"
    address = ph["address"]
    seeds = [unhex(s, 32, "seed") for s in ph["seeds"]]
    secret_by_public = {}
    for seed in seeds:
        pk, sk = keypair(seed)
        secret_by_public[pk] = sk
    history = ph["history"]
    if not c.check(name, "history is a non-empty list", isinstance(history, list) and bool(history)):
        return
    previous_key = None
    previous_signed = None
    previous_changed = None
    keys = []
    for i, record in enumerate(history):
        where = f"{name}.history[{i}]"
        data = record["data"]
        signed = unhex(record["signed_hash"], 64, "signed_hash")
        try:
            obj = json.loads(data)
        except (TypeError, ValueError):
            obj = None
        well_formed = (isinstance(obj, dict) and set(obj) <= PROFILE_FIELDS
                       and PROFILE_REQUIRED <= set(obj)
                       and isinstance(obj.get("changed_at"), str)
                       and TIMESTAMP_RE.match(obj["changed_at"]) is not None)
        if not c.check(where, "data parses with known and required fields only", well_formed):
            return
        datetime.strptime(obj["changed_at"], "%Y-%m-%d %H:%M:%S")
        key = unhex(obj["public_key"], 32, "public_key")
        keys.append(key)
        c.check(where, "address is the history's address", obj["address"] == address)
        digest = profile_hash(data)
        if i == 0:
            c.check(where, "first record has previous_signed_hash null",
                    obj["previous_signed_hash"] is None)
            signer = key
        else:
            link = obj["previous_signed_hash"]
            c.check(where, "previous_signed_hash equals the previous signed_hash",
                    isinstance(link, str) and unhex(link, 64, "previous_signed_hash") == previous_signed)
            signer = previous_key
            c.check(where, "changed_at does not go backwards", obj["changed_at"] >= previous_changed)
        c.check(where, "signed_hash verifies under the signing key "
                       + ("(its own)" if i == 0 else "(the previous record's)"),
                verify(signer, digest, signed))
        signer_sk = secret_by_public.get(signer)
        c.check(where, "signing key comes from seeds and libsodium's signature is equal",
                signer_sk is not None and sign(signer_sk, digest) == signed)
        previous_key, previous_signed, previous_changed = key, signed, obj["changed_at"]
    c.check(name, "first record's key is seeds[0]", keys[0] == public_of(seeds[0]))
    c.check(name, "last record's key is the last seed (rotation)", keys[-1] == public_of(seeds[-1]))


def v_message_key(c, where, e):
    owner_pk = public_of(unhex(e["owner_seed"], 32, "owner_seed"))
    owner_sk = keypair(unhex(e["owner_seed"], 32))[1]
    secret = unhex(e["secret"], 32, "secret")
    doc = e["document"]
    public = unhex(doc["public_key"], 32, "document.public_key")
    signature = unhex(doc["signature"], 64, "document.signature")
    kind = doc["kind"]
    c.check(where, "kind is ephemeral or nonephemeral and matches",
            kind in ("ephemeral", "nonephemeral") and kind == e["kind"])
    c.check(where, "public_key == scalarmult_base(secret)", scalarmult_base(secret) == public)
    digest = message_key_hash(e["address"], kind, public)
    c.check(where, "signature verifies under the owner's key", verify(owner_pk, digest, signature))
    c.check(where, "signature equals libsodium's", sign(owner_sk, digest) == signature)


MAX_POW_RESEARCH = 1 << 20


def check_pow_search(c, where, prefix, zero_bits, start_value, value, attempts):
    """The solution is the first one found from start_value in the documented order."""
    if attempts is None:
        expected = start_value
    else:
        low = (int.from_bytes(start_value[24:], "big") + attempts - 1) % (1 << 64)
        expected = start_value[:24] + low.to_bytes(8, "big")
        c.check(where, "value == start_value advanced attempts-1 times (last 8 bytes, big-endian u64)",
                value == expected)
    if attempts is not None and (attempts < 1 or attempts > MAX_POW_RESEARCH):
        c.check(where, "attempts is plausible", False, f"attempts={attempts}")
        return
    found = solve_pow(prefix, zero_bits, start_value, attempts or MAX_POW_RESEARCH)
    ok = found is not None and found[0] == value
    if attempts is not None:
        ok = ok and found[2] == attempts
    c.check(where, "value is the first solution searching from start_value", ok)


def v_pow(c, p):
    where = "pow"
    zero_bits = p["zero_bits"]
    if not isinstance(zero_bits, int) or not 0 <= zero_bits <= 256:
        raise Malformed("zero_bits")
    token_hash = unhex(p["login_token_hash"], 32, "login_token_hash")
    field_hash = unhex(p["message_field_hash"], 32, "message_field_hash")
    pow_nonce = unhex(p["nonce"], 32, "nonce")
    start_value = unhex(p["start_value"], 32, "start_value")
    value = unhex(p["value"], 32, "value")
    digest = unhex(p["hash"], 32, "hash")
    attempts = p["attempts"]
    if not isinstance(attempts, int) or isinstance(attempts, bool):
        raise Malformed("attempts is not an integer")
    prefix = pow_prefix(token_hash, field_hash, p["recipient"], p["message_type"], pow_nonce)
    c.check(where, "fixed part is padded to whole 128-byte blocks", len(prefix) % 128 == 0)
    c.check(where, "hash == H(preimage)", H(prefix + value) == digest)
    c.check(where, f"{zero_bits} leading zero bits", has_zero_bits(digest, zero_bits))
    c.check(where, "solution is hash:value:nonce", p["solution"] == pow_solution(digest, value, pow_nonce))
    check_pow_search(c, where, prefix, zero_bits, start_value, value, attempts)


def v_envelope(c, env):
    where = "envelope"
    sender = env["sender_address"]
    recipient = env["recipient_address"]
    sender_pk = public_of(unhex(env["sender_seed"], 32, "sender_seed"))
    sender_sk = keypair(unhex(env["sender_seed"], 32))[1]
    recipient_pk, recipient_sk = keypair(unhex(env["recipient_seed"], 32, "recipient_seed"))
    message_secret = unhex(env["message_secret"], 32, "message_secret")
    mk = env["message_key"]
    sent = env["sent"]
    ciphertext = unbase64(sent["message"], "sent.message")
    message_type = sent["message_type"]
    algorithm = sent["algorithm"]
    mpk = unhex(sent["message_public_key"], 32, "sent.message_public_key")
    nonce = unhex(sent["nonce"], 24, "sent.nonce")
    proof = sent["proof_of_work"]
    mhash = unhex(sent["message_hash"], 32, "sent.message_hash")
    msig = unhex(sent["message_signature"], 64, "sent.message_signature")
    login_token = unhex(env["login_token"], 32, "login_token")
    zero_bits = env["zero_bits"]
    pow_nonce = unhex(env["pow_nonce"], 32, "pow_nonce")
    pow_start = unhex(env["pow_start_value"], 32, "pow_start_value")
    payload = env["payload"]
    if not isinstance(payload, str) or not isinstance(proof, str):
        raise Malformed("payload and proof_of_work must be strings")

    c.check(where, "algorithm is curve25519xsalsa20poly1305", algorithm == ALGORITHM)
    # The signed message key of the recipient.
    mk_public = unhex(mk["public_key"], 32, "message_key.public_key")
    mk_sig = unhex(mk["signature"], 64, "message_key.signature")
    mk_digest = message_key_hash(recipient, mk["kind"], mk_public)
    c.check(where, "message key kind is ephemeral or nonephemeral", mk["kind"] in ("ephemeral", "nonephemeral"))
    c.check(where, "message key signature verifies under the recipient's key",
            verify(recipient_pk, mk_digest, mk_sig))
    c.check(where, "message key signature equals libsodium's", sign(recipient_sk, mk_digest) == mk_sig)
    c.check(where, "message key public == scalarmult_base(message_secret)",
            scalarmult_base(message_secret) == mk_public)
    c.check(where, "sent.message_public_key is the signed message key", mpk == mk_public)
    c.check(where, "message_public_key is not the recipient's master key (either form)",
            mpk not in (recipient_pk, pk_to_curve(recipient_pk)))

    # Hashes and proof of work.
    token_hash = login_token_hash(login_token)
    field_hash = message_field_hash(ciphertext)
    parts = proof.split(":")
    if not c.check(where, "proof_of_work has the form hash:value:nonce", len(parts) == 3):
        return
    pow_digest = unhex(parts[0], 32, "pow hash")
    pow_value = unhex(parts[1], 32, "pow value")
    c.check(where, "proof_of_work nonce is pow_nonce", unhex(parts[2], 32, "pow nonce") == pow_nonce)
    prefix = pow_prefix(token_hash, field_hash, recipient, message_type, pow_nonce)
    c.check(where, "pow hash == H(preimage)", H(prefix + pow_value) == pow_digest)
    c.check(where, f"pow hash has {zero_bits} leading zero bits", has_zero_bits(pow_digest, zero_bits))
    check_pow_search(c, where, prefix, zero_bits, pow_start, pow_value, None)
    expected_hash = message_hash(sender, recipient, message_type, algorithm, mpk, nonce, field_hash,
                                 proof, token_hash)
    c.check(where, "message_hash recomputed", expected_hash == mhash)
    c.check(where, "message_signature verifies under the sender's key", verify(sender_pk, mhash, msig))
    c.check(where, "message_signature equals libsodium's", sign(sender_sk, mhash) == msig)

    # Sealing and opening (section 3.2).
    c.check(where, "ciphertext equals crypto_box(payload, nonce, message key, sk_to_curve(sender))",
            box(payload.encode("utf-8"), nonce, mpk, sk_to_curve(sender_sk)) == ciphertext)
    try:
        opened = box_open(ciphertext, nonce, pk_to_curve(sender_pk), message_secret)
    except CryptoError:
        opened = None
    c.check(where, "crypto_box_open yields exactly the payload", opened == payload.encode("utf-8"))
    try:
        email = json.loads(payload)
    except ValueError:
        email = None
    email_fields = {"to", "cc", "subject", "thread_id", "reply_to_message_id", "date_sent", "body",
                    "signature_text", "attachments", "extensions_data", "reply_to",
                    "auto_reply_address"}
    c.check(where, "payload is an email object with the section 7 fields",
            isinstance(email, dict) and set(email) == email_fields)


def v_device(c, d):
    where = "device_approval"
    sign_seed, box_secret = unhex(d["sign_seed"], 32, "sign_seed"), unhex(d["box_secret"], 32, "box_secret")
    sign_key, box_key = public_of(sign_seed), scalarmult_base(box_secret)
    c.check(where, "device keys are the seeds' public halves",
            d["device"] == {"sign_key": sign_key.hex(), "box_key": box_key.hex()})
    server_nonce, request_id = unhex(d["server_nonce"], 32), unhex(d["request_id"], 32)
    rhash = device_request_hash(d["address"], d["name"], sign_key, box_key, server_nonce)
    c.check(where, "request hash", rhash.hex() == d["request_hash"])
    c.check(where, "witness code", device_witness(d["address"], d["name"], sign_key, box_key, server_nonce)
            == d["witness"])
    c.check(where, "PIN proof (keyed generichash)", device_pin_proof(d["pin"], rhash).hex() == d["pin_proof"])
    sealed = d["approval"]
    ahash = device_approval_hash(d["address"], request_id, d["name"], sign_key, box_key, server_nonce, sealed)
    c.check(where, "approval hash", ahash.hex() == d["approval_hash"])
    master_pk, master_sk = keypair(unhex(d["master_seed"], 32))
    c.check(where, "approval signed by the master key", sealed["master_key"] == master_pk.hex()
            and verify(master_pk, ahash, unhex(sealed["signature"], 64)))
    c.check(where, "signature equals libsodium's", sign(master_sk, ahash).hex() == sealed["signature"])
    ciphertext = unbase64(sealed["ciphertext"], "approval.ciphertext")
    nonce, eph_pk = unhex(sealed["nonce"], 24), unhex(sealed["ephemeral_key"], 32)
    try:
        plain = box_open(ciphertext, nonce, eph_pk, box_secret)
    except CryptoError:
        plain = None
    c.check(where, "crypto_box_open with the device key gives the plaintext", plain == d["plaintext"].encode("utf-8"))
    eph_secret = unhex(d["ephemeral_secret"], 32)
    c.check(where, "ephemeral key and crypto_box output match libsodium's",
            scalarmult_base(eph_secret) == eph_pk and box(plain or b"", nonce, box_key, eph_secret) == ciphertext)
    secrets = json.loads(d["plaintext"])
    c.check(where, "the sealed master seed is the signer's", keypair(unhex(secrets["master_seed"], 32))[0] == master_pk)


def verify_doc(c, source, doc):
    c.run_section(source, "keypairs", lambda c: each(c, "keypairs", doc["keypairs"], v_keypair))
    c.run_section(source, "signatures", lambda c: each(c, "signatures", doc["signatures"], v_signature))
    c.run_section(source, "blake2b", lambda c: each(c, "blake2b", doc["blake2b"], v_blake2b))
    c.run_section(source, "transcripts", lambda c: each(c, "transcripts", doc["transcripts"], v_transcript))
    c.run_section(source, "boxes", lambda c: each(c, "boxes", doc["boxes"], v_box))
    c.run_section(source, "secretboxes", lambda c: each(c, "secretboxes", doc["secretboxes"], v_secretbox))
    c.run_section(source, "profile_history", lambda c: v_profile_history(c, doc["profile_history"]))
    c.run_section(source, "message_keys", lambda c: each(c, "message_keys", doc["message_keys"], v_message_key))
    c.run_section(source, "pow", lambda c: v_pow(c, doc["pow"]))
    c.run_section(source, "envelope", lambda c: v_envelope(c, doc["envelope"]))
    c.run_section(source, "device_approval", lambda c: v_device(c, doc["device_approval"]))


# ---------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------

def rel(path):
    return str(path.relative_to(ROOT))


def check_mode():
    c = Checker()
    doc = generate()
    text = render(doc)

    # 1. The committed libsodium.json is what this script makes.
    if LIBSODIUM_JSON.exists():
        committed = LIBSODIUM_JSON.read_text(encoding="utf-8")
        same = committed == text
        if not same:
            diff = list(difflib.unified_diff(committed.splitlines(), text.splitlines(),
                                             "committed", "regenerated", lineterm="", n=1))
            print("\n".join(diff[:40]))
        c.check(rel(LIBSODIUM_JSON), "is identical to a fresh generation", same,
                f"out of date: run `python3 {GENERATOR}` and commit {rel(LIBSODIUM_JSON)}")
    else:
        c.check(rel(LIBSODIUM_JSON), "exists", False, f"run `python3 {GENERATOR}`")
    print(f"{rel(LIBSODIUM_JSON)}: {'up to date' if c.failed == 0 else 'DIFFERS from a fresh generation'}")

    # 2. Self-test: the verifier accepts what libsodium made.
    verify_doc(c, "self-test", doc)

    # 3. The Rust-made vectors, verified by libsodium.
    if RUST_JSON.exists():
        try:
            rust = json.loads(RUST_JSON.read_text(encoding="utf-8"))
        except ValueError as e:
            rust = None
            c.check(rel(RUST_JSON), "is valid JSON", False, str(e))
        if isinstance(rust, dict):
            print(f"{rel(RUST_JSON)}: generator {rust.get('generator')!r}")
            try:
                verify_doc(c, "rust.json", rust)
            except KeyError as e:
                c.check(rel(RUST_JSON), "has every section", False, f"missing {e}")
        elif rust is not None:
            c.check(rel(RUST_JSON), "is a JSON object", False)
    else:
        c.check(rel(RUST_JSON), "exists", False,
                "missing: run `cargo run --example write_vectors` to write it")
        print(f"{rel(RUST_JSON)} is missing: run `cargo run --example write_vectors` first")

    print(f"{c.passed} passed, {c.failed} failed")
    return 0 if c.failed == 0 else 1


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="compare with the committed libsodium.json and verify rust.json")
    args = parser.parse_args()
    bootstrap()
    load_nacl()
    init_seeds()
    if args.check:
        sys.exit(check_mode())
    text = render(generate())
    LIBSODIUM_JSON.parent.mkdir(parents=True, exist_ok=True)
    with open(LIBSODIUM_JSON, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
    print(f"wrote {rel(LIBSODIUM_JSON)}")


if __name__ == "__main__":
    main()
