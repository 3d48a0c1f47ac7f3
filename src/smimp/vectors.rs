//! Cross-implementation test vectors (fixtures/vectors/): one schema shared by the
//! libsodium-made file (tools/vectors/generate.py) and the Rust-made one
//! (examples/write_vectors.rs), a checker that recomputes every entry with this
//! crate, and the deterministic Rust-side generator.
//!
//! Pure. It lives in the library, not in tests/, because the example that writes
//! Rust's side and the test that checks libsodium's side must share one schema.

use std::num::NonZeroUsize;

use serde::{Deserialize, Serialize};

use crate::smimp::address::{Address, Domain};
use crate::smimp::crypto::{
    blake2b_256, box_open, box_seal, BoxNonce, BoxPublicKey, BoxSecretKey, Hash, MasterKey, MasterPublicKey,
    SecretBoxKey, Signature,
};
use crate::smimp::device::{
    approval_hash, open_approval, pin_proof, request_hash, seal_approval_with, witness, DeviceKeys, DevicePublic,
    RequestContext, Sealed,
};
use crate::smimp::encoding::{hex_bytes, Id32};
use crate::smimp::envelope::{
    login_token_hash, Ciphertext, HashContext, ReceivedVia, SentEnvelope, ServerFields, StoredEnvelope,
    PROTOCOL_VERSION,
};
use crate::smimp::keys::{KeyKind, SignedMessageKey};
use crate::smimp::message::{Attachment, Email, MessageType, Payload};
use crate::smimp::pow::{PowInput, PowParams, PowSolution, Preimage, SolveControl};
use crate::smimp::profile::{verify_history, ProfileFields, ProfileRecord};
use crate::smimp::timestamp::Timestamp;
use crate::smimp::transcript::{Purpose, Transcript};
use crate::smimp::wire::create_session_hash;

/// A whole vector file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VectorDocument {
    pub generator: String,
    pub libsodium_version: String,
    pub keypairs: Vec<KeypairVector>,
    pub signatures: Vec<SignatureVector>,
    pub blake2b: Vec<Blake2bVector>,
    pub transcripts: Vec<TranscriptVector>,
    pub boxes: Vec<BoxVector>,
    pub secretboxes: Vec<SecretBoxVector>,
    pub profile_history: ProfileHistoryVector,
    pub message_keys: Vec<MessageKeyVector>,
    pub pow: PowVector,
    pub envelope: EnvelopeVector,
    pub device_approval: DeviceVector,
}

/// Device enrollment (docs/protocol.md §12): the request hash, the witness code, a
/// PIN proof and an approval sealed to the device's box key and signed by the master key.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceVector {
    pub address: Address,
    pub name: String,
    pub sign_seed: Id32,
    pub box_secret: Id32,
    pub device: DevicePublic,
    pub server_nonce: Id32,
    pub request_hash: Hash,
    pub witness: String,
    pub pin: String,
    pub pin_proof: Hash,
    pub request_id: Id32,
    pub master_seed: Id32,
    pub ephemeral_secret: Id32,
    /// The sealed secrets document (JSON text).
    pub plaintext: String,
    pub approval_hash: Hash,
    pub approval: Sealed,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeypairVector {
    pub seed: Id32,
    pub ed25519_public: MasterPublicKey,
    pub curve25519_public: BoxPublicKey,
    pub curve25519_secret: Id32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureVector {
    pub seed: Id32,
    #[serde(with = "hex_bytes")]
    pub message: Vec<u8>,
    pub signature: Signature,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Blake2bVector {
    #[serde(with = "hex_bytes")]
    pub input: Vec<u8>,
    pub hash: Hash,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TranscriptVector {
    pub label: String,
    pub fields: Vec<HexField>,
    #[serde(with = "hex_bytes")]
    pub bytes: Vec<u8>,
    pub hash: Hash,
}

/// One hex-encoded transcript field.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct HexField(#[serde(with = "hex_bytes")] pub Vec<u8>);

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoxVector {
    pub sender_secret: Id32,
    pub sender_public: BoxPublicKey,
    pub recipient_secret: Id32,
    pub recipient_public: BoxPublicKey,
    pub nonce: BoxNonce,
    #[serde(with = "hex_bytes")]
    pub plaintext: Vec<u8>,
    #[serde(with = "hex_bytes")]
    pub ciphertext: Vec<u8>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretBoxVector {
    pub key: Id32,
    pub nonce: BoxNonce,
    #[serde(with = "hex_bytes")]
    pub plaintext: Vec<u8>,
    #[serde(with = "hex_bytes")]
    pub ciphertext: Vec<u8>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileHistoryVector {
    pub address: Address,
    pub seeds: Vec<Id32>,
    pub history: Vec<ProfileRecord>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageKeyVector {
    pub owner_seed: Id32,
    pub address: Address,
    pub kind: KeyKind,
    pub secret: Id32,
    pub document: SignedMessageKey,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PowVector {
    pub zero_bits: u32,
    pub login_token_hash: Hash,
    pub message_field_hash: Hash,
    pub recipient: Address,
    pub message_type: String,
    pub nonce: Id32,
    pub start_value: Id32,
    pub attempts: u64,
    pub value: Id32,
    pub hash: Hash,
    pub solution: PowSolution,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvelopeVector {
    pub sender_seed: Id32,
    pub sender_address: Address,
    pub recipient_seed: Id32,
    pub recipient_address: Address,
    pub message_secret: Id32,
    pub message_key: SignedMessageKey,
    pub payload: String,
    pub login_token: Id32,
    pub zero_bits: u32,
    pub pow_nonce: Id32,
    pub pow_start_value: Id32,
    pub sent: SentEnvelope,
}

/// The outcome of checking a document: how many checks passed, and what failed.
#[derive(Debug, Default)]
pub struct CheckReport {
    pub passed: usize,
    pub failures: Vec<String>,
}

impl CheckReport {
    fn check(&mut self, what: impl FnOnce() -> String, ok: bool) {
        if ok {
            self.passed += 1;
        } else {
            self.failures.push(what());
        }
    }
}

fn one_lane() -> NonZeroUsize {
    NonZeroUsize::MIN
}

/// Recomputes every entry of `doc` with this crate and compares byte for byte.
pub fn check_document(doc: &VectorDocument) -> CheckReport {
    let mut r = CheckReport::default();
    for (i, v) in doc.keypairs.iter().enumerate() {
        let key = MasterKey::from_seed(&v.seed.0);
        r.check(|| format!("keypairs[{i}]: Ed25519 public key"), key.public() == v.ed25519_public);
        r.check(
            || format!("keypairs[{i}]: pk_to_curve25519"),
            key.public().to_curve25519().ok() == Some(v.curve25519_public),
        );
        r.check(
            || format!("keypairs[{i}]: sk_to_curve25519"),
            *key.to_curve25519().to_bytes() == v.curve25519_secret.0,
        );
    }
    for (i, v) in doc.signatures.iter().enumerate() {
        let key = MasterKey::from_seed(&v.seed.0);
        r.check(|| format!("signatures[{i}]: identical signature"), key.sign_bytes(&v.message) == v.signature);
        r.check(|| format!("signatures[{i}]: verifies"), key.public().verify_bytes(&v.message, &v.signature).is_ok());
    }
    for (i, v) in doc.blake2b.iter().enumerate() {
        r.check(|| format!("blake2b[{i}]"), blake2b_256(&v.input) == v.hash);
    }
    for (i, v) in doc.transcripts.iter().enumerate() {
        let t = v.fields.iter().fold(Transcript::with_label(v.label.as_bytes()), |t, f| t.field(&f.0));
        r.check(|| format!("transcripts[{i}]: hash"), t.hash() == v.hash);
        r.check(|| format!("transcripts[{i}]: bytes"), t.into_bytes() == v.bytes);
    }
    for (i, v) in doc.boxes.iter().enumerate() {
        let sender = BoxSecretKey::from_bytes(v.sender_secret.0);
        let recipient = BoxSecretKey::from_bytes(v.recipient_secret.0);
        r.check(
            || format!("boxes[{i}]: public keys"),
            sender.public() == v.sender_public && recipient.public() == v.recipient_public,
        );
        r.check(
            || format!("boxes[{i}]: identical ciphertext"),
            box_seal(&v.plaintext, &v.nonce, &v.recipient_public, &sender) == v.ciphertext,
        );
        r.check(
            || format!("boxes[{i}]: opens"),
            box_open(&v.ciphertext, &v.nonce, &v.sender_public, &recipient).ok().as_deref() == Some(&v.plaintext[..]),
        );
    }
    for (i, v) in doc.secretboxes.iter().enumerate() {
        let key = SecretBoxKey::from_bytes(v.key.0);
        r.check(|| format!("secretboxes[{i}]: identical ciphertext"), key.seal(&v.nonce, &v.plaintext) == v.ciphertext);
        r.check(
            || format!("secretboxes[{i}]: opens"),
            key.open(&v.nonce, &v.ciphertext).ok().as_deref() == Some(&v.plaintext[..]),
        );
    }
    check_history(&mut r, &doc.profile_history);
    for (i, v) in doc.message_keys.iter().enumerate() {
        let owner = MasterKey::from_seed(&v.owner_seed.0);
        let secret = BoxSecretKey::from_bytes(v.secret.0);
        r.check(
            || format!("message_keys[{i}]: public key"),
            secret.public() == v.document.public_key && v.document.kind == v.kind,
        );
        r.check(
            || format!("message_keys[{i}]: signature verifies"),
            v.document.verify(&v.address, &owner.public()).is_ok(),
        );
        let resigned = SignedMessageKey::sign(&owner, &v.address, v.kind, secret.public());
        r.check(|| format!("message_keys[{i}]: identical signature"), resigned == v.document);
    }
    check_pow(&mut r, &doc.pow);
    check_envelope(&mut r, &doc.envelope);
    check_device(&mut r, &doc.device_approval);
    r
}

fn check_device(r: &mut CheckReport, v: &DeviceVector) {
    let keys = DeviceKeys::from_parts(&v.sign_seed.0, v.box_secret.0);
    r.check(|| "device: public keys".into(), keys.public() == v.device);
    let hash = request_hash(&v.address, &v.name, &v.device, &v.server_nonce);
    r.check(|| "device: request hash".into(), hash == v.request_hash);
    r.check(
        || "device: witness code".into(),
        witness(&v.address, &v.name, &v.device, &v.server_nonce).as_str() == v.witness,
    );
    r.check(|| "device: PIN proof".into(), pin_proof(&v.pin, &hash) == v.pin_proof);
    let context = RequestContext {
        address: &v.address,
        request_id: &v.request_id,
        name: &v.name,
        device: &v.device,
        server_nonce: &v.server_nonce,
    };
    r.check(|| "device: approval hash".into(), approval_hash(&context, &v.approval) == v.approval_hash);
    let master = MasterKey::from_seed(&v.master_seed.0);
    let opened = open_approval(&context, &v.approval, keys.box_key(), &master.public());
    r.check(|| format!("device: the approval opens and verifies ({:?})", opened.as_ref().err()), opened.is_ok());
    let plain = box_open(&v.approval.ciphertext, &v.approval.nonce, &v.approval.ephemeral_key, keys.box_key());
    r.check(|| "device: the sealed plaintext".into(), plain.ok().as_deref() == Some(v.plaintext.as_bytes()));
    let ephemeral = BoxSecretKey::from_bytes(v.ephemeral_secret.0);
    let resealed = seal_approval_with(
        &context,
        v.plaintext.as_bytes(),
        &ephemeral,
        v.approval.nonce,
        &master,
        v.approval.issued_at,
    );
    r.check(|| "device: resealing gives an identical approval".into(), resealed == v.approval);
}

fn check_history(r: &mut CheckReport, v: &ProfileHistoryVector) {
    let verified = verify_history(&v.address, &v.history);
    r.check(|| format!("profile_history: verifies ({:?})", verified.as_ref().err()), verified.is_ok());
    let Ok(history) = verified else { return };
    let keys: Vec<MasterPublicKey> = v.seeds.iter().map(|s| MasterKey::from_seed(&s.0).public()).collect();
    r.check(|| "profile_history: first key is seeds[0]".into(), keys.first() == Some(&history.first_key()));
    r.check(
        || "profile_history: current key is the last seed (a rotation)".into(),
        keys.last() == Some(&history.current_key()),
    );
    r.check(|| "profile_history: contains a key rotation".into(), history.first_key() != history.current_key());
    for (i, pair) in v.history.windows(2).enumerate() {
        let mut altered = v.history.clone();
        altered[i + 1].signed_hash = pair[0].signed_hash;
        r.check(
            || format!("profile_history: a swapped signature in record {} fails", i + 1),
            verify_history(&v.address, &altered).is_err(),
        );
    }
}

fn check_pow(r: &mut CheckReport, v: &PowVector) {
    let input = PowInput {
        login_token_hash: &v.login_token_hash,
        message_field_hash: &v.message_field_hash,
        recipient: &v.recipient,
        message_type: &v.message_type,
    };
    let pre = Preimage::new(&input, &v.nonce);
    let expected = PowSolution { hash: v.hash, value: v.value, nonce: v.nonce };
    r.check(|| "pow: solution string".into(), v.solution == expected);
    r.check(|| "pow: verifies".into(), pre.verify(v.zero_bits, &v.solution).is_ok());
    let control = SolveControl::default();
    let found = pre.solve(v.zero_bits, &v.start_value, one_lane(), &control);
    r.check(
        || format!("pow: the same first solution from start_value ({found:?})"),
        found.as_ref().ok() == Some(&expected),
    );
    let attempts = control.attempts.load(std::sync::atomic::Ordering::Relaxed);
    r.check(|| format!("pow: attempts {attempts} != {}", v.attempts), attempts == v.attempts);
}

fn check_envelope(r: &mut CheckReport, v: &EnvelopeVector) {
    let sender = MasterKey::from_seed(&v.sender_seed.0);
    let recipient = MasterKey::from_seed(&v.recipient_seed.0);
    let secret = BoxSecretKey::from_bytes(v.message_secret.0);
    let token_hash = login_token_hash(&v.login_token);
    let params = PowParams { zero_bits: v.zero_bits, nonce: v.pow_nonce };
    r.check(
        || "envelope: message key verifies".into(),
        v.message_key.verify(&v.recipient_address, &recipient.public()).is_ok(),
    );
    let stored = StoredEnvelope {
        sent: v.sent.clone(),
        server: ServerFields {
            recipient: v.recipient_address.clone(),
            sender: v.sender_address.clone(),
            sender_public_key: sender.public(),
            received_at: Timestamp::from_unix(0).expect("the epoch is a valid timestamp"),
            pow_params: Some(params),
            message_id: Id32([0; 32]),
            login_token_hash: token_hash,
            received_via: ReceivedVia::SmimpClient,
            read: false,
            extensions_data: None,
            protocol_version: PROTOCOL_VERSION.into(),
        },
    };
    let opened = stored.open(&sender.public(), &recipient.public(), &secret);
    r.check(
        || format!("envelope: opens ({:?})", opened.as_ref().err()),
        opened.as_deref().ok() == Some(v.payload.as_bytes()),
    );
    r.check(
        || "envelope: payload is a valid email document".into(),
        Payload::parse(&MessageType::Email, v.payload.as_bytes()).is_ok(),
    );
    let context =
        HashContext { sender: &v.sender_address, recipient: &v.recipient_address, login_token_hash: &token_hash };
    let sealed = Ciphertext::seal(
        v.payload.as_bytes(),
        v.sent.message_type.clone(),
        v.sent.nonce,
        &v.message_key.public_key,
        &sender,
    );
    let pow = Preimage::new(&sealed.pow_input(&context), &v.pow_nonce).solve(
        v.zero_bits,
        &v.pow_start_value,
        one_lane(),
        &SolveControl::default(),
    );
    let resealed = pow.map(|pow| sealed.into_envelope(&sender, &context, Some(pow)));
    r.check(|| "envelope: resealing gives an identical envelope".into(), resealed.as_ref().ok() == Some(&v.sent));
}

/// Deterministic bytes for the Rust-side vectors, named by purpose.
fn material(name: &str) -> [u8; 32] {
    Transcript::with_label(b"smimp-gateway/rust-vectors").field(name).hash().0
}

fn nonce(name: &str) -> BoxNonce {
    let mut out = [0u8; 24];
    out.copy_from_slice(&material(name)[..24]);
    BoxNonce(out)
}

fn long_input(name: &str, len: usize) -> Vec<u8> {
    (0..len.div_ceil(32)).flat_map(|i| material(&format!("{name} {i}"))).take(len).collect()
}

fn at(text: &str) -> Timestamp {
    Timestamp::parse(text).expect("fixed timestamps are valid")
}

fn rust_device() -> DeviceVector {
    let address = Address::parse("frank#example.net").expect("fixed address");
    let name = "frank's laptop".to_string();
    let (sign_seed, box_secret) = (material("device sign seed"), material("device box secret"));
    let device = DeviceKeys::from_parts(&sign_seed, box_secret).public();
    let server_nonce = Id32(material("device server nonce"));
    let request_id = Id32(material("device request id"));
    let hash = request_hash(&address, &name, &device, &server_nonce);
    let pin = "ABCD-EFGH-JKLM-NPQR".to_string();
    let master_seed = material("device master seed");
    let master = MasterKey::from_seed(&master_seed);
    let plaintext = format!(
        r#"{{"master_seed":"{}","previous_master_seeds":[],"message_keys":[{{"secret":"{}","kind":"nonephemeral","created_at":1,"retired_at":null}}],"storage_key":"{}","devices":[]}}"#,
        hex::encode(master_seed),
        hex::encode(material("device message key")),
        hex::encode(material("device storage key"))
    );
    let ephemeral_secret = material("device ephemeral secret");
    let context = RequestContext {
        address: &address,
        request_id: &request_id,
        name: &name,
        device: &device,
        server_nonce: &server_nonce,
    };
    let ephemeral = BoxSecretKey::from_bytes(ephemeral_secret);
    let approval = seal_approval_with(
        &context,
        plaintext.as_bytes(),
        &ephemeral,
        nonce("device box nonce"),
        &master,
        1_796_000_000,
    );
    DeviceVector {
        witness: witness(&address, &name, &device, &server_nonce).to_string(),
        pin_proof: pin_proof(&pin, &hash),
        approval_hash: approval_hash(&context, &approval),
        address,
        name,
        sign_seed: Id32(sign_seed),
        box_secret: Id32(box_secret),
        device,
        server_nonce,
        request_hash: hash,
        pin,
        request_id,
        master_seed: Id32(master_seed),
        ephemeral_secret: Id32(ephemeral_secret),
        plaintext,
        approval,
    }
}

/// Builds the Rust side of the vectors: same schema, independent material.
pub fn generate_rust_document() -> VectorDocument {
    let seeds: Vec<[u8; 32]> = (0..4).map(|i| material(&format!("seed {i}"))).collect();
    VectorDocument {
        generator: "examples/write_vectors.rs".into(),
        libsodium_version: "none: made by smimp-gateway (ed25519-dalek, crypto_box, crypto_secretbox, blake2b_simd)"
            .into(),
        keypairs: rust_keypairs(&seeds),
        signatures: rust_signatures(&seeds[0]),
        blake2b: rust_blake2b(),
        transcripts: rust_transcripts(),
        boxes: rust_boxes(),
        secretboxes: rust_secretboxes(),
        profile_history: rust_history(),
        message_keys: rust_message_keys(),
        pow: rust_pow(),
        envelope: rust_envelope(),
        device_approval: rust_device(),
    }
}

fn rust_keypairs(seeds: &[[u8; 32]]) -> Vec<KeypairVector> {
    seeds
        .iter()
        .map(|seed| {
            let key = MasterKey::from_seed(seed);
            KeypairVector {
                seed: Id32(*seed),
                ed25519_public: key.public(),
                curve25519_public: key.public().to_curve25519().expect("generated keys are valid"),
                curve25519_secret: Id32(*key.to_curve25519().to_bytes()),
            }
        })
        .collect()
}

fn rust_signatures(seed: &[u8; 32]) -> Vec<SignatureVector> {
    let (server, address, token) = login_inputs();
    let login = create_session_hash(&server, &address, &token).as_bytes().to_vec();
    let messages = [Vec::new(), b"abc".to_vec(), long_input("signed", 1000), login];
    messages
        .iter()
        .map(|m| SignatureVector {
            seed: Id32(*seed),
            message: m.clone(),
            signature: MasterKey::from_seed(seed).sign_bytes(m),
        })
        .collect()
}

fn rust_blake2b() -> Vec<Blake2bVector> {
    [Vec::new(), b"abc".to_vec(), long_input("hash", 128), long_input("hash", 200), long_input("hash", 1000)]
        .into_iter()
        .map(|input| Blake2bVector { hash: blake2b_256(&input), input })
        .collect()
}

fn rust_transcripts() -> Vec<TranscriptVector> {
    let mut out: Vec<TranscriptVector> =
        [("SMIMP-v0.1/rust-none", vec![]), ("SMIMP-v0.1/rust-two", vec![b"alice#example.org".to_vec(), Vec::new()])]
            .into_iter()
            .map(|(label, fields)| {
                let t = fields.iter().fold(Transcript::with_label(label.as_bytes()), |t, f| t.field(f));
                TranscriptVector {
                    label: label.into(),
                    fields: fields.into_iter().map(HexField).collect(),
                    hash: t.hash(),
                    bytes: t.into_bytes(),
                }
            })
            .collect();
    out.push(login_transcript());
    out
}

/// The login as the client signs it: the bytes from the fields docs/protocol.md §3
/// lists, the hash from [`create_session_hash`] itself, so libsodium checks that the
/// code hashes exactly those fields.
fn login_transcript() -> TranscriptVector {
    let (server, address, token) = login_inputs();
    let fields =
        vec![server.as_str().as_bytes().to_vec(), address.as_str().as_bytes().to_vec(), token.as_bytes().to_vec()];
    let label = Purpose::CreateSession.label();
    let t = fields.iter().fold(Transcript::with_label(label.as_bytes()), |t, f| t.field(f));
    TranscriptVector {
        label: label.into(),
        fields: fields.into_iter().map(HexField).collect(),
        hash: create_session_hash(&server, &address, &token),
        bytes: t.into_bytes(),
    }
}

/// A login by alice of example.org at example.net (a remote user logging in where
/// the recipient is).
fn login_inputs() -> (Domain, Address, Id32) {
    let server = Domain::parse("example.net").expect("fixed domain");
    let address = Address::parse("alice#example.org").expect("fixed address");
    (server, address, Id32(material("login token")))
}

fn rust_boxes() -> Vec<BoxVector> {
    [Vec::new(), b"hello".to_vec(), long_input("box", 1000)]
        .into_iter()
        .enumerate()
        .map(|(i, plaintext)| {
            let sender = BoxSecretKey::from_bytes(material(&format!("box sender {i}")));
            let recipient = BoxSecretKey::from_bytes(material(&format!("box recipient {i}")));
            let nonce = nonce(&format!("box nonce {i}"));
            BoxVector {
                sender_secret: Id32(*sender.to_bytes()),
                sender_public: sender.public(),
                recipient_secret: Id32(*recipient.to_bytes()),
                recipient_public: recipient.public(),
                ciphertext: box_seal(&plaintext, &nonce, &recipient.public(), &sender),
                nonce,
                plaintext,
            }
        })
        .collect()
}

fn rust_secretboxes() -> Vec<SecretBoxVector> {
    [Vec::new(), long_input("secretbox", 300)]
        .into_iter()
        .enumerate()
        .map(|(i, plaintext)| {
            let key = SecretBoxKey::from_bytes(material(&format!("secretbox key {i}")));
            let nonce = nonce(&format!("secretbox nonce {i}"));
            SecretBoxVector { key: Id32(*key.to_bytes()), ciphertext: key.seal(&nonce, &plaintext), nonce, plaintext }
        })
        .collect()
}

fn rust_history() -> ProfileHistoryVector {
    let address = Address::parse("dave#example.net").expect("fixed address");
    let first = MasterKey::from_seed(&material("history key 0"));
    let second = MasterKey::from_seed(&material("history key 1"));
    let r0 = ProfileRecord::initial(&first, &address, ProfileFields::default(), at("2026-11-02 08:00:00"));
    let h = verify_history(&address, std::slice::from_ref(&r0)).expect("fresh record verifies");
    let named = ProfileFields {
        name: Some("Dave Ünver".into()),
        website: Some("https://dave.example.net/".into()),
        profiles: vec!["https://social.example/@dave".into()],
        additional_data: None,
    };
    let r1 = ProfileRecord::next(h.latest(), &first, first.public(), named.clone(), at("2026-11-03 08:00:00"))
        .expect("signer is current");
    let h = h.extend(r1.clone()).expect("extends");
    let r2 = ProfileRecord::next(h.latest(), &first, second.public(), named, at("2026-11-04 08:00:00"))
        .expect("signer is current");
    ProfileHistoryVector { address, seeds: vec![Id32(*first.seed()), Id32(*second.seed())], history: vec![r0, r1, r2] }
}

fn rust_message_keys() -> Vec<MessageKeyVector> {
    let address = Address::parse("erin#example.net").expect("fixed address");
    let owner_seed = material("message key owner");
    let owner = MasterKey::from_seed(&owner_seed);
    [KeyKind::Ephemeral, KeyKind::Nonephemeral]
        .into_iter()
        .map(|kind| {
            let secret = BoxSecretKey::from_bytes(material(&format!("message key {}", kind.as_str())));
            MessageKeyVector {
                owner_seed: Id32(owner_seed),
                address: address.clone(),
                kind,
                secret: Id32(*secret.to_bytes()),
                document: SignedMessageKey::sign(&owner, &address, kind, secret.public()),
            }
        })
        .collect()
}

fn rust_pow() -> PowVector {
    let login_token_hash = login_token_hash(&Id32(material("pow login token")));
    let message_field_hash = blake2b_256(b"rust pow ciphertext");
    let recipient = Address::parse("erin#example.net").expect("fixed address");
    let nonce = Id32(material("pow nonce"));
    let mut start_value = Id32(material("pow start"));
    start_value.0[24..].copy_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xf0, 0x00]);
    let zero_bits = 13;
    let input = PowInput {
        login_token_hash: &login_token_hash,
        message_field_hash: &message_field_hash,
        recipient: &recipient,
        message_type: "email",
    };
    let control = SolveControl::default();
    let solution = Preimage::new(&input, &nonce)
        .solve(zero_bits, &start_value, one_lane(), &control)
        .expect("an uncancelled search finds a solution");
    PowVector {
        zero_bits,
        login_token_hash,
        message_field_hash,
        recipient: recipient.clone(),
        message_type: "email".into(),
        nonce,
        start_value,
        attempts: control.attempts.load(std::sync::atomic::Ordering::Relaxed),
        value: solution.value,
        hash: solution.hash,
        solution,
    }
}

fn rust_envelope() -> EnvelopeVector {
    let sender_address = Address::parse("dave#example.net").expect("fixed address");
    let recipient_address = Address::parse("erin#example.net").expect("fixed address");
    let sender_seed = material("envelope sender");
    let recipient_seed = material("envelope recipient");
    let sender = MasterKey::from_seed(&sender_seed);
    let recipient = MasterKey::from_seed(&recipient_seed);
    let secret = BoxSecretKey::from_bytes(material("envelope message key"));
    let message_key = SignedMessageKey::sign(&recipient, &recipient_address, KeyKind::Nonephemeral, secret.public());
    let email = Email {
        to: vec![recipient_address.clone()],
        cc: vec![Address::parse("frank#example.com").expect("fixed address")],
        subject: "Grüße – minutes".into(),
        thread_id: Id32(material("envelope thread")),
        reply_to_message_id: Some(Id32(material("envelope parent"))),
        date_sent: at("2026-11-05 09:30:00"),
        body: "Minutes:\n\n1. *budget*\n2. plans\n".into(),
        signature_text: None,
        attachments: vec![Attachment {
            filename: "minutes.csv".into(),
            content_type: "text/csv".into(),
            content: b"item,owner\nbudget,dave\n".to_vec(),
            content_id: None,
            inline: false,
        }],
        extensions_data: None,
        reply_to: Some(sender_address.clone()),
        auto_reply_address: None,
    };
    let payload = String::from_utf8(Payload::Email(Box::new(email)).to_bytes()).expect("JSON is UTF-8");
    let login_token = Id32(material("envelope login token"));
    let token_hash = login_token_hash(&login_token);
    let (zero_bits, pow_nonce, pow_start_value) =
        (9, Id32(material("envelope pow nonce")), Id32(material("envelope pow start")));
    let context = HashContext { sender: &sender_address, recipient: &recipient_address, login_token_hash: &token_hash };
    let sealed =
        Ciphertext::seal(payload.as_bytes(), MessageType::Email, nonce("envelope nonce"), &secret.public(), &sender);
    let pow = Preimage::new(&sealed.pow_input(&context), &pow_nonce)
        .solve(zero_bits, &pow_start_value, one_lane(), &SolveControl::default())
        .expect("an uncancelled search finds a solution");
    let sent = sealed.into_envelope(&sender, &context, Some(pow));
    EnvelopeVector {
        sender_seed: Id32(sender_seed),
        sender_address,
        recipient_seed: Id32(recipient_seed),
        recipient_address,
        message_secret: Id32(*secret.to_bytes()),
        message_key,
        payload,
        login_token,
        zero_bits,
        pow_nonce,
        pow_start_value,
        sent,
    }
}

/// A one-line summary for the example's output.
pub fn describe(doc: &VectorDocument) -> String {
    format!(
        "{} keypairs, {} signatures, {} boxes, a history of {} records, an envelope of {} bytes",
        doc.keypairs.len(),
        doc.signatures.len(),
        doc.boxes.len(),
        doc.profile_history.history.len(),
        doc.envelope.sent.message.len(),
    )
}

/// The committed text form: pretty JSON with a final newline.
pub fn render(doc: &VectorDocument) -> String {
    let mut text = serde_json::to_string_pretty(doc).expect("vector documents always serialise");
    text.push('\n');
    text
}
