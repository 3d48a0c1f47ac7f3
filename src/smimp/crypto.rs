//! The protocol's primitives, with libsodium's exact semantics (docs/protocol.md §2):
//! Ed25519 (ed25519-dalek), Ed25519→Curve25519 conversion, crypto_box and
//! crypto_secretbox (XSalsa20-Poly1305, RustCrypto), BLAKE2b-256 (blake2b_simd).
//!
//! Pure: randomness is a parameter. Secret keys zeroize on drop and never print.
//! No primitive is implemented here; this module only fixes how the crates are used.

use crypto_box::aead::{Aead, KeyInit};
use rand_core::CryptoRngCore;
use zeroize::{Zeroize, Zeroizing};

use crate::smimp::encoding::hex_newtype;

/// Why a cryptographic check failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("the public key is not a valid Ed25519 key")]
    InvalidPublicKey,
    #[error("the public key is a weak (small-order) Ed25519 key")]
    WeakPublicKey,
    #[error("the signature does not verify")]
    BadSignature,
    #[error("decryption failed: the ciphertext was not sealed for this key or was altered")]
    DecryptionFailed,
}

hex_newtype!(
    /// A BLAKE2b-256 hash.
    Hash,
    32
);
hex_newtype!(
    /// A detached Ed25519 signature.
    Signature,
    64
);
hex_newtype!(
    /// An Ed25519 master public key: the identity of an SMIMP address.
    MasterPublicKey,
    32
);
hex_newtype!(
    /// A Curve25519 public key that messages are encrypted to (a message key).
    BoxPublicKey,
    32
);
hex_newtype!(
    /// A 24-byte XSalsa20 nonce.
    BoxNonce,
    24
);

impl BoxNonce {
    /// Draws a fresh nonce; XSalsa20's 192-bit nonces are safe to draw at random.
    pub fn random(rng: &mut impl CryptoRngCore) -> Self {
        let mut bytes = [0u8; 24];
        rng.fill_bytes(&mut bytes);
        Self(bytes)
    }
}

/// BLAKE2b with a 32-byte output, unkeyed: libsodium's `crypto_generichash`.
pub fn blake2b_256(bytes: &[u8]) -> Hash {
    let digest = blake2b_simd::Params::new().hash_length(32).hash(bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_bytes());
    Hash(out)
}

/// An account's master Ed25519 signing key. Zeroized on drop.
pub struct MasterKey(ed25519_dalek::SigningKey);

impl MasterKey {
    /// A new key from the random source (never from a password: spec "Selected Crypto Algorithms").
    pub fn generate(rng: &mut impl CryptoRngCore) -> Self {
        Self(ed25519_dalek::SigningKey::generate(rng))
    }

    /// Restores a key from its 32-byte seed (the keystore's stored form).
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Self(ed25519_dalek::SigningKey::from_bytes(seed))
    }

    /// The 32-byte seed, for the keystore.
    pub fn seed(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.0.to_bytes())
    }

    /// The public half.
    pub fn public(&self) -> MasterPublicKey {
        MasterPublicKey(self.0.verifying_key().to_bytes())
    }

    /// Signs a protocol hash (every signature in the profile is over a 32-byte hash).
    pub fn sign(&self, hash: &Hash) -> Signature {
        use ed25519_dalek::Signer;
        Signature(self.0.sign(&hash.0).to_bytes())
    }

    /// Signs arbitrary bytes; used only for test vectors of the raw primitive.
    pub fn sign_bytes(&self, message: &[u8]) -> Signature {
        use ed25519_dalek::Signer;
        Signature(self.0.sign(message).to_bytes())
    }

    /// libsodium's `crypto_sign_ed25519_sk_to_curve25519`: the Curve25519 secret a
    /// sender seals with (spec "Send Message").
    pub fn to_curve25519(&self) -> BoxSecretKey {
        let mut scalar = self.0.to_scalar_bytes();
        scalar[0] &= 248;
        scalar[31] &= 127;
        scalar[31] |= 64;
        let key = BoxSecretKey::from_bytes(scalar);
        scalar.zeroize();
        key
    }
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MasterKey(public {}, secret redacted)", self.public())
    }
}

impl MasterPublicKey {
    fn dalek(&self) -> Result<ed25519_dalek::VerifyingKey, CryptoError> {
        let key = ed25519_dalek::VerifyingKey::from_bytes(&self.0).map_err(|_| CryptoError::InvalidPublicKey)?;
        if key.is_weak() {
            return Err(CryptoError::WeakPublicKey);
        }
        Ok(key)
    }

    /// Verifies a signature over a protocol hash (strict: no malleable or weak-key forms).
    pub fn verify(&self, hash: &Hash, signature: &Signature) -> Result<(), CryptoError> {
        self.verify_bytes(&hash.0, signature)
    }

    /// Verifies a signature over arbitrary bytes; used for vectors of the raw primitive.
    pub fn verify_bytes(&self, message: &[u8], signature: &Signature) -> Result<(), CryptoError> {
        let sig = ed25519_dalek::Signature::from_bytes(&signature.0);
        self.dalek()?.verify_strict(message, &sig).map_err(|_| CryptoError::BadSignature)
    }

    /// Verifies many signatures over protocol hashes at once, accepting exactly what
    /// [`MasterPublicKey::verify`] one by one would: ed25519-dalek's batch equation
    /// (random linear combination, cofactorless like `verify_strict`), plus the two
    /// checks `verify_strict` makes that the batch does not — each `R` canonically
    /// encoded and not of small order — and weak keys refused. `Err` when any fails
    /// (the caller checks one by one to find which).
    pub fn verify_batch(items: &[(&MasterPublicKey, &Hash, &Signature)]) -> Result<(), CryptoError> {
        let mut keys = Vec::with_capacity(items.len());
        let mut signatures = Vec::with_capacity(items.len());
        let mut messages: Vec<&[u8]> = Vec::with_capacity(items.len());
        // A batch is mostly a few senders: each key is decompressed once.
        let mut points: std::collections::HashMap<&MasterPublicKey, ed25519_dalek::VerifyingKey> =
            std::collections::HashMap::new();
        for (key, hash, signature) in items {
            let point = match points.get(key) {
                Some(point) => *point,
                None => *points.entry(key).or_insert(key.dalek()?),
            };
            keys.push(point);
            let sig = ed25519_dalek::Signature::from_bytes(&signature.0);
            strict_r(sig.r_bytes())?;
            signatures.push(sig);
            messages.push(&hash.0);
        }
        ed25519_dalek::verify_batch(&messages, &signatures, &keys).map_err(|_| CryptoError::BadSignature)
    }

    /// libsodium's `crypto_sign_ed25519_pk_to_curve25519`: the key a recipient opens with.
    pub fn to_curve25519(&self) -> Result<BoxPublicKey, CryptoError> {
        Ok(BoxPublicKey(self.dalek()?.to_montgomery().to_bytes()))
    }
}

/// `verify_strict`'s checks of a signature's `R`: a canonical encoding of a point
/// that is not of small order.
fn strict_r(r: &[u8; 32]) -> Result<(), CryptoError> {
    let compressed = curve25519_dalek::edwards::CompressedEdwardsY(*r);
    match compressed.decompress() {
        Some(point) if !point.is_small_order() && point.compress() == compressed => Ok(()),
        _ => Err(CryptoError::BadSignature),
    }
}

/// A Curve25519 secret key (a message key's private half, or a converted master key).
/// Keeps its own copy of the bytes: `crypto_box::SecretKey::to_bytes` does not
/// return the input. Zeroized on drop.
#[derive(Clone)]
pub struct BoxSecretKey(Zeroizing<[u8; 32]>);

impl BoxSecretKey {
    /// A new key pair from the random source (libsodium's `crypto_box_keypair`).
    pub fn generate(rng: &mut impl CryptoRngCore) -> Self {
        let mut bytes = [0u8; 32];
        rng.fill_bytes(&mut bytes);
        let key = Self::from_bytes(bytes);
        bytes.zeroize();
        key
    }

    /// Restores a key from its stored bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// The stored bytes, for the keystore.
    pub fn to_bytes(&self) -> Zeroizing<[u8; 32]> {
        self.0.clone()
    }

    /// The public half (`crypto_scalarmult_base`).
    pub fn public(&self) -> BoxPublicKey {
        BoxPublicKey(*self.dalek().public_key().as_bytes())
    }

    fn dalek(&self) -> crypto_box::SecretKey {
        crypto_box::SecretKey::from_bytes(*self.0)
    }
}

impl std::fmt::Debug for BoxSecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BoxSecretKey(public {}, secret redacted)", self.public())
    }
}

/// `crypto_box_easy`: authenticated public-key encryption; output is MAC ‖ ciphertext.
pub fn box_seal(plaintext: &[u8], nonce: &BoxNonce, recipient: &BoxPublicKey, sender: &BoxSecretKey) -> Vec<u8> {
    let salsa = crypto_box::SalsaBox::new(&crypto_box::PublicKey::from(recipient.0), &sender.dalek());
    salsa
        .encrypt(nonce.0.as_ref().into(), plaintext)
        .expect("XSalsa20-Poly1305 encryption of an in-memory buffer cannot fail")
}

/// `crypto_box_open_easy`: fails unless the ciphertext was sealed by `sender` for `recipient`.
pub fn box_open(
    ciphertext: &[u8],
    nonce: &BoxNonce,
    sender: &BoxPublicKey,
    recipient: &BoxSecretKey,
) -> Result<Vec<u8>, CryptoError> {
    let salsa = crypto_box::SalsaBox::new(&crypto_box::PublicKey::from(sender.0), &recipient.dalek());
    salsa.decrypt(nonce.0.as_ref().into(), ciphertext).map_err(|_| CryptoError::DecryptionFailed)
}

/// A symmetric XSalsa20-Poly1305 key (`crypto_secretbox`). Zeroized on drop.
#[derive(Clone)]
pub struct SecretBoxKey(Zeroizing<[u8; 32]>);

impl SecretBoxKey {
    /// A new random key.
    pub fn generate(rng: &mut impl CryptoRngCore) -> Self {
        let mut key = Self(Zeroizing::new([0u8; 32]));
        rng.fill_bytes(key.0.as_mut());
        key
    }

    /// Restores a key from its bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// The key bytes.
    pub fn to_bytes(&self) -> Zeroizing<[u8; 32]> {
        self.0.clone()
    }

    fn cipher(&self) -> crypto_secretbox::XSalsa20Poly1305 {
        crypto_secretbox::XSalsa20Poly1305::new(self.0.as_ref().into())
    }

    /// `crypto_secretbox_easy`: output is MAC ‖ ciphertext.
    pub fn seal(&self, nonce: &BoxNonce, plaintext: &[u8]) -> Vec<u8> {
        self.cipher()
            .encrypt(nonce.0.as_ref().into(), plaintext)
            .expect("XSalsa20-Poly1305 encryption of an in-memory buffer cannot fail")
    }

    /// `crypto_secretbox_open_easy`.
    pub fn open(&self, nonce: &BoxNonce, ciphertext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        self.cipher().decrypt(nonce.0.as_ref().into(), ciphertext).map_err(|_| CryptoError::DecryptionFailed)
    }
}

impl std::fmt::Debug for SecretBoxKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBoxKey(redacted)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::OsRng;

    #[test]
    fn a_batch_verifies_what_single_checks_verify_and_refuses_any_bad_one() {
        let keys: Vec<MasterKey> = (0..4).map(|_| MasterKey::generate(&mut OsRng)).collect();
        let publics: Vec<MasterPublicKey> = keys.iter().map(MasterKey::public).collect();
        let hashes: Vec<Hash> = (0..4u8).map(|n| blake2b_256(&[n])).collect();
        let mut sigs: Vec<Signature> = keys.iter().zip(&hashes).map(|(k, h)| k.sign(h)).collect();
        let batch = |sigs: &[Signature]| {
            let items: Vec<_> = publics.iter().zip(&hashes).zip(sigs).map(|((k, h), s)| (k, h, s)).collect();
            MasterPublicKey::verify_batch(&items)
        };
        assert_eq!(batch(&sigs), Ok(()));
        sigs.swap(1, 2);
        assert_eq!(batch(&sigs), Err(CryptoError::BadSignature));
    }

    #[test]
    fn the_batch_refuses_an_r_that_verify_strict_refuses() {
        let key = MasterKey::generate(&mut OsRng);
        let good = key.sign(&blake2b_256(b"m"));
        let r: [u8; 32] = good.0[..32].try_into().unwrap();
        assert_eq!(strict_r(&r), Ok(()));
        // The identity (small order) and a non-canonical encoding of it (y + p).
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert_eq!(strict_r(&identity), Err(CryptoError::BadSignature));
        let mut non_canonical = [0xffu8; 32];
        non_canonical[0] = 0xee;
        non_canonical[31] = 0x7f;
        assert_eq!(strict_r(&non_canonical), Err(CryptoError::BadSignature));
    }

    #[test]
    fn signatures_verify_and_fail_on_any_change() {
        let key = MasterKey::generate(&mut OsRng);
        let hash = blake2b_256(b"record");
        let sig = key.sign(&hash);
        key.public().verify(&hash, &sig).unwrap();
        assert_eq!(key.public().verify(&blake2b_256(b"other"), &sig), Err(CryptoError::BadSignature));
        let other = MasterKey::generate(&mut OsRng);
        assert_eq!(other.public().verify(&hash, &sig), Err(CryptoError::BadSignature));
    }

    #[test]
    fn weak_and_invalid_public_keys_are_refused() {
        // The identity point (small order) encodes as 1 followed by zeros.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let sig = Signature([0u8; 64]);
        assert_eq!(MasterPublicKey(identity).verify(&blake2b_256(b""), &sig), Err(CryptoError::WeakPublicKey));
        // y = 2 is not on the curve.
        let mut off_curve = [0u8; 32];
        off_curve[0] = 2;
        assert_eq!(MasterPublicKey(off_curve).to_curve25519(), Err(CryptoError::InvalidPublicKey));
    }

    #[test]
    fn converted_keys_agree_so_boxes_open_both_ways() {
        let alice = MasterKey::generate(&mut OsRng);
        let bob_message = BoxSecretKey::generate(&mut OsRng);
        let nonce = BoxNonce::random(&mut OsRng);
        let sealed = box_seal(b"hello", &nonce, &bob_message.public(), &alice.to_curve25519());
        assert_eq!(sealed.len(), 5 + 16);
        let alice_curve = alice.public().to_curve25519().unwrap();
        assert_eq!(alice_curve, alice.to_curve25519().public());
        assert_eq!(box_open(&sealed, &nonce, &alice_curve, &bob_message).unwrap(), b"hello");
        let mut tampered = sealed.clone();
        tampered[0] ^= 1;
        assert_eq!(box_open(&tampered, &nonce, &alice_curve, &bob_message), Err(CryptoError::DecryptionFailed));
    }

    #[test]
    fn secretbox_round_trips_and_detects_tampering() {
        let key = SecretBoxKey::generate(&mut OsRng);
        let nonce = BoxNonce::random(&mut OsRng);
        let sealed = key.seal(&nonce, b"cache");
        assert_eq!(key.open(&nonce, &sealed).unwrap(), b"cache");
        let mut tampered = sealed;
        *tampered.last_mut().unwrap() ^= 0x80;
        assert!(key.open(&nonce, &tampered).is_err());
    }

    #[test]
    fn debug_output_never_shows_secrets() {
        let key = MasterKey::from_seed(&[0x42; 32]);
        let text = format!("{key:?} {:?} {:?}", key.to_curve25519(), SecretBoxKey::from_bytes([0x42; 32]));
        assert!(!text.contains("4242"), "{text}");
        assert!(text.contains("redacted"));
    }
}
