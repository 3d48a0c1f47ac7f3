//! The envelope: sealing a payload for a recipient's message key, the signed
//! message hash, the server-added fields, and opening with every check the spec
//! requires before any decryption (docs/protocol.md §3.2, §6; spec "Send Message").
//!
//! Pure: the nonce and the PoW are supplied by the caller.

use serde::{Deserialize, Serialize};

use crate::smimp::address::Address;
use crate::smimp::crypto::{
    box_open, box_seal, BoxNonce, BoxPublicKey, BoxSecretKey, Hash, MasterKey, MasterPublicKey, Signature,
};
use crate::smimp::encoding::{base64_bytes, Id32};
use crate::smimp::keys::is_master_key;
use crate::smimp::message::MessageType;
use crate::smimp::pow::{PowError, PowInput, PowParams, PowSolution, Preimage};
use crate::smimp::timestamp::Timestamp;
use crate::smimp::transcript::{Purpose, Transcript};

/// The only algorithm of protocol version 0.1.
pub const ALGORITHM: &str = "curve25519xsalsa20poly1305";
/// The protocol version the server records in stored envelopes.
pub const PROTOCOL_VERSION: &str = "0.1";

/// Why an envelope is refused. Each variant is a reason to show the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("the algorithm {0:?} is not {ALGORITHM}")]
    UnknownAlgorithm(String),
    #[error("the sender's key in the envelope is not the key their verified history names")]
    SenderKeyMismatch,
    #[error("the message is encrypted to the recipient's master key, which is for signing only")]
    EncryptedToMasterKey,
    #[error("the message is encrypted to a message key this account does not hold")]
    UnknownMessageKey,
    #[error("the message hash does not match the envelope's contents")]
    HashMismatch,
    #[error("the message hash is not signed by the sender")]
    BadSignature,
    #[error("the proof of work is invalid: {0}")]
    ProofOfWork(#[from] PowError),
    #[error("the proof of work is missing although the server required one")]
    MissingProofOfWork,
    #[error("the sender's key is not a valid Ed25519 key")]
    InvalidSenderKey,
    #[error("decryption failed: the message was altered or not sealed for this key")]
    DecryptionFailed,
}

/// What the sender posts to `send_message/{address}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentEnvelope {
    #[serde(with = "base64_bytes")]
    pub message: Vec<u8>,
    pub message_type: MessageType,
    pub algorithm: String,
    pub message_public_key: BoxPublicKey,
    pub nonce: BoxNonce,
    pub proof_of_work: Option<PowSolution>,
    pub message_hash: Hash,
    pub message_signature: Signature,
}

/// How a message entered the system (spec "Received Via").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReceivedVia {
    SmimpClient,
    SmtpBridge,
    ImapBridge,
    ImportApi,
}

/// Data only the recipient can read, under a secretbox key it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SealedData {
    pub nonce: BoxNonce,
    #[serde(with = "base64_bytes")]
    pub ciphertext: Vec<u8>,
}

/// The fields the server adds when it stores a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerFields {
    pub recipient: Address,
    pub sender: Address,
    pub sender_public_key: MasterPublicKey,
    pub received_at: Timestamp,
    pub pow_params: Option<PowParams>,
    pub message_id: Id32,
    pub login_token_hash: Hash,
    pub received_via: ReceivedVia,
    pub read: bool,
    pub extensions_data: Option<SealedData>,
    pub protocol_version: String,
}

/// A stored envelope as `GET message/{id}` returns it: one flat object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredEnvelope {
    #[serde(flatten)]
    pub sent: SentEnvelope,
    #[serde(flatten)]
    pub server: ServerFields,
}

/// Who sent what to whom in which session: the context the message hash binds.
#[derive(Debug, Clone, Copy)]
pub struct HashContext<'a> {
    pub sender: &'a Address,
    pub recipient: &'a Address,
    pub login_token_hash: &'a Hash,
}

/// The hash of a session's login token, which envelopes and PoW bind to.
pub fn login_token_hash(token: &Id32) -> Hash {
    Transcript::new(Purpose::LoginToken).field(token.as_bytes()).hash()
}

/// The hash of the encrypted message field.
pub fn message_field_hash(ciphertext: &[u8]) -> Hash {
    Transcript::new(Purpose::MessageField).field(ciphertext).hash()
}

/// An encrypted payload waiting for its PoW and signature.
#[derive(Debug, Clone)]
pub struct Ciphertext {
    pub bytes: Vec<u8>,
    pub nonce: BoxNonce,
    pub message_public_key: BoxPublicKey,
    pub message_type: MessageType,
    pub field_hash: Hash,
}

impl Ciphertext {
    /// Encrypts `payload` from `sender` (its converted master key) to `message_key`.
    pub fn seal(
        payload: &[u8],
        message_type: MessageType,
        nonce: BoxNonce,
        message_key: &BoxPublicKey,
        sender: &MasterKey,
    ) -> Self {
        let bytes = box_seal(payload, &nonce, message_key, &sender.to_curve25519());
        Self { field_hash: message_field_hash(&bytes), bytes, nonce, message_public_key: *message_key, message_type }
    }

    /// The PoW inputs for this ciphertext.
    pub fn pow_input<'a>(&'a self, context: &HashContext<'a>) -> PowInput<'a> {
        PowInput {
            login_token_hash: context.login_token_hash,
            message_field_hash: &self.field_hash,
            recipient: context.recipient,
            message_type: self.message_type.as_str(),
        }
    }

    /// Signs the message hash and produces the envelope to send.
    pub fn into_envelope(
        self,
        sender: &MasterKey,
        context: &HashContext<'_>,
        pow: Option<PowSolution>,
    ) -> SentEnvelope {
        let mut envelope = SentEnvelope {
            message: self.bytes,
            message_type: self.message_type,
            algorithm: ALGORITHM.to_string(),
            message_public_key: self.message_public_key,
            nonce: self.nonce,
            proof_of_work: pow,
            message_hash: Hash([0; 32]),
            message_signature: Signature([0; 64]),
        };
        envelope.message_hash = message_hash(&envelope, &self.field_hash, context);
        envelope.message_signature = sender.sign(&envelope.message_hash);
        envelope
    }
}

/// The message hash (docs/protocol.md §3): what the sender signs.
pub fn message_hash(envelope: &SentEnvelope, field_hash: &Hash, context: &HashContext<'_>) -> Hash {
    let pow = envelope.proof_of_work.map(|p| p.to_string()).unwrap_or_default();
    Transcript::new(Purpose::MessageHash)
        .field(context.sender.as_str())
        .field(context.recipient.as_str())
        .field(envelope.message_type.as_str())
        .field(&envelope.algorithm)
        .field(envelope.message_public_key.as_bytes())
        .field(envelope.nonce.as_bytes())
        .field(field_hash.as_bytes())
        .field(pow)
        .field(context.login_token_hash.as_bytes())
        .hash()
}

impl SentEnvelope {
    /// Checks the algorithm, the message hash and the sender's signature; the server
    /// runs this on `send_message`, the recipient before opening. Returns the
    /// message field hash for the PoW check.
    pub fn verify_signature(
        &self,
        sender_key: &MasterPublicKey,
        context: &HashContext<'_>,
    ) -> Result<Hash, EnvelopeError> {
        if self.algorithm != ALGORITHM {
            return Err(EnvelopeError::UnknownAlgorithm(self.algorithm.clone()));
        }
        let field_hash = message_field_hash(&self.message);
        if message_hash(self, &field_hash, context) != self.message_hash {
            return Err(EnvelopeError::HashMismatch);
        }
        sender_key.verify(&self.message_hash, &self.message_signature).map_err(|_| EnvelopeError::BadSignature)?;
        Ok(field_hash)
    }

    /// Checks the PoW against the issued parameters (none required when `zero_bits` is 0).
    pub fn verify_pow(
        &self,
        field_hash: &Hash,
        context: &HashContext<'_>,
        params: &PowParams,
    ) -> Result<(), EnvelopeError> {
        let input = PowInput {
            login_token_hash: context.login_token_hash,
            message_field_hash: field_hash,
            recipient: context.recipient,
            message_type: self.message_type.as_str(),
        };
        match &self.proof_of_work {
            Some(solution) => Ok(Preimage::new(&input, &params.nonce).verify(params.zero_bits, solution)?),
            None if params.zero_bits == 0 => Ok(()),
            None => Err(EnvelopeError::MissingProofOfWork),
        }
    }
}

/// An envelope whose algorithm, message hash and signature were checked against one
/// sender key: what opening requires. Made only by [`StoredEnvelope::check_signature`]
/// and [`check_signatures`], so nothing is decrypted unchecked.
#[derive(Debug, Clone)]
pub struct Checked {
    sender_key: MasterPublicKey,
    message_hash: Hash,
    field_hash: Hash,
}

/// A sender key with its Curve25519 form, converted once (a sync computes it once per
/// sender rather than once per message).
#[derive(Debug, Clone)]
pub struct SenderCurve {
    key: MasterPublicKey,
    curve: BoxPublicKey,
}

impl SenderCurve {
    /// The key and its conversion; refused for a key that is no valid Ed25519 point.
    pub fn of(key: &MasterPublicKey) -> Result<Self, EnvelopeError> {
        let curve = key.to_curve25519().map_err(|_| EnvelopeError::InvalidSenderKey)?;
        Ok(Self { key: *key, curve })
    }
}

impl StoredEnvelope {
    fn context(&self) -> HashContext<'_> {
        HashContext {
            sender: &self.server.sender,
            recipient: &self.server.recipient,
            login_token_hash: &self.server.login_token_hash,
        }
    }

    /// The algorithm and the message hash; the message field hash.
    fn check_hash(&self) -> Result<Hash, EnvelopeError> {
        let sent = &self.sent;
        if sent.algorithm != ALGORITHM {
            return Err(EnvelopeError::UnknownAlgorithm(sent.algorithm.clone()));
        }
        let field_hash = message_field_hash(&sent.message);
        if message_hash(sent, &field_hash, &self.context()) != sent.message_hash {
            return Err(EnvelopeError::HashMismatch);
        }
        Ok(field_hash)
    }

    /// Checks the algorithm, the message hash and the signature by `sender_key`.
    pub fn check_signature(&self, sender_key: &MasterPublicKey) -> Result<Checked, EnvelopeError> {
        let field_hash = self.check_hash()?;
        let sent = &self.sent;
        sender_key.verify(&sent.message_hash, &sent.message_signature).map_err(|_| EnvelopeError::BadSignature)?;
        Ok(Checked { sender_key: *sender_key, message_hash: sent.message_hash, field_hash })
    }

    /// Opens a stored message. `sender_key` must come from the sender's verified,
    /// pinned history, never from the envelope; `message_secret` is the recipient's
    /// secret for `sent.message_public_key`. Nothing is decrypted before every check passes.
    pub fn open(
        &self,
        sender_key: &MasterPublicKey,
        recipient_master: &MasterPublicKey,
        message_secret: &BoxSecretKey,
    ) -> Result<Vec<u8>, EnvelopeError> {
        self.check_keys(sender_key, recipient_master, message_secret)?;
        let checked = self.check_signature(sender_key)?;
        self.open_checked(&checked, &SenderCurve::of(sender_key)?, recipient_master, message_secret)
    }

    /// Opens a message whose signature was checked (alone or in a batch): the same
    /// checks as [`StoredEnvelope::open`], with the sender's converted key given.
    pub fn open_checked(
        &self,
        checked: &Checked,
        sender: &SenderCurve,
        recipient_master: &MasterPublicKey,
        message_secret: &BoxSecretKey,
    ) -> Result<Vec<u8>, EnvelopeError> {
        self.check_keys(&checked.sender_key, recipient_master, message_secret)?;
        let sent = &self.sent;
        if checked.message_hash != sent.message_hash {
            return Err(EnvelopeError::HashMismatch);
        }
        if sender.key != checked.sender_key {
            return Err(EnvelopeError::SenderKeyMismatch);
        }
        if let Some(params) = &self.server.pow_params {
            sent.verify_pow(&checked.field_hash, &self.context(), params)?;
        }
        box_open(&sent.message, &sent.nonce, &sender.curve, message_secret).map_err(|_| EnvelopeError::DecryptionFailed)
    }

    /// The key checks before any signature: the sender key is the envelope's, the
    /// message is not sealed to the master key, and the secret is the message key's.
    pub fn check_keys(
        &self,
        sender_key: &MasterPublicKey,
        recipient_master: &MasterPublicKey,
        message_secret: &BoxSecretKey,
    ) -> Result<(), EnvelopeError> {
        let sent = &self.sent;
        if &self.server.sender_public_key != sender_key {
            return Err(EnvelopeError::SenderKeyMismatch);
        }
        if is_master_key(&sent.message_public_key, recipient_master) {
            return Err(EnvelopeError::EncryptedToMasterKey);
        }
        if message_secret.public() != sent.message_public_key {
            return Err(EnvelopeError::UnknownMessageKey);
        }
        Ok(())
    }
}

/// Checks many envelopes' hashes and signatures, each against its sender key: one
/// batch verification when every signature is good, and one by one, to say which
/// failed, when the batch does not pass. The answers are in the order given.
pub fn check_signatures(items: &[(&StoredEnvelope, &MasterPublicKey)]) -> Vec<Result<Checked, EnvelopeError>> {
    let hashed: Vec<Result<Hash, EnvelopeError>> = items.iter().map(|(envelope, _)| envelope.check_hash()).collect();
    let batch: Vec<(&MasterPublicKey, &Hash, &Signature)> = items
        .iter()
        .zip(&hashed)
        .filter(|(_, hash)| hash.is_ok())
        .map(|((envelope, key), _)| (*key, &envelope.sent.message_hash, &envelope.sent.message_signature))
        .collect();
    if batch.len() < 2 || MasterPublicKey::verify_batch(&batch).is_err() {
        return items.iter().map(|(envelope, key)| envelope.check_signature(key)).collect();
    }
    items
        .iter()
        .zip(hashed)
        .map(|((envelope, key), field_hash)| {
            Ok(Checked { sender_key: **key, message_hash: envelope.sent.message_hash, field_hash: field_hash? })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smimp::pow::SolveControl;
    use rand_core::OsRng;
    use std::num::NonZeroUsize;

    struct World {
        alice: Address,
        bob: Address,
        alice_key: MasterKey,
        bob_key: MasterKey,
        bob_message: BoxSecretKey,
        token_hash: Hash,
        params: PowParams,
    }

    fn world() -> World {
        World {
            alice: Address::parse("alice#example.org").unwrap(),
            bob: Address::parse("bob#example.org").unwrap(),
            alice_key: MasterKey::generate(&mut OsRng),
            bob_key: MasterKey::generate(&mut OsRng),
            bob_message: BoxSecretKey::generate(&mut OsRng),
            token_hash: login_token_hash(&Id32::random(&mut OsRng)),
            params: PowParams { zero_bits: 6, nonce: Id32::random(&mut OsRng) },
        }
    }

    fn stored(w: &World, payload: &[u8]) -> StoredEnvelope {
        let context = HashContext { sender: &w.alice, recipient: &w.bob, login_token_hash: &w.token_hash };
        let sealed = Ciphertext::seal(
            payload,
            MessageType::Email,
            BoxNonce::random(&mut OsRng),
            &w.bob_message.public(),
            &w.alice_key,
        );
        let pow = Preimage::new(&sealed.pow_input(&context), &w.params.nonce)
            .solve(
                w.params.zero_bits,
                &Id32::random(&mut OsRng),
                NonZeroUsize::new(1).unwrap(),
                &SolveControl::default(),
            )
            .unwrap();
        let sent = sealed.into_envelope(&w.alice_key, &context, Some(pow));
        StoredEnvelope {
            sent,
            server: ServerFields {
                recipient: w.bob.clone(),
                sender: w.alice.clone(),
                sender_public_key: w.alice_key.public(),
                received_at: Timestamp::parse("2026-11-22 12:00:00").unwrap(),
                pow_params: Some(w.params),
                message_id: Id32::random(&mut OsRng),
                login_token_hash: w.token_hash,
                received_via: ReceivedVia::SmimpClient,
                read: false,
                extensions_data: None,
                protocol_version: PROTOCOL_VERSION.into(),
            },
        }
    }

    #[test]
    fn sealed_messages_open_for_the_recipient() {
        let w = world();
        let envelope = stored(&w, b"{\"hello\":1}");
        let opened = envelope.open(&w.alice_key.public(), &w.bob_key.public(), &w.bob_message).unwrap();
        assert_eq!(opened, b"{\"hello\":1}");
        let json = serde_json::to_string(&envelope).unwrap();
        assert_eq!(serde_json::from_str::<StoredEnvelope>(&json).unwrap(), envelope);
    }

    #[test]
    fn a_batch_check_gives_each_envelope_the_verdict_it_gets_alone() {
        let w = world();
        let mut envelopes: Vec<StoredEnvelope> = (0..6).map(|n| stored(&w, format!("m{n}").as_bytes())).collect();
        let key = w.alice_key.public();
        let all_good: Vec<(&StoredEnvelope, &MasterPublicKey)> = envelopes.iter().map(|e| (e, &key)).collect();
        for (checked, (envelope, _)) in check_signatures(&all_good).iter().zip(&all_good) {
            let checked = checked.as_ref().unwrap();
            let sender = SenderCurve::of(&key).unwrap();
            envelope.open_checked(checked, &sender, &w.bob_key.public(), &w.bob_message).unwrap();
        }
        envelopes[2].sent.message_signature.0[0] ^= 1;
        envelopes[4].sent.message_public_key = BoxSecretKey::generate(&mut OsRng).public();
        let mixed: Vec<(&StoredEnvelope, &MasterPublicKey)> = envelopes.iter().map(|e| (e, &key)).collect();
        let verdicts: Vec<Result<(), EnvelopeError>> =
            check_signatures(&mixed).into_iter().map(|r| r.map(|_| ())).collect();
        let alone: Vec<Result<(), EnvelopeError>> =
            envelopes.iter().map(|e| e.check_signature(&key).map(|_| ())).collect();
        assert_eq!(verdicts, alone);
        assert_eq!(verdicts[2], Err(EnvelopeError::BadSignature));
        assert_eq!(verdicts[4], Err(EnvelopeError::HashMismatch));
        assert!(verdicts.iter().enumerate().all(|(n, v)| v.is_ok() == (n != 2 && n != 4)));
    }

    #[test]
    fn a_check_made_for_one_envelope_opens_no_other() {
        let w = world();
        let (first, second) = (stored(&w, b"one"), stored(&w, b"two"));
        let key = w.alice_key.public();
        let checked = first.check_signature(&key).unwrap();
        let sender = SenderCurve::of(&key).unwrap();
        assert_eq!(
            second.open_checked(&checked, &sender, &w.bob_key.public(), &w.bob_message),
            Err(EnvelopeError::HashMismatch)
        );
        let other = SenderCurve::of(&MasterKey::generate(&mut OsRng).public()).unwrap();
        assert_eq!(
            first.open_checked(&checked, &other, &w.bob_key.public(), &w.bob_message),
            Err(EnvelopeError::SenderKeyMismatch)
        );
    }

    #[test]
    fn every_check_refuses_before_decrypting() {
        let w = world();
        let envelope = stored(&w, b"secret");
        let open = |e: &StoredEnvelope| e.open(&w.alice_key.public(), &w.bob_key.public(), &w.bob_message);

        let impostor = MasterKey::generate(&mut OsRng);
        assert_eq!(
            envelope.open(&impostor.public(), &w.bob_key.public(), &w.bob_message),
            Err(EnvelopeError::SenderKeyMismatch)
        );
        let mut e = envelope.clone();
        e.server.sender_public_key = impostor.public();
        assert_eq!(open(&e), Err(EnvelopeError::SenderKeyMismatch));

        let mut e = envelope.clone();
        e.sent.message[3] ^= 1;
        assert_eq!(open(&e), Err(EnvelopeError::HashMismatch));
        let mut e = envelope.clone();
        e.server.login_token_hash.0[0] ^= 1;
        assert_eq!(open(&e), Err(EnvelopeError::HashMismatch));
        let mut e = envelope.clone();
        e.server.recipient = Address::parse("carol#example.org").unwrap();
        assert_eq!(open(&e), Err(EnvelopeError::HashMismatch));
        let mut e = envelope.clone();
        e.sent.message_signature.0[10] ^= 1;
        assert_eq!(open(&e), Err(EnvelopeError::BadSignature));
        let mut e = envelope.clone();
        e.sent.algorithm = "none".into();
        assert_eq!(open(&e), Err(EnvelopeError::UnknownAlgorithm("none".into())));
        let mut e = envelope.clone();
        e.server.pow_params = Some(PowParams { zero_bits: 60, ..w.params });
        assert!(matches!(open(&e), Err(EnvelopeError::ProofOfWork(PowError::NotEnoughWork { .. }))));

        let other = BoxSecretKey::generate(&mut OsRng);
        assert_eq!(
            envelope.open(&w.alice_key.public(), &w.bob_key.public(), &other),
            Err(EnvelopeError::UnknownMessageKey)
        );
    }

    #[test]
    fn a_message_sealed_to_the_master_key_is_refused() {
        let w = world();
        let bob_master_curve = w.bob_key.to_curve25519();
        let context = HashContext { sender: &w.alice, recipient: &w.bob, login_token_hash: &w.token_hash };
        let sealed = Ciphertext::seal(
            b"x",
            MessageType::Email,
            BoxNonce::random(&mut OsRng),
            &bob_master_curve.public(),
            &w.alice_key,
        );
        let mut envelope = stored(&w, b"x");
        envelope.sent = sealed.into_envelope(&w.alice_key, &context, None);
        envelope.server.pow_params = None;
        assert_eq!(
            envelope.open(&w.alice_key.public(), &w.bob_key.public(), &bob_master_curve),
            Err(EnvelopeError::EncryptedToMasterKey)
        );
    }
}
