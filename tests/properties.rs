//! Property tests of the protocol core (src/smimp/, docs/protocol.md):
//!
//! 1. every wire form round-trips (addresses, timestamps, hex and base64, the PoW
//!    string, and the JSON documents);
//! 2. every parser returns a value or a typed error on any input, never a panic, and
//!    what it accepts is consistent with what the encoders write;
//! 3. any single flipped bit of a signed or sealed value is refused: a profile
//!    history with a key rotation, a signed message key, a stored envelope and a PoW
//!    solution.
//!
//! Fixtures that cost a signature, a key or a PoW search are built once, from fixed
//! seeds so that a failure reproduces; the properties vary only what is flipped.

use std::cell::Cell;
use std::fmt::{Debug, Display};
use std::num::NonZeroUsize;
use std::str::FromStr;
use std::sync::OnceLock;

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{TestCaseError, TestRunner};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use smimp_gateway::smimp::address::{Address, AddressError, MAX_DOMAIN_LEN, MAX_LOCAL_LEN};
use smimp_gateway::smimp::crypto::{BoxNonce, BoxPublicKey, BoxSecretKey, Hash, MasterKey, MasterPublicKey, Signature};
use smimp_gateway::smimp::encoding::{base64_decode, base64_encode, DecodeError, Id32};
use smimp_gateway::smimp::envelope::{
    login_token_hash, message_field_hash, message_hash, Ciphertext, EnvelopeError, HashContext, ReceivedVia,
    SealedData, SentEnvelope, ServerFields, StoredEnvelope, ALGORITHM, PROTOCOL_VERSION,
};
use smimp_gateway::smimp::keys::{KeyError, KeyKind, SignedMessageKey};
use smimp_gateway::smimp::message::{
    Attachment, Email, MessageError, MessageType, Payload, SecretBytes, SecretCurve25519, SecretEd25519,
    SecretXsalsa20, ShortMessage,
};
use smimp_gateway::smimp::pow::{
    leading_zero_bits, PowError, PowInput, PowParams, PowSolution, Preimage, SolveControl, MAX_ZERO_BITS,
};
use smimp_gateway::smimp::profile::{verify_history, ProfileError, ProfileFields, ProfileRecord};
use smimp_gateway::smimp::timestamp::Timestamp;

// ---------------------------------------------------------------------------------------
// Configuration and small helpers
// ---------------------------------------------------------------------------------------

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig { cases, ..ProptestConfig::default() }
}

/// `0000-01-01 00:00:00` UTC, the first second `Timestamp` can carry.
const MIN_UNIX: i64 = -62_167_219_200;
/// `9999-12-31 23:59:59` UTC, the last.
const MAX_UNIX: i64 = 253_402_300_799;

/// Lowercase hex written here, independently of the crate's encoder, as the oracle.
fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Flips bit `bit` of the byte `at` points to; returns the index flipped.
fn flip(bytes: &mut [u8], at: Index, bit: u8) -> usize {
    let i = at.index(bytes.len());
    bytes[i] ^= 1 << bit;
    i
}

fn one_thread() -> NonZeroUsize {
    NonZeroUsize::new(1).expect("1 is not zero")
}

/// Serialises, parses back and requires the same value.
fn json_round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(value: &T) -> Result<String, TestCaseError> {
    let json = serde_json::to_string(value).map_err(|e| TestCaseError::fail(format!("serialise: {e}")))?;
    let back: T = serde_json::from_str(&json).map_err(|e| TestCaseError::fail(format!("parse {json}: {e}")))?;
    prop_assert_eq!(&back, value, "through {}", json);
    Ok(json)
}

// ---------------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------------

fn local_part() -> impl Strategy<Value = String> {
    "[A-Za-z0-9]{1,64}"
}

fn label() -> impl Strategy<Value = String> {
    "[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
}

/// A valid domain: 2–5 labels, at most 253 characters, sometimes with the trailing dot.
fn domain() -> impl Strategy<Value = String> {
    (prop::collection::vec(label(), 2..6), any::<bool>()).prop_filter_map(
        "a domain is at most 253 characters",
        |(labels, dot)| {
            let domain = labels.join(".");
            (domain.len() <= MAX_DOMAIN_LEN).then(|| if dot { domain + "." } else { domain })
        },
    )
}

/// A valid domain of exactly `len` characters (`len >= 3`): labels of at most 63.
fn domain_of_len(len: usize) -> String {
    assert!(len >= 3);
    let mut domain = String::from("a");
    let mut remaining = len - 1;
    while remaining > 0 {
        let mut take = (remaining - 1).min(63);
        if remaining - 1 - take == 1 {
            take -= 1; // never leave one character: ".x" needs two
        }
        domain.push('.');
        domain.extend(std::iter::repeat_n('b', take));
        remaining -= 1 + take;
    }
    domain
}

fn address() -> impl Strategy<Value = Address> {
    (local_part(), domain()).prop_map(|(local, domain)| {
        Address::parse(&format!("{local}#{domain}")).expect("the strategy makes valid addresses")
    })
}

fn timestamp() -> impl Strategy<Value = Timestamp> {
    (MIN_UNIX..=MAX_UNIX).prop_map(|s| Timestamp::from_unix(s).expect("in range"))
}

fn bytes32() -> impl Strategy<Value = [u8; 32]> {
    prop::array::uniform32(any::<u8>())
}

fn bytes64() -> impl Strategy<Value = [u8; 64]> {
    prop::collection::vec(any::<u8>(), 64).prop_map(|v| <[u8; 64]>::try_from(v).expect("64 bytes"))
}

fn id32() -> impl Strategy<Value = Id32> {
    bytes32().prop_map(Id32)
}

fn message_type() -> impl Strategy<Value = MessageType> {
    prop_oneof![
        Just(MessageType::Email),
        Just(MessageType::ShortMessage),
        Just(MessageType::SecretEd25519),
        Just(MessageType::SecretCurve25519),
        Just(MessageType::SecretXsalsa20),
        "x-custom-[a-z0-9-]{1,64}".prop_map(|name| MessageType::parse(&name).expect("a valid custom name")),
    ]
}

fn pow_solution() -> impl Strategy<Value = PowSolution> {
    (bytes32(), id32(), id32()).prop_map(|(hash, value, nonce)| PowSolution { hash: Hash(hash), value, nonce })
}

/// Any JSON value without floats (serde_json's default float parser is not exact, which
/// is serde_json's documented trade-off, not this crate's).
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<String>().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(any::<String>(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn json_object() -> impl Strategy<Value = serde_json::Map<String, Value>> {
    prop::collection::btree_map(any::<String>(), json_value(), 0..4).prop_map(|m| m.into_iter().collect())
}

fn profile_fields() -> impl Strategy<Value = ProfileFields> {
    (
        proptest::option::of(any::<String>()),
        proptest::option::of(any::<String>()),
        prop::collection::vec(any::<String>(), 0..4),
        proptest::option::of(json_object()),
    )
        .prop_map(|(name, website, profiles, additional_data)| ProfileFields {
            name,
            website,
            profiles,
            additional_data,
        })
}

fn attachment() -> impl Strategy<Value = Attachment> {
    (
        any::<String>(),
        any::<String>(),
        prop::collection::vec(any::<u8>(), 0..64),
        proptest::option::of(any::<String>()),
        any::<bool>(),
    )
        .prop_map(|(filename, content_type, content, content_id, inline)| Attachment {
            filename,
            content_type,
            content,
            content_id,
            inline,
        })
}

fn email() -> impl Strategy<Value = Email> {
    let heads = (
        prop::collection::vec(address(), 0..3),
        prop::collection::vec(address(), 0..3),
        any::<String>(),
        id32(),
        proptest::option::of(id32()),
        timestamp(),
    );
    let rest = (
        any::<String>(),
        proptest::option::of(any::<String>()),
        prop::collection::vec(attachment(), 0..3),
        proptest::option::of(json_object()),
        proptest::option::of(address()),
        proptest::option::of(address()),
    );
    (heads, rest).prop_map(
        |(
            (to, cc, subject, thread_id, reply_to_message_id, date_sent),
            (body, signature_text, attachments, extensions_data, reply_to, auto_reply_address),
        )| Email {
            to,
            cc,
            subject,
            thread_id,
            reply_to_message_id,
            date_sent,
            body,
            signature_text,
            attachments,
            extensions_data,
            reply_to,
            auto_reply_address,
        },
    )
}

fn payload() -> impl Strategy<Value = Payload> {
    let note = || proptest::option::of(any::<String>());
    prop_oneof![
        email().prop_map(|e| Payload::Email(Box::new(e))),
        (any::<String>(), prop::collection::vec(attachment(), 0..3))
            .prop_map(|(message, attachments)| Payload::ShortMessage(ShortMessage { message, attachments })),
        (bytes32(), bytes32(), note()).prop_map(|(p, s, note)| Payload::SecretEd25519(SecretEd25519 {
            public_key: MasterPublicKey(p),
            secret_key: SecretBytes(s),
            note
        })),
        (bytes32(), bytes32(), any::<bool>(), note()).prop_map(|(p, s, ephemeral, note)| {
            Payload::SecretCurve25519(SecretCurve25519 {
                public_key: BoxPublicKey(p),
                secret_key: SecretBytes(s),
                ephemeral,
                note,
            })
        }),
        (bytes32(), note()).prop_map(|(k, note)| Payload::SecretXsalsa20(SecretXsalsa20 { key: SecretBytes(k), note })),
        ("x-custom-[a-z0-9-]{1,64}", prop::collection::vec(any::<u8>(), 0..128))
            .prop_map(|(name, bytes)| { Payload::Custom { kind: MessageType::parse(&name).expect("valid"), bytes } }),
    ]
}

fn stored_envelope() -> impl Strategy<Value = StoredEnvelope> {
    let sent = (
        prop::collection::vec(any::<u8>(), 0..256),
        message_type(),
        prop_oneof![Just(ALGORITHM.to_string()), any::<String>()],
        bytes32(),
        prop::array::uniform24(any::<u8>()),
        proptest::option::of(pow_solution()),
        bytes32(),
        bytes64(),
    )
        .prop_map(|(message, message_type, algorithm, key, nonce, proof_of_work, hash, signature)| SentEnvelope {
            message,
            message_type,
            algorithm,
            message_public_key: BoxPublicKey(key),
            nonce: BoxNonce(nonce),
            proof_of_work,
            message_hash: Hash(hash),
            message_signature: Signature(signature),
        });
    let received_via = prop_oneof![
        Just(ReceivedVia::SmimpClient),
        Just(ReceivedVia::SmtpBridge),
        Just(ReceivedVia::ImapBridge),
        Just(ReceivedVia::ImportApi),
    ];
    let sealed = (prop::array::uniform24(any::<u8>()), prop::collection::vec(any::<u8>(), 0..64))
        .prop_map(|(nonce, ciphertext)| SealedData { nonce: BoxNonce(nonce), ciphertext });
    let server = (
        (address(), address(), bytes32(), timestamp(), proptest::option::of((any::<u32>(), id32()))),
        (
            id32(),
            bytes32(),
            received_via,
            any::<bool>(),
            proptest::option::of(sealed),
            prop_oneof![Just(PROTOCOL_VERSION.to_string()), any::<String>()],
        ),
    )
        .prop_map(
            |(
                (recipient, sender, sender_key, received_at, pow_params),
                (message_id, token_hash, received_via, read, extensions_data, protocol_version),
            )| ServerFields {
                recipient,
                sender,
                sender_public_key: MasterPublicKey(sender_key),
                received_at,
                pow_params: pow_params.map(|(zero_bits, nonce)| PowParams { zero_bits, nonce }),
                message_id,
                login_token_hash: Hash(token_hash),
                received_via,
                read,
                extensions_data,
                protocol_version,
            },
        );
    (sent, server).prop_map(|(sent, server)| StoredEnvelope { sent, server })
}

/// Texts shaped like a timestamp whose fields may be out of range, unpadded, signed or wide.
fn timestamp_like() -> impl Strategy<Value = String> {
    let field = |max: u32| (0..=max, 1..=3usize).prop_map(|(n, width)| format!("{n:0width$}"));
    (
        prop::sample::select(vec!["", "+", "-"]),
        (0..=20_000u32, 1..=6usize),
        field(13),
        field(32),
        field(25),
        field(61),
        field(61),
    )
        .prop_map(|(sign, (year, width), month, day, hour, minute, second)| {
            format!("{sign}{year:0width$}-{month}-{day} {hour}:{minute}:{second}")
        })
}

/// Mostly printable-ASCII noise near the shapes the parsers look for, plus any Unicode.
fn noise(alphabet: &'static str) -> impl Strategy<Value = String> {
    prop_oneof![any::<String>(), alphabet]
}

/// One edit of a text's bytes, at positions resolved against its length.
#[derive(Debug, Clone)]
enum Mutation {
    Flip(Index, u8),
    Set(Index, u8),
    Insert(Index, u8),
    Delete(Index, usize),
    Duplicate(Index, usize),
    Truncate(Index),
}

fn interesting_byte() -> impl Strategy<Value = u8> {
    prop_oneof![any::<u8>(), prop::sample::select(b"{}[]\":,\\ 019aAfFzZ-+.eEntrul#@".to_vec())]
}

fn hex_digit() -> impl Strategy<Value = u8> {
    prop::sample::select(b"0123456789abcdefABCDEF".to_vec())
}

/// One to three edits; single-byte edits are the most likely, and a third of them put a
/// hex digit somewhere, which keeps most of a document's values well-formed but changed.
fn mutations() -> impl Strategy<Value = Vec<Mutation>> {
    let one = prop_oneof![
        3 => (any::<Index>(), 0..8u8).prop_map(|(at, bit)| Mutation::Flip(at, bit)),
        3 => (any::<Index>(), hex_digit()).prop_map(|(at, b)| Mutation::Set(at, b)),
        2 => (any::<Index>(), interesting_byte()).prop_map(|(at, b)| Mutation::Set(at, b)),
        1 => (any::<Index>(), interesting_byte()).prop_map(|(at, b)| Mutation::Insert(at, b)),
        1 => (any::<Index>(), 1..16usize).prop_map(|(at, n)| Mutation::Delete(at, n)),
        1 => (any::<Index>(), 1..16usize).prop_map(|(at, n)| Mutation::Duplicate(at, n)),
        1 => any::<Index>().prop_map(Mutation::Truncate),
    ];
    prop_oneof![3 => prop::collection::vec(one.clone(), 1..2), 1 => prop::collection::vec(one, 2..4)]
}

/// A valid text, or a mutation of it (made valid UTF-8 again where an edit broke it).
fn near(valid: impl Strategy<Value = String> + 'static) -> impl Strategy<Value = String> {
    let valid = valid.boxed();
    prop_oneof![
        valid.clone(),
        (valid, mutations()).prop_map(|(text, edits)| String::from_utf8_lossy(&mutate(&text, &edits)).into_owned()),
    ]
}

fn mutate(text: &str, edits: &[Mutation]) -> Vec<u8> {
    let mut bytes = text.as_bytes().to_vec();
    for edit in edits {
        if bytes.is_empty() {
            bytes.push(b'{');
        }
        let at = |i: &Index| i.index(bytes.len());
        match edit {
            Mutation::Flip(i, bit) => {
                flip(&mut bytes, *i, *bit);
            }
            Mutation::Set(i, b) => {
                let i = at(i);
                bytes[i] = *b;
            }
            Mutation::Insert(i, b) => {
                let i = at(i);
                bytes.insert(i, *b);
            }
            Mutation::Delete(i, n) => {
                let i = at(i);
                let end = (i + n).min(bytes.len());
                bytes.drain(i..end);
            }
            Mutation::Duplicate(i, n) => {
                let i = at(i);
                let end = (i + n).min(bytes.len());
                let copy = bytes[i..end].to_vec();
                bytes.splice(end..end, copy);
            }
            Mutation::Truncate(i) => {
                let i = at(i);
                bytes.truncate(i);
            }
        }
    }
    bytes
}

// ---------------------------------------------------------------------------------------
// Fixtures, built once from fixed seeds
// ---------------------------------------------------------------------------------------

struct Fixture {
    alice: Address,
    bob: Address,
    /// Alice's history: creation, a (Unicode) name change, a rotation to `alice_current`.
    history: Vec<ProfileRecord>,
    alice_current: MasterKey,
    bob_master: MasterKey,
    bob_message: BoxSecretKey,
    /// Bob's message key, signed by `bob_master` for `bob`.
    bob_key: SignedMessageKey,
    /// Alice → Bob, an email, with a 4-bit PoW the server required.
    envelope: StoredEnvelope,
    /// The same message without a PoW (the server asked for none).
    envelope_without_pow: StoredEnvelope,
    payload: Payload,
    pow: PowFixture,
}

struct PowFixture {
    preimage: Preimage,
    zero_bits: u32,
    solution: PowSolution,
}

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_unix(1_790_000_000 + seconds).expect("in range")
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(build_fixture)
}

fn build_fixture() -> Fixture {
    let alice = Address::parse("alice#example.org").expect("valid");
    let bob = Address::parse("bob#example.org").expect("valid");

    // The history, as in src/smimp/profile.rs, with non-ASCII text so that flips land in
    // multi-byte characters too.
    let alice_first = MasterKey::from_seed(&[1; 32]);
    let alice_current = MasterKey::from_seed(&[2; 32]);
    let r0 = ProfileRecord::initial(&alice_first, &alice, ProfileFields::default(), at(0));
    let h = verify_history(&alice, std::slice::from_ref(&r0)).expect("the first record verifies");
    let named = ProfileFields {
        name: Some("Älice Ŀiddell ✓".into()),
        website: Some("https://example.org/alice".into()),
        profiles: vec!["https://social.example/@alice".into()],
        additional_data: None,
    };
    let r1 = ProfileRecord::next(h.latest(), &alice_first, alice_first.public(), named.clone(), at(10))
        .expect("the same key signs its successor");
    let h = h.extend(r1.clone()).expect("r1 extends");
    let r2 = ProfileRecord::next(h.latest(), &alice_first, alice_current.public(), named, at(20))
        .expect("the old key signs the rotation");
    let history = vec![r0, r1, r2];

    let bob_master = MasterKey::from_seed(&[3; 32]);
    let bob_message = BoxSecretKey::from_bytes([4; 32]);
    let bob_key = SignedMessageKey::sign(&bob_master, &bob, KeyKind::Ephemeral, bob_message.public());

    let mut extensions = serde_json::Map::new();
    extensions.insert("x-priority".into(), Value::from(1));
    extensions.insert("tags".into(), Value::from(vec!["lunch", "ü"]));
    let payload = Payload::Email(Box::new(Email {
        to: vec![bob.clone()],
        cc: vec![],
        subject: "Lunch? ✓".into(),
        thread_id: Id32([7; 32]),
        reply_to_message_id: Some(Id32([8; 32])),
        date_sent: at(30),
        body: "# Hi\n\nSee *you* at noon.\n".into(),
        signature_text: Some("— A".into()),
        attachments: vec![Attachment {
            filename: "menu.txt".into(),
            content_type: "text/plain".into(),
            content: b"soup\nbread\n".to_vec(),
            content_id: None,
            inline: false,
        }],
        extensions_data: Some(extensions),
        reply_to: None,
        auto_reply_address: None,
    }));

    let token_hash = login_token_hash(&Id32([5; 32]));
    let context = HashContext { sender: &alice, recipient: &bob, login_token_hash: &token_hash };
    let params = PowParams { zero_bits: 4, nonce: Id32([6; 32]) };
    let seal = || {
        Ciphertext::seal(
            &payload.to_bytes(),
            MessageType::Email,
            BoxNonce([9; 24]),
            &bob_message.public(),
            &alice_current,
        )
    };
    let sealed = seal();
    let pow = Preimage::new(&sealed.pow_input(&context), &params.nonce)
        .solve(params.zero_bits, &Id32([0x44; 32]), one_thread(), &SolveControl::default())
        .expect("a 4-bit PoW is found");
    let server = ServerFields {
        recipient: bob.clone(),
        sender: alice.clone(),
        sender_public_key: alice_current.public(),
        received_at: at(31),
        pow_params: Some(params),
        message_id: Id32([0x55; 32]),
        login_token_hash: token_hash,
        received_via: ReceivedVia::SmimpClient,
        read: false,
        extensions_data: None,
        protocol_version: PROTOCOL_VERSION.into(),
    };
    let envelope =
        StoredEnvelope { sent: sealed.into_envelope(&alice_current, &context, Some(pow)), server: server.clone() };
    let envelope_without_pow = StoredEnvelope {
        sent: seal().into_envelope(&alice_current, &context, None),
        server: ServerFields { pow_params: None, ..server },
    };

    let token = blake_like(b"pow token");
    let field = blake_like(b"pow field");
    let input =
        PowInput { login_token_hash: &token, message_field_hash: &field, recipient: &bob, message_type: "email" };
    let preimage = Preimage::new(&input, &Id32([0x66; 32]));
    let solution =
        preimage.solve(8, &Id32([0; 32]), one_thread(), &SolveControl::default()).expect("an 8-bit PoW is found");

    Fixture {
        alice,
        bob,
        history,
        alice_current,
        bob_master,
        bob_message,
        bob_key,
        envelope,
        envelope_without_pow,
        payload,
        pow: PowFixture { preimage, zero_bits: 8, solution },
    }
}

/// A stand-in hash for the PoW inputs (any 32 bytes do).
fn blake_like(text: &[u8]) -> Hash {
    smimp_gateway::smimp::crypto::blake2b_256(text)
}

impl Fixture {
    fn open(&self, envelope: &StoredEnvelope) -> Result<Vec<u8>, EnvelopeError> {
        envelope.open(&self.alice_current.public(), &self.bob_master.public(), &self.bob_message)
    }

    /// Recomputes the message hash and signs it again as Alice: what a sender who
    /// tampers with its own envelope can do.
    fn resign(&self, envelope: &mut StoredEnvelope) {
        let context = HashContext {
            sender: &envelope.server.sender,
            recipient: &envelope.server.recipient,
            login_token_hash: &envelope.server.login_token_hash,
        };
        let hash = message_hash(&envelope.sent, &message_field_hash(&envelope.sent.message), &context);
        envelope.sent.message_hash = hash;
        envelope.sent.message_signature = self.alice_current.sign(&hash);
    }
}

/// Whether a history error names record `index` (the one that was altered).
fn blames(error: &ProfileError, index: usize) -> bool {
    match error {
        ProfileError::Data { index: i, .. }
        | ProfileError::AddressMismatch { index: i, .. }
        | ProfileError::MissingPrevious { index: i }
        | ProfileError::BrokenChain { index: i }
        | ProfileError::BadSignature { index: i }
        | ProfileError::TimeWentBackwards { index: i } => *i == index,
        ProfileError::FirstHasPrevious => index == 0,
        ProfileError::Empty | ProfileError::WrongSigner => false,
    }
}

/// The fixtures are what the flip properties assume: each verifies or opens untouched,
/// and the re-signing helper alone does not break an envelope.
#[test]
fn fixtures_verify_untouched() {
    let f = fixture();
    let verified = verify_history(&f.alice, &f.history).expect("the history verifies");
    assert_eq!(verified.records().len(), 3);
    assert_eq!(verified.current_key(), f.alice_current.public());
    assert_ne!(verified.first_key(), verified.current_key(), "the history contains a rotation");
    assert!(f.history.iter().any(|r| !r.data.is_ascii()), "the history has multi-byte text");

    assert_eq!(f.bob_key.verify(&f.bob, &f.bob_master.public()), Ok(()));

    let opened = f.open(&f.envelope).expect("the envelope opens");
    assert_eq!(Payload::parse(&MessageType::Email, &opened), Ok(f.payload.clone()));
    assert_eq!(f.open(&f.envelope_without_pow).as_deref(), Ok(&opened[..]));
    let mut resigned = f.envelope.clone();
    f.resign(&mut resigned);
    assert_eq!(f.open(&resigned).as_deref(), Ok(&opened[..]));
    let mut resigned = f.envelope_without_pow.clone();
    f.resign(&mut resigned);
    assert_eq!(f.open(&resigned).as_deref(), Ok(&opened[..]));

    assert_eq!(f.pow.preimage.verify(f.pow.zero_bits, &f.pow.solution), Ok(()));
}

/// The documented contract (docs/protocol.md §1, src/smimp/timestamp.rs): the wire form is
/// exactly `YYYY-MM-DD hh:mm:ss` and years are 0000–9999; signed years are refused.
#[test]
fn timestamp_parser_accepts_only_the_written_form() {
    let mut accepted = Vec::new();
    for input in ["+1000-01-10 00:00:10", "-0910-10-27 20:31:47", "-0000-01-01 00:00:00", "+0000-01-01 00:00:00"] {
        if let Ok(t) = Timestamp::parse(input) {
            accepted.push(format!("{input:?} → {:?}", t.to_wire()));
        }
    }
    assert!(accepted.is_empty(), "accepted outside the wire form or the years 0000–9999:\n{}", accepted.join("\n"));
}

#[test]
fn timestamp_bounds_are_the_years_0000_to_9999() {
    assert_eq!(Timestamp::from_unix(MIN_UNIX).map(|t| t.to_wire()).as_deref(), Some("0000-01-01 00:00:00"));
    assert_eq!(Timestamp::from_unix(MAX_UNIX).map(|t| t.to_wire()).as_deref(), Some("9999-12-31 23:59:59"));
    assert_eq!(Timestamp::from_unix(MIN_UNIX - 1), None);
    assert_eq!(Timestamp::from_unix(MAX_UNIX + 1), None);
}

// ---------------------------------------------------------------------------------------
// 1. Round trips
// ---------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn address_round_trips_through_text_serde_and_email(local in local_part(), domain in domain()) {
        let text = format!("{local}#{domain}");
        let address = Address::parse(&text);
        prop_assert!(address.is_ok(), "{} refused: {:?}", text, address);
        let address = address.unwrap();
        let bare_domain = domain.strip_suffix('.').unwrap_or(&domain);
        prop_assert_eq!(address.local(), local.to_ascii_lowercase());
        prop_assert_eq!(address.domain(), bare_domain.to_ascii_lowercase());
        let normal = format!("{}#{}", address.local(), address.domain());
        prop_assert_eq!(address.as_str(), &normal);
        prop_assert_eq!(address.to_string(), normal.clone());
        prop_assert_eq!(Address::parse(&normal), Ok(address.clone()));
        prop_assert_eq!(normal.parse::<Address>(), Ok(address.clone()));
        prop_assert_eq!(Address::parse(&text.to_ascii_uppercase()), Ok(address.clone()));

        let json = json_round_trip(&address)?;
        prop_assert_eq!(&json, &format!("\"{normal}\""));
        prop_assert_eq!(serde_json::from_value::<Address>(Value::String(text.clone())).ok(), Some(address.clone()));

        let email = format!("{local}@{domain}");
        prop_assert_eq!(Address::from_email(&email), Ok(address.clone()));
        prop_assert_eq!(address.to_email(), format!("{}@{}", address.local(), address.domain()));
        prop_assert_eq!(Address::from_email(&address.to_email()), Ok(address.clone()));
        prop_assert_eq!(Address::parse(&email), Err(AddressError::MissingSeparator('#')));
        prop_assert_eq!(Address::from_email(&text), Err(AddressError::MissingSeparator('@')));
    }

    #[test]
    fn address_length_limits_are_exact(
        len in 3usize..=300,
        dot in any::<bool>(),
        local_len in 1usize..=100,
        label_len in 1usize..=100,
    ) {
        let domain = domain_of_len(len);
        prop_assert_eq!(domain.len(), len);
        let domain = if dot { domain + "." } else { domain };
        let result = Address::parse(&format!("x#{domain}"));
        if len <= MAX_DOMAIN_LEN {
            prop_assert_eq!(result.map(|a| a.domain().len()), Ok(len));
        } else {
            prop_assert_eq!(result, Err(AddressError::DomainTooLong));
        }
        let label = "C".repeat(label_len);
        let result = Address::parse(&format!("x#example.{label}"));
        if label_len <= 63 {
            prop_assert_eq!(result.map(|a| a.domain().len()), Ok("example.".len() + label_len));
        } else {
            prop_assert!(matches!(result, Err(AddressError::BadDomain(..))), "{:?}", result);
        }
        let local = "L".repeat(local_len);
        let result = Address::parse(&format!("{local}#example.org"));
        if local_len <= MAX_LOCAL_LEN {
            prop_assert_eq!(result.map(|a| a.local().to_string()), Ok(local.to_ascii_lowercase()));
        } else {
            prop_assert_eq!(result, Err(AddressError::LocalTooLong));
        }
    }

    #[test]
    fn a_foreign_character_in_an_address_is_refused_by_name(
        local in local_part(),
        domain in domain(),
        at in any::<Index>(),
        bad in any::<char>().prop_filter("not allowed", |c| !c.is_ascii_alphanumeric() && !"#-.".contains(*c)),
        in_local in any::<bool>(),
    ) {
        if in_local {
            let mut local = local;
            local.insert(at.index(local.len() + 1), bad); // `local` is ASCII: any index is a boundary
            prop_assert_eq!(Address::parse(&format!("{local}#{domain}")), Err(AddressError::LocalCharacter(bad)));
        } else {
            let mut domain = domain;
            let i = at.index(domain.len() + 1);
            domain.insert(i, bad);
            let result = Address::parse(&format!("{local}#{domain}"));
            prop_assert!(
                matches!(result, Err(AddressError::BadDomain(..)) | Err(AddressError::DomainTooLong)),
                "{} in {}: {:?}", bad, domain, result
            );
        }
    }

    #[test]
    fn timestamp_wire_form_round_trips(seconds in MIN_UNIX..=MAX_UNIX, other in MIN_UNIX..=MAX_UNIX) {
        let t = Timestamp::from_unix(seconds);
        prop_assert!(t.is_some(), "{} has no timestamp", seconds);
        let t = t.unwrap();
        prop_assert_eq!(t.unix(), seconds);
        let wire = t.to_wire();
        prop_assert_eq!(wire.len(), 19, "{}", wire);
        for (i, (b, shape)) in wire.bytes().zip("dddd-dd-dd dd:dd:dd".bytes()).enumerate() {
            let fits = if shape == b'd' { b.is_ascii_digit() } else { b == shape };
            prop_assert!(fits, "{} at {}", wire, i);
        }
        prop_assert_eq!(t.to_string(), wire.clone());
        prop_assert_eq!(Timestamp::parse(&wire), Ok(t));
        let json = json_round_trip(&t)?;
        prop_assert_eq!(json, format!("\"{wire}\""));
        // Order is the order of time, and the wire form sorts the same way.
        let u = Timestamp::from_unix(other).unwrap();
        prop_assert_eq!(t.cmp(&u), seconds.cmp(&other));
        prop_assert_eq!(wire.cmp(&u.to_wire()), seconds.cmp(&other));
    }

    #[test]
    fn timestamps_outside_the_years_0000_to_9999_do_not_exist(
        seconds in prop_oneof![i64::MIN..MIN_UNIX, (MAX_UNIX + 1)..=i64::MAX]
    ) {
        prop_assert_eq!(Timestamp::from_unix(seconds), None);
    }

    #[test]
    fn hex_newtypes_round_trip(b32 in bytes32(), b24 in prop::array::uniform24(any::<u8>()), b64 in bytes64()) {
        check_hex(b32, Id32)?;
        check_hex(b32, Hash)?;
        check_hex(b32, MasterPublicKey)?;
        check_hex(b32, BoxPublicKey)?;
        check_hex(b32, SecretBytes)?;
        check_hex(b24, BoxNonce)?;
        check_hex(b64, Signature)?;
    }

    #[test]
    fn hex_newtypes_refuse_every_other_length(bytes in prop::collection::vec(any::<u8>(), 0..80)) {
        check_length::<Id32, 32>(&bytes)?;
        check_length::<Hash, 32>(&bytes)?;
        check_length::<MasterPublicKey, 32>(&bytes)?;
        check_length::<BoxPublicKey, 32>(&bytes)?;
        check_length::<SecretBytes, 32>(&bytes)?;
        check_length::<BoxNonce, 24>(&bytes)?;
        check_length::<Signature, 64>(&bytes)?;
    }

    #[test]
    fn base64_round_trips(
        bytes in prop::collection::vec(any::<u8>(), 0..300),
        nonce in prop::array::uniform24(any::<u8>()),
    ) {
        let text = base64_encode(&bytes);
        prop_assert_eq!(text.len(), bytes.len().div_ceil(3) * 4);
        prop_assert!(text.bytes().all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b)), "{}", text);
        prop_assert_eq!(base64_decode(&text), Ok(bytes.clone()));
        // The serde adapter carries the same text.
        let sealed = SealedData { nonce: BoxNonce(nonce), ciphertext: bytes };
        let json = json_round_trip(&sealed)?;
        prop_assert!(json.contains(&format!("\"ciphertext\":\"{text}\"")), "{}", json);
    }

    #[test]
    fn pow_solution_string_round_trips(solution in pow_solution()) {
        let text = solution.to_string();
        prop_assert_eq!(
            &text,
            &[&solution.hash.0, &solution.value.0, &solution.nonce.0].map(|b| hex_lower(b)).join(":")
        );
        prop_assert_eq!(text.parse::<PowSolution>(), Ok(solution));
        prop_assert_eq!(text.to_ascii_uppercase().parse::<PowSolution>(), Ok(solution));
        let json = json_round_trip(&solution)?;
        prop_assert_eq!(json, format!("\"{text}\""));
    }
}

fn check_hex<T, const N: usize>(bytes: [u8; N], make: fn([u8; N]) -> T) -> Result<(), TestCaseError>
where
    T: FromStr<Err = DecodeError> + Display + Debug + PartialEq + Serialize + DeserializeOwned,
{
    let value = make(bytes);
    let hex = hex_lower(&bytes);
    prop_assert_eq!(value.to_string(), hex.clone());
    prop_assert_eq!(hex.parse::<T>(), Ok(make(bytes)));
    prop_assert_eq!(hex.to_ascii_uppercase().parse::<T>(), Ok(make(bytes)));
    let json = json_round_trip(&value)?;
    prop_assert_eq!(json, format!("\"{hex}\""));
    prop_assert_eq!(hex[2..].parse::<T>(), Err(DecodeError::Length { expected: N, found: N - 1 }));
    prop_assert_eq!(format!("{hex}00").parse::<T>(), Err(DecodeError::Length { expected: N, found: N + 1 }));
    prop_assert!(matches!(hex[1..].parse::<T>(), Err(DecodeError::Hex(_))));
    Ok(())
}

fn check_length<T, const N: usize>(bytes: &[u8]) -> Result<(), TestCaseError>
where
    T: FromStr<Err = DecodeError> + Display + Debug,
{
    let hex = hex_lower(bytes);
    match hex.parse::<T>() {
        Ok(value) => {
            prop_assert_eq!(bytes.len(), N);
            prop_assert_eq!(value.to_string(), hex);
        }
        Err(error) => {
            prop_assert_ne!(bytes.len(), N);
            prop_assert_eq!(error, DecodeError::Length { expected: N, found: bytes.len() });
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(128))]

    #[test]
    fn profile_records_round_trip_as_json(data in any::<String>(), signature in bytes64()) {
        let record = ProfileRecord { data, signed_hash: Signature(signature) };
        json_round_trip(&record)?;
        json_round_trip(&vec![record.clone(), record])?;
    }

    /// Any user-chosen fields survive signing, the wire and verification unchanged.
    #[test]
    fn signed_profile_records_round_trip_and_verify(
        address in address(),
        fields in profile_fields(),
        changed_at in timestamp(),
    ) {
        let key = MasterKey::from_seed(&[0x11; 32]);
        let record = ProfileRecord::initial(&key, &address, fields.clone(), changed_at);
        let json = json_round_trip(&vec![record])?;
        let records: Vec<ProfileRecord> = serde_json::from_str(&json).unwrap();
        let verified = verify_history(&address, &records);
        prop_assert!(verified.is_ok(), "{:?}", verified);
        let verified = verified.unwrap();
        let data = &verified.latest().data;
        prop_assert_eq!(data.fields(), fields);
        prop_assert_eq!(data.changed_at, changed_at);
        prop_assert_eq!(&data.address, &address);
        prop_assert_eq!(data.public_key, key.public());
    }

    #[test]
    fn message_keys_round_trip_as_json(
        key in bytes32(),
        ephemeral in any::<bool>(),
        signature in bytes64(),
        owner in address(),
    ) {
        let kind = if ephemeral { KeyKind::Ephemeral } else { KeyKind::Nonephemeral };
        let document = SignedMessageKey { public_key: BoxPublicKey(key), kind, signature: Signature(signature) };
        let json = json_round_trip(&document)?;
        prop_assert!(json.contains(&format!("\"kind\":\"{}\"", kind.as_str())), "{}", json);
        // A signed one still verifies after the trip.
        let master = MasterKey::from_seed(&[0x22; 32]);
        let signed = SignedMessageKey::sign(&master, &owner, kind, BoxPublicKey(key));
        json_round_trip(&signed)?;
        let back: SignedMessageKey = serde_json::from_str(&serde_json::to_string(&signed).unwrap()).unwrap();
        prop_assert_eq!(back.verify(&owner, &master.public()), Ok(()));
    }

    #[test]
    fn stored_envelopes_round_trip_as_json(envelope in stored_envelope()) {
        let json = json_round_trip(&envelope)?;
        // One flat object, as `GET message/{id}` returns it.
        let value: Value = serde_json::from_str(&json).unwrap();
        prop_assert!(value.get("message").is_some() && value.get("recipient").is_some(), "{}", json);
        prop_assert!(value.get("sent").is_none() && value.get("server").is_none(), "{}", json);
    }

    #[test]
    fn email_payloads_round_trip_as_json(email in email()) {
        json_round_trip(&email)?;
        let payload = Payload::Email(Box::new(email));
        prop_assert_eq!(Payload::parse(&MessageType::Email, &payload.to_bytes()), Ok(payload));
    }

    #[test]
    fn every_payload_round_trips_through_its_bytes(payload in payload()) {
        let kind = payload.message_type();
        let bytes = payload.to_bytes();
        prop_assert_eq!(Payload::parse(&kind, &bytes), Ok(payload));
    }
}

// ---------------------------------------------------------------------------------------
// 2. Parsers never panic, and what they accept is what the encoders write
// ---------------------------------------------------------------------------------------

fn check_address_result(
    input: &str,
    result: Result<Address, AddressError>,
    separator: char,
) -> Result<(), TestCaseError> {
    match result {
        Ok(address) => {
            let lower = input.to_ascii_lowercase();
            let written = if separator == '#' { address.to_string() } else { address.to_email() };
            prop_assert!(lower == written || lower == format!("{written}."), "{:?} → {:?}", input, address);
            prop_assert!(address.as_str().bytes().all(|b| !b.is_ascii_uppercase()));
            prop_assert_eq!(Address::parse(address.as_str()), Ok(address.clone()));
        }
        Err(error) => prop_assert!(!error.to_string().is_empty()),
    }
    Ok(())
}

fn check_reparse<T: Serialize + DeserializeOwned + PartialEq + Debug>(
    result: serde_json::Result<T>,
) -> Result<bool, TestCaseError> {
    match result {
        Ok(value) => {
            json_round_trip(&value)?;
            Ok(true)
        }
        Err(error) => {
            prop_assert!(!error.to_string().is_empty());
            Ok(false)
        }
    }
}

/// Every JSON document type, parsed from `bytes` (and from the text when it is UTF-8).
fn parse_every_document(bytes: &[u8]) -> Result<(), TestCaseError> {
    fn both<T: Serialize + DeserializeOwned + PartialEq + Debug>(bytes: &[u8]) -> Result<(), TestCaseError> {
        let from_slice = check_reparse(serde_json::from_slice::<T>(bytes))?;
        let text = String::from_utf8_lossy(bytes);
        let from_str = check_reparse(serde_json::from_str::<T>(&text))?;
        if std::str::from_utf8(bytes).is_ok() {
            prop_assert_eq!(from_slice, from_str);
        }
        Ok(())
    }
    both::<ProfileRecord>(bytes)?;
    both::<Vec<ProfileRecord>>(bytes)?;
    both::<SignedMessageKey>(bytes)?;
    both::<StoredEnvelope>(bytes)?;
    both::<Email>(bytes)?;
    Ok(())
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn address_parsers_never_panic(
        input in prop_oneof![
            noise("[A-Za-z0-9#@.\\- _]{0,80}"),
            near((local_part(), "[#@]", domain()).prop_map(|(l, s, d)| format!("{l}{s}{d}"))),
        ]
    ) {
        check_address_result(&input, Address::parse(&input), '#')?;
        check_address_result(&input, Address::from_email(&input), '@')?;
        prop_assert_eq!(input.parse::<Address>(), Address::parse(&input));
        let json = Value::String(input.clone());
        prop_assert_eq!(serde_json::from_value::<Address>(json).ok(), Address::parse(&input).ok());
    }

    #[test]
    fn timestamp_parser_never_panics(
        input in prop_oneof![
            noise("[0-9 :+\\-T]{0,25}"),
            near(timestamp().prop_map(|t| t.to_wire())),
            timestamp_like(),
        ]
    ) {
        match Timestamp::parse(&input) {
            Ok(t) => {
                // What is accepted is written back the same, and is a representable instant.
                let wire = t.to_wire();
                prop_assert_eq!(&wire, &input);
                prop_assert_eq!(Timestamp::parse(&wire), Ok(t));
                prop_assert_eq!(Timestamp::from_unix(t.unix()), Some(t));
            }
            Err(error) => prop_assert_eq!(error.0, input),
        }
    }

    #[test]
    fn message_type_parser_never_panics(
        input in prop_oneof![
            noise("(x-custom-)?[a-zA-Z0-9_\\-]{0,70}"),
            near(message_type().prop_map(|kind| kind.to_string())),
        ]
    ) {
        match MessageType::parse(&input) {
            Ok(kind) => {
                prop_assert_eq!(kind.as_str(), input.as_str());
                prop_assert_eq!(MessageType::parse(kind.as_str()), Ok(kind.clone()));
                prop_assert_eq!(kind.to_string(), input.clone());
            }
            Err(error) => prop_assert_eq!(error, MessageError::UnknownType(input)),
        }
    }

    #[test]
    fn pow_solution_parser_never_panics(
        input in prop_oneof![
            noise("[0-9a-fA-F:]{0,200}"),
            near(pow_solution().prop_map(|solution| solution.to_string())),
        ]
    ) {
        match input.parse::<PowSolution>() {
            Ok(solution) => prop_assert_eq!(solution.to_string(), input.to_ascii_lowercase()),
            Err(error) => prop_assert_eq!(error, PowError::Malformed),
        }
    }

    /// Base64 decoding accepts exactly one text per byte string: the one the encoder writes.
    #[test]
    fn base64_decoder_never_panics_and_is_canonical(
        input in prop_oneof![
            noise("[A-Za-z0-9+/=]{0,40}"),
            near(prop::collection::vec(any::<u8>(), 0..40).prop_map(|bytes| base64_encode(&bytes))),
        ]
    ) {
        match base64_decode(&input) {
            Ok(bytes) => prop_assert_eq!(base64_encode(&bytes), input),
            Err(error) => prop_assert!(matches!(error, DecodeError::Base64(_)), "{:?}", error),
        }
    }

    /// Hex decoding accepts the written form and its uppercase, nothing else.
    #[test]
    fn hex_parsers_never_panic(
        input in prop_oneof![noise("[0-9a-fA-FxX ]{0,70}"), near(bytes32().prop_map(|bytes| hex_lower(&bytes)))]
    ) {
        match input.parse::<Id32>() {
            Ok(id) => prop_assert_eq!(id.to_hex(), input.to_ascii_lowercase()),
            Err(DecodeError::Length { expected, found }) => {
                prop_assert_eq!(expected, 32);
                prop_assert_eq!(found * 2, input.len());
                prop_assert_ne!(found, 32);
            }
            Err(error) => prop_assert!(matches!(error, DecodeError::Hex(_)), "{:?}", error),
        }
    }

    #[test]
    fn json_documents_never_panic_on_arbitrary_text(input in noise("[\\[\\]{}\":,0-9a-z_ ]{0,96}")) {
        parse_every_document(input.as_bytes())?;
    }

    #[test]
    fn payload_parser_never_panics(kind in message_type(), bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        check_payload(&kind, &bytes)?;
    }
}

fn check_payload(kind: &MessageType, bytes: &[u8]) -> Result<(), TestCaseError> {
    match Payload::parse(kind, bytes) {
        Ok(payload) => {
            prop_assert_eq!(&payload.message_type(), kind);
            if let MessageType::Custom(_) = kind {
                prop_assert_eq!(payload.to_bytes(), bytes.to_vec());
            }
            prop_assert_eq!(Payload::parse(kind, &payload.to_bytes()), Ok(payload.clone()));
        }
        Err(error) => {
            prop_assert!(!matches!(kind, MessageType::Custom(_)), "custom payloads are opaque");
            prop_assert!(matches!(error, MessageError::Payload { .. }), "{}", error);
        }
    }
    Ok(())
}

/// Runs `test` over 256 cases of `strategy` as `proptest!` would, and counts the cases
/// it reports as having reached the verifier (the mutated document still parsed): a
/// property whose mutations are all refused by the parser says nothing about verification.
/// Returns how many cases reached it, and how many ran.
fn run_mutations<S: Strategy>(strategy: S, test: impl Fn(S::Value) -> Result<bool, TestCaseError>) -> (usize, usize) {
    let total = Cell::new(0usize);
    let reached = Cell::new(0usize);
    let mut runner = TestRunner::new(config(256));
    let result = runner.run(&strategy, |value| {
        total.set(total.get() + 1);
        if test(value)? {
            reached.set(reached.get() + 1);
        }
        Ok(())
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
    (reached.get(), total.get())
}

/// Fails unless at least `percent` % of the cases reached the verifier. The bounds are
/// set well below the shares measured over 256 cases (histories 52 %, single records
/// 50 %, message keys 21 %, envelopes 28 %, payloads 18 %), so that chance alone does not
/// fail them while a parser that refuses nearly every mutation does.
fn assert_reached(what: &str, (reached, total): (usize, usize), percent: usize) {
    eprintln!("{what}: {reached} of {total} mutations reached verification");
    assert!(
        reached * 100 >= total * percent,
        "only {reached} of {total} mutated {what} got past parsing to verification (at least {percent}% must)"
    );
}

/// Edits of every valid document: no panic, anything accepted re-serialises to
/// itself, and anything that still *verifies* is exactly what was signed.
#[test]
fn mutated_histories_never_verify_as_anything_new() {
    let f = fixture();
    let single = Cell::new(0usize);
    let counts = run_mutations(mutations(), |edits| {
        let json = serde_json::to_string(&f.history).unwrap();
        let bytes = mutate(&json, &edits);
        parse_every_document(&bytes)?;
        let mut reached = false;
        if let Ok(records) = serde_json::from_slice::<Vec<ProfileRecord>>(&bytes) {
            reached = true;
            if verify_history(&f.alice, &records).is_ok() {
                prop_assert!(
                    !records.is_empty()
                        && records.len() <= f.history.len()
                        && records[..] == f.history[..records.len()],
                    "a changed history verified: {}",
                    String::from_utf8_lossy(&bytes)
                );
            }
        }
        let json = serde_json::to_string(&f.history[2]).unwrap();
        let bytes = mutate(&json, &edits);
        if let Ok(record) = serde_json::from_slice::<ProfileRecord>(&bytes) {
            single.set(single.get() + 1);
            let history = [f.history[0].clone(), f.history[1].clone(), record.clone()];
            if verify_history(&f.alice, &history).is_ok() {
                prop_assert_eq!(&record, &f.history[2]);
            }
        }
        Ok(reached)
    });
    assert_reached("histories", counts, 35);
    assert_reached("single records", (single.get(), counts.1), 35);
}

#[test]
fn mutated_message_keys_never_verify_as_anything_new() {
    let f = fixture();
    let counts = run_mutations(mutations(), |edits| {
        let json = serde_json::to_string(&f.bob_key).unwrap();
        let bytes = mutate(&json, &edits);
        parse_every_document(&bytes)?;
        let Ok(key) = serde_json::from_slice::<SignedMessageKey>(&bytes) else { return Ok(false) };
        if key.verify(&f.bob, &f.bob_master.public()).is_ok() {
            prop_assert_eq!(&key, &f.bob_key, "{}", String::from_utf8_lossy(&bytes));
        }
        Ok(true)
    });
    assert_reached("message keys", counts, 10);
}

#[test]
fn mutated_envelopes_never_open_to_anything_new() {
    let f = fixture();
    let counts = run_mutations(mutations(), |edits| {
        let json = serde_json::to_string(&f.envelope).unwrap();
        let bytes = mutate(&json, &edits);
        parse_every_document(&bytes)?;
        let Ok(envelope) = serde_json::from_slice::<StoredEnvelope>(&bytes) else { return Ok(false) };
        if let Ok(plaintext) = f.open(&envelope) {
            prop_assert_eq!(plaintext, f.payload.to_bytes(), "{}", String::from_utf8_lossy(&bytes));
        }
        Ok(true)
    });
    assert_reached("envelopes", counts, 15);
}

/// No verifier here: "reached" counts the mutated payloads the email parser still takes,
/// so that the property exercises more than the parser's first refusal.
#[test]
fn mutated_payloads_never_panic() {
    let f = fixture();
    let counts = run_mutations((mutations(), message_type()), |(edits, kind)| {
        let bytes = mutate(&String::from_utf8(f.payload.to_bytes()).unwrap(), &edits);
        parse_every_document(&bytes)?;
        check_payload(&kind, &bytes)?;
        check_payload(&MessageType::Email, &bytes)?;
        Ok(Payload::parse(&MessageType::Email, &bytes).is_ok())
    });
    assert_reached("payloads", counts, 8);
}

// ---------------------------------------------------------------------------------------
// 3. Any flipped bit is refused
// ---------------------------------------------------------------------------------------

/// A flip anywhere in any record's `data` text. A flip that leaves invalid UTF-8 cannot
/// be carried by a JSON string, so its closest representable form, with U+FFFD in place
/// of the broken sequence, is checked instead; at least three quarters of the cases must
/// be real, valid-UTF-8 flips so that the property does its work on the text itself.
#[test]
fn any_flipped_bit_of_a_records_data_fails_verification() {
    let f = fixture();
    let total = Cell::new(0usize);
    let representable = Cell::new(0usize);
    let mut runner = TestRunner::new(config(256));
    let strategy = (0..3usize, any::<Index>(), 0..8u8);
    let result = runner.run(&strategy, |(record, at, bit)| {
        total.set(total.get() + 1);
        let mut bytes = f.history[record].data.clone().into_bytes();
        let i = flip(&mut bytes, at, bit);
        let text = match String::from_utf8(bytes) {
            Ok(text) => {
                representable.set(representable.get() + 1);
                text
            }
            Err(invalid) => String::from_utf8_lossy(invalid.as_bytes()).into_owned(),
        };
        prop_assert_ne!(&text, &f.history[record].data);
        let mut records = f.history.clone();
        records[record].data = text;
        let result = verify_history(&f.alice, &records);
        prop_assert!(result.is_err(), "record {} byte {} bit {}: verified", record, i, bit);
        let error = result.unwrap_err();
        prop_assert!(blames(&error, record), "record {} byte {} bit {}: {:?}", record, i, bit, error);
        // The records before the altered one still verify: the damage is where it was done.
        if record > 0 {
            prop_assert!(verify_history(&f.alice, &records[..record]).is_ok());
        }
        Ok(())
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
    assert!(
        representable.get() * 4 >= total.get() * 3,
        "only {} of {} flips were valid UTF-8",
        representable.get(),
        total.get()
    );
}

/// Where in a stored envelope a bit is flipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Message,
    Nonce,
    MessagePublicKey,
    MessageHash,
    MessageSignature,
    LoginTokenHash,
    SenderPublicKey,
    PowHash,
    PowValue,
    PowNonce,
    PowParamsNonce,
}

const PARTS: [Part; 11] = [
    Part::Message,
    Part::Nonce,
    Part::MessagePublicKey,
    Part::MessageHash,
    Part::MessageSignature,
    Part::LoginTokenHash,
    Part::SenderPublicKey,
    Part::PowHash,
    Part::PowValue,
    Part::PowNonce,
    Part::PowParamsNonce,
];

fn part_bytes(envelope: &mut StoredEnvelope, part: Part) -> &mut [u8] {
    let (sent, server) = (&mut envelope.sent, &mut envelope.server);
    const POW: &str = "the fixture carries a PoW";
    match part {
        Part::Message => &mut sent.message,
        Part::Nonce => &mut sent.nonce.0,
        Part::MessagePublicKey => &mut sent.message_public_key.0,
        Part::MessageHash => &mut sent.message_hash.0,
        Part::MessageSignature => &mut sent.message_signature.0,
        Part::LoginTokenHash => &mut server.login_token_hash.0,
        Part::SenderPublicKey => &mut server.sender_public_key.0,
        Part::PowHash => &mut sent.proof_of_work.as_mut().expect(POW).hash.0,
        Part::PowValue => &mut sent.proof_of_work.as_mut().expect(POW).value.0,
        Part::PowNonce => &mut sent.proof_of_work.as_mut().expect(POW).nonce.0,
        Part::PowParamsNonce => &mut server.pow_params.as_mut().expect(POW).nonce.0,
    }
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn any_flipped_bit_of_a_signed_hash_fails_verification(record in 0..3usize, at in any::<Index>(), bit in 0..8u8) {
        let f = fixture();
        let mut records = f.history.clone();
        flip(&mut records[record].signed_hash.0, at, bit);
        prop_assert_eq!(verify_history(&f.alice, &records), Err(ProfileError::BadSignature { index: record }));
    }

    #[test]
    fn any_flipped_bit_of_a_message_key_fails_verification(
        in_signature in any::<bool>(),
        at in any::<Index>(),
        bit in 0..8u8,
    ) {
        let f = fixture();
        let mut key = f.bob_key.clone();
        if in_signature {
            flip(&mut key.signature.0, at, bit);
        } else {
            flip(&mut key.public_key.0, at, bit);
        }
        prop_assert_eq!(key.verify(&f.bob, &f.bob_master.public()), Err(KeyError::BadSignature));
        // Nor under the other kind, nor after flipping the owner's key instead.
        let swapped = SignedMessageKey { kind: KeyKind::Nonephemeral, ..f.bob_key.clone() };
        prop_assert_eq!(swapped.verify(&f.bob, &f.bob_master.public()), Err(KeyError::BadSignature));
        let mut owner = f.bob_master.public();
        flip(&mut owner.0, at, bit);
        prop_assert_eq!(f.bob_key.verify(&f.bob, &owner), Err(KeyError::BadSignature));
    }

    #[test]
    fn a_message_key_verifies_only_for_its_owner(other in address()) {
        let f = fixture();
        prop_assume!(other != f.bob);
        prop_assert_eq!(f.bob_key.verify(&other, &f.bob_master.public()), Err(KeyError::BadSignature));
    }

    /// A flip by anyone but the sender: the envelope is refused before decryption, with
    /// the check that covers the altered field.
    #[test]
    fn any_flipped_bit_of_an_envelope_is_refused(
        part in prop::sample::select(PARTS.to_vec()),
        at in any::<Index>(),
        bit in 0..8u8,
    ) {
        let f = fixture();
        let mut envelope = f.envelope.clone();
        let i = flip(part_bytes(&mut envelope, part), at, bit);
        let expected = match part {
            Part::MessageSignature => EnvelopeError::BadSignature,
            Part::MessagePublicKey => EnvelopeError::UnknownMessageKey,
            Part::SenderPublicKey => EnvelopeError::SenderKeyMismatch,
            Part::PowParamsNonce => EnvelopeError::ProofOfWork(PowError::NonceMismatch),
            _ => EnvelopeError::HashMismatch,
        };
        prop_assert_eq!(f.open(&envelope), Err(expected), "{:?} byte {} bit {}", part, i, bit);
        if part == Part::SenderPublicKey {
            // Even when the flipped key is also the one the recipient looks up.
            let claimed = envelope.server.sender_public_key;
            let result = envelope.open(&claimed, &f.bob_master.public(), &f.bob_message);
            prop_assert_eq!(result, Err(EnvelopeError::BadSignature));
        }
    }

    /// A flip by the sender itself, which re-signs the message hash: the PoW and the box
    /// still refuse it.
    #[test]
    fn a_sender_that_re_signs_a_flipped_envelope_is_still_refused(
        part in prop::sample::select(vec![
            Part::Message,
            Part::Nonce,
            Part::MessagePublicKey,
            Part::PowHash,
            Part::PowValue,
            Part::PowNonce,
        ]),
        with_pow in any::<bool>(),
        at in any::<Index>(),
        bit in 0..8u8,
    ) {
        let f = fixture();
        let with_pow = with_pow || !matches!(part, Part::Message | Part::Nonce);
        let mut envelope = if with_pow { f.envelope.clone() } else { f.envelope_without_pow.clone() };
        let i = flip(part_bytes(&mut envelope, part), at, bit);
        f.resign(&mut envelope);
        let expected = match (part, with_pow) {
            (Part::Message, true) | (Part::PowHash | Part::PowValue, _) => {
                EnvelopeError::ProofOfWork(PowError::HashMismatch)
            }
            (Part::PowNonce, _) => EnvelopeError::ProofOfWork(PowError::NonceMismatch),
            (Part::MessagePublicKey, _) => EnvelopeError::UnknownMessageKey,
            _ => EnvelopeError::DecryptionFailed,
        };
        prop_assert_eq!(f.open(&envelope), Err(expected), "{:?} byte {} bit {} (PoW: {})", part, i, bit, with_pow);
    }

    #[test]
    fn any_flipped_bit_of_a_pow_solution_fails_verification(which in 0..3usize, at in any::<Index>(), bit in 0..8u8) {
        let pow = &fixture().pow;
        let mut solution = pow.solution;
        let (bytes, expected) = match which {
            0 => (&mut solution.hash.0, PowError::HashMismatch),
            1 => (&mut solution.value.0, PowError::HashMismatch),
            _ => (&mut solution.nonce.0, PowError::NonceMismatch),
        };
        flip(bytes, at, bit);
        prop_assert_eq!(pow.preimage.verify(pow.zero_bits, &solution), Err(expected.clone()));
        // The wire form of the flipped solution parses to it and is refused the same way.
        let parsed = solution.to_string().parse::<PowSolution>();
        prop_assert_eq!(parsed.clone(), Ok(solution));
        prop_assert_eq!(pow.preimage.verify(pow.zero_bits, &parsed.unwrap()), Err(expected));
    }

    /// With the hash recomputed honestly, a value passes exactly when its hash has enough zero bits.
    #[test]
    fn a_pow_verifies_exactly_when_its_hash_has_the_zero_bits(value in id32(), zero_bits in 0u32..=300) {
        let pow = &fixture().pow;
        let solution = PowSolution { hash: pow.preimage.hash(&value), value, nonce: pow.solution.nonce };
        let found = leading_zero_bits(&solution.hash);
        let expected = if zero_bits > MAX_ZERO_BITS {
            Err(PowError::Impossible(zero_bits))
        } else if found >= zero_bits {
            Ok(())
        } else {
            Err(PowError::NotEnoughWork { required: zero_bits, found })
        };
        prop_assert_eq!(pow.preimage.verify(zero_bits, &solution), expected);
    }
}
