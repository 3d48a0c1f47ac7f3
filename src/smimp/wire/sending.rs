//! Sending a message (spec "Sending A Message"; docs/protocol.md §8.7–§8.9): the
//! recipient's message key, the proof-of-work parameters, and the envelope read
//! strictly.

use serde::{Deserialize, Serialize};

use crate::smimp::address::Address;
use crate::smimp::crypto::{BoxNonce, BoxPublicKey, Hash, MasterPublicKey, Signature};
use crate::smimp::encoding::{base64_bytes, Id32};
use crate::smimp::envelope::SentEnvelope;
use crate::smimp::keys::SignedMessageKey;
use crate::smimp::message::MessageType;
use crate::smimp::pow::{PowParams, PowSolution};

/// `POST {v}/get_message_key`: whose key the sender wants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageKeyRequest {
    pub address: Address,
}

/// The key to encrypt to, with the recipient's current master key so the sender
/// can check the key's signature against its pin in the same round trip.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageKeyResponse {
    pub address: Address,
    pub public_key: MasterPublicKey,
    pub message_key: SignedMessageKey,
    /// True when the ephemeral keys ran out and this is the standing fallback key,
    /// so a cautious sender can wait and ask again.
    pub nonephemeral: bool,
}

/// The strict reading of a posted envelope: same fields as [`SentEnvelope`], but an
/// unknown field is refused. (The stored envelope flattens `SentEnvelope`, so the
/// type itself must stay lenient.) Declared through serde's `remote`, so the
/// compiler checks it against `SentEnvelope` field by field.
#[derive(Deserialize)]
#[serde(remote = "SentEnvelope", deny_unknown_fields)]
struct StrictSentEnvelope {
    #[serde(with = "base64_bytes")]
    message: Vec<u8>,
    message_type: MessageType,
    algorithm: String,
    message_public_key: BoxPublicKey,
    nonce: BoxNonce,
    proof_of_work: Option<PowSolution>,
    message_hash: Hash,
    message_signature: Signature,
}

/// `POST {v}/send_message/{address}`: the envelope exactly as docs/protocol.md §6
/// describes it, read strictly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SendMessageRequest(#[serde(deserialize_with = "StrictSentEnvelope::deserialize")] pub SentEnvelope);

/// `GET {v}/get_pow_params/{address}/{message_type}` returns the PoW parameters
/// themselves: the difficulty and a nonce single-use within this session.
pub type PowParamsResponse = PowParams;

/// The id the recipient's server gave the stored message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageSent {
    pub message_id: Id32,
}
