//! Message keys: Curve25519 public keys signed by the owner's master key, handed
//! out by the server as ephemeral (single-use) or non-ephemeral (fallback) keys
//! (docs/protocol.md §5.3; spec "Ephemeral & Non-Ephemeral Keys", "Get Message Key").
//!
//! Pure: randomness is a parameter.

use rand_core::CryptoRngCore;
use serde::{Deserialize, Serialize};

use crate::smimp::address::Address;
use crate::smimp::crypto::{BoxPublicKey, BoxSecretKey, Hash, MasterKey, MasterPublicKey, Signature};
use crate::smimp::transcript::{Purpose, Transcript};

/// Why a message key is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("the message key is not signed by the owner's current master key")]
    BadSignature,
    #[error("the message key is the owner's master key, which is for signing only")]
    IsMasterKey,
}

/// Whether a key is used once or is the standing fallback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyKind {
    Ephemeral,
    Nonephemeral,
}

impl KeyKind {
    /// The bytes bound into the signature.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::Ephemeral => "ephemeral",
            KeyKind::Nonephemeral => "nonephemeral",
        }
    }
}

/// A message key as the server stores and returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedMessageKey {
    pub public_key: BoxPublicKey,
    pub kind: KeyKind,
    pub signature: Signature,
}

/// The hash a message key's signature covers: it binds owner, kind and key.
pub fn message_key_hash(owner: &Address, kind: KeyKind, public_key: &BoxPublicKey) -> Hash {
    Transcript::new(Purpose::MessageKey).field(owner.as_str()).field(kind.as_str()).field(public_key.as_bytes()).hash()
}

impl SignedMessageKey {
    /// Signs `public_key` as `owner`'s key of `kind`.
    pub fn sign(master: &MasterKey, owner: &Address, kind: KeyKind, public_key: BoxPublicKey) -> Self {
        Self { signature: master.sign(&message_key_hash(owner, kind, &public_key)), public_key, kind }
    }

    /// A fresh key pair of `kind`, signed; the secret half goes to the keystore.
    pub fn generate(
        master: &MasterKey,
        owner: &Address,
        kind: KeyKind,
        rng: &mut impl CryptoRngCore,
    ) -> (BoxSecretKey, Self) {
        let secret = BoxSecretKey::generate(rng);
        let signed = Self::sign(master, owner, kind, secret.public());
        (secret, signed)
    }

    /// Checks the signature against the owner's pinned current key, and that the key
    /// is not the master key itself in either form.
    pub fn verify(&self, owner: &Address, owner_key: &MasterPublicKey) -> Result<(), KeyError> {
        if is_master_key(&self.public_key, owner_key) {
            return Err(KeyError::IsMasterKey);
        }
        owner_key
            .verify(&message_key_hash(owner, self.kind, &self.public_key), &self.signature)
            .map_err(|_| KeyError::BadSignature)
    }
}

/// Whether `key` is `master` itself, as its raw Ed25519 bytes or converted to Curve25519.
pub fn is_master_key(key: &BoxPublicKey, master: &MasterPublicKey) -> bool {
    key.0 == master.0 || master.to_curve25519().is_ok_and(|converted| &converted == key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::OsRng;

    #[test]
    fn signed_keys_verify_only_for_their_owner_and_kind() {
        let master = MasterKey::generate(&mut OsRng);
        let alice = Address::parse("alice#example.org").unwrap();
        let bob = Address::parse("bob#example.org").unwrap();
        let (secret, key) = SignedMessageKey::generate(&master, &alice, KeyKind::Ephemeral, &mut OsRng);
        assert_eq!(secret.public(), key.public_key);
        key.verify(&alice, &master.public()).unwrap();
        assert_eq!(key.verify(&bob, &master.public()), Err(KeyError::BadSignature));
        let relabelled = SignedMessageKey { kind: KeyKind::Nonephemeral, ..key.clone() };
        assert_eq!(relabelled.verify(&alice, &master.public()), Err(KeyError::BadSignature));
        let other = MasterKey::generate(&mut OsRng);
        assert_eq!(key.verify(&alice, &other.public()), Err(KeyError::BadSignature));
    }

    #[test]
    fn the_master_key_is_never_a_message_key() {
        let master = MasterKey::generate(&mut OsRng);
        let alice = Address::parse("alice#example.org").unwrap();
        let raw = SignedMessageKey::sign(&master, &alice, KeyKind::Nonephemeral, BoxPublicKey(master.public().0));
        assert_eq!(raw.verify(&alice, &master.public()), Err(KeyError::IsMasterKey));
        let converted = master.public().to_curve25519().unwrap();
        let converted = SignedMessageKey::sign(&master, &alice, KeyKind::Nonephemeral, converted);
        assert_eq!(converted.verify(&alice, &master.public()), Err(KeyError::IsMasterKey));
    }

    #[test]
    fn wire_form_is_hex_and_lowercase_kind() {
        let master = MasterKey::from_seed(&[1; 32]);
        let alice = Address::parse("alice#example.org").unwrap();
        let key = SignedMessageKey::sign(&master, &alice, KeyKind::Nonephemeral, BoxPublicKey([2; 32]));
        let json: serde_json::Value = serde_json::to_value(&key).unwrap();
        assert_eq!(json["kind"], "nonephemeral");
        assert_eq!(json["public_key"], "02".repeat(32));
        assert_eq!(serde_json::from_value::<SignedMessageKey>(json).unwrap(), key);
    }
}
