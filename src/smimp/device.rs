//! Devices of one account (extension `x-devices`, docs/protocol.md §12; the design
//! and its threat table in docs/devices.md): the bytes a new device signs when it
//! asks to join, the witness code both machines show so that a server swapping the
//! device's key is seen, and the approval — the account's secrets sealed to the new
//! device's box key with `crypto_box` and signed by the account's master key, bound
//! to the one request it answers so it cannot be replayed for another.
//!
//! Pure: randomness and time are parameters. No primitive is implemented here; the
//! sealing is `crypto::box_seal` with a fresh ephemeral sender key.

use rand_core::CryptoRngCore;
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::smimp::address::Address;
use crate::smimp::crypto::{
    blake2b_256, box_open, box_seal, BoxNonce, BoxPublicKey, BoxSecretKey, CryptoError, Hash, MasterKey,
    MasterPublicKey, Signature,
};
use crate::smimp::encoding::{base64_bytes, Id32};
use crate::smimp::keys::KeyKind;
use crate::smimp::pow::{PowInput, Preimage};
use crate::smimp::transcript::{Purpose, Transcript};

/// The longest device name (bytes of UTF-8).
pub const MAX_DEVICE_NAME: usize = 64;
/// Bytes of the witness hash shown to the user: 80 bits, 16 base32 characters.
pub const WITNESS_BYTES: usize = 10;
/// The PoW message type a device request is solved for (docs/protocol.md §12.2).
pub const REQUEST_POW_TYPE: &str = "x-device-request";

/// Why a device document is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceError {
    #[error("a device name must be 1 to {MAX_DEVICE_NAME} bytes of printable text")]
    BadName,
    #[error("the approval is signed by {found}, not by the account's master key {expected}")]
    WrongSigner { expected: MasterPublicKey, found: MasterPublicKey },
    #[error("the approval's signature does not verify for this request: it answers another request or was altered")]
    BadSignature,
    #[error("the approval cannot be opened with this device's key: {0}")]
    Sealed(CryptoError),
    #[error("the approval's contents are malformed: {0}")]
    Malformed(String),
    #[error("the approval carries a master key ({found}) other than the one that signed it ({expected})")]
    MasterMismatch { expected: MasterPublicKey, found: MasterPublicKey },
}

/// Checks a device name: printable, not empty, at most [`MAX_DEVICE_NAME`] bytes.
pub fn check_name(name: &str) -> Result<(), DeviceError> {
    let ok = !name.trim().is_empty() && name.len() <= MAX_DEVICE_NAME && !name.chars().any(char::is_control);
    if ok {
        Ok(())
    } else {
        Err(DeviceError::BadName)
    }
}

/// A device's public keys: the Ed25519 key it signs with and the X25519 key secrets
/// are sealed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevicePublic {
    pub sign_key: MasterPublicKey,
    pub box_key: BoxPublicKey,
}

/// A device's key pair: made on the device, never leaves it.
pub struct DeviceKeys {
    sign: MasterKey,
    boxed: BoxSecretKey,
}

impl DeviceKeys {
    /// A fresh pair from the random source.
    pub fn generate(rng: &mut impl CryptoRngCore) -> Self {
        Self { sign: MasterKey::generate(rng), boxed: BoxSecretKey::generate(rng) }
    }

    /// Restores a pair from its stored halves.
    pub fn from_parts(sign_seed: &[u8; 32], box_secret: [u8; 32]) -> Self {
        Self { sign: MasterKey::from_seed(sign_seed), boxed: BoxSecretKey::from_bytes(box_secret) }
    }

    /// The public halves.
    pub fn public(&self) -> DevicePublic {
        DevicePublic { sign_key: self.sign.public(), box_key: self.boxed.public() }
    }

    /// The signing key.
    pub fn sign_key(&self) -> &MasterKey {
        &self.sign
    }

    /// The box secret key.
    pub fn box_key(&self) -> &BoxSecretKey {
        &self.boxed
    }
}

impl std::fmt::Debug for DeviceKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DeviceKeys({:?}, secrets redacted)", self.public())
    }
}

/// `T("SMIMP-v0.1/x-device-request", address, name, sign_key, box_key, server_nonce)`:
/// what the new device signs with its signing key (proof that it holds it) and what
/// its admission proof of work covers.
pub fn request_hash(address: &Address, name: &str, device: &DevicePublic, server_nonce: &Id32) -> Hash {
    Transcript::new(Purpose::DeviceRequest)
        .field(address.as_str())
        .field(name)
        .field(device.sign_key.as_bytes())
        .field(device.box_key.as_bytes())
        .field(server_nonce.as_bytes())
        .hash()
}

/// The admission proof of work of a request: the PoW preimage of docs/protocol.md
/// §3.1 with `login_token_hash = H(server_nonce)`, the request hash as the message
/// field hash, the account as recipient and [`REQUEST_POW_TYPE`] as the type.
pub fn request_pow(address: &Address, request_hash: &Hash, server_nonce: &Id32) -> Preimage {
    let nonce_hash = blake2b_256(server_nonce.as_bytes());
    let input = PowInput {
        login_token_hash: &nonce_hash,
        message_field_hash: request_hash,
        recipient: address,
        message_type: REQUEST_POW_TYPE,
    };
    Preimage::new(&input, server_nonce)
}

/// The short code both machines show for one request (docs/protocol.md §12.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WitnessCode(String);

impl WitnessCode {
    /// The code as shown: four groups of four base32 characters, `ABCD-EFGH-IJKL-MNOP`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `typed` is this code, ignoring case, spaces and dashes.
    pub fn matches(&self, typed: &str) -> bool {
        normalise_pin(typed) == normalise_pin(&self.0)
    }
}

impl std::fmt::Display for WitnessCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The witness code: the first [`WITNESS_BYTES`] of
/// `H(T("SMIMP-v0.1/x-device-witness", address, name, sign_key, box_key, server_nonce))`
/// in RFC 4648 base32, grouped by four. A server that hands the approving machine
/// other keys (or another nonce) changes the code it shows.
pub fn witness(address: &Address, name: &str, device: &DevicePublic, server_nonce: &Id32) -> WitnessCode {
    let hash = Transcript::new(Purpose::DeviceWitness)
        .field(address.as_str())
        .field(name)
        .field(device.sign_key.as_bytes())
        .field(device.box_key.as_bytes())
        .field(server_nonce.as_bytes())
        .hash();
    WitnessCode(group(&base32(&hash.as_bytes()[..WITNESS_BYTES])))
}

/// RFC 4648 base32 without padding (an encoding, for the witness code only).
fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::with_capacity(bytes.len() * 8 / 5 + 1);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &byte in bytes {
        buffer = (buffer << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buffer >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// A new one-time PIN: 80 random bits as four groups of four base32 characters, so
/// that a server seeing a request's PIN proof cannot search the PIN space.
pub fn new_pin(rng: &mut impl CryptoRngCore) -> String {
    let mut bytes = [0u8; WITNESS_BYTES];
    rng.fill_bytes(&mut bytes);
    group(&base32(&bytes))
}

/// Four-character groups joined by dashes.
fn group(text: &str) -> String {
    let groups: Vec<&str> = (0..text.len()).step_by(4).map(|at| &text[at..(at + 4).min(text.len())]).collect();
    groups.join("-")
}

/// A PIN as typed, normalised: upper case, without spaces or dashes.
pub fn normalise_pin(pin: &str) -> String {
    pin.chars().filter(|c| !c.is_whitespace() && *c != '-').map(|c| c.to_ascii_uppercase()).collect()
}

/// The PIN proof of a request: keyed BLAKE2b-256 (libsodium's `crypto_generichash`
/// with a key) of the request hash, keyed by `H(T("SMIMP-v0.1/x-device-pin", PIN))`
/// of the normalised PIN. The PIN itself never leaves the device.
pub fn pin_proof(pin: &str, request_hash: &Hash) -> Hash {
    pin_proof_with(&pin_key(pin), request_hash)
}

/// The key a PIN proof is made with: `H(T("SMIMP-v0.1/x-device-pin", PIN))`; what the
/// issuing device keeps instead of the PIN.
pub fn pin_key(pin: &str) -> Hash {
    Transcript::new(Purpose::DevicePin).field(normalise_pin(pin)).hash()
}

/// [`pin_proof`] from the PIN's key.
pub fn pin_proof_with(key: &Hash, request_hash: &Hash) -> Hash {
    let digest = blake2b_simd::Params::new().hash_length(32).key(key.as_bytes()).hash(request_hash.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_bytes());
    Hash(out)
}

/// One request an approval answers: everything its signature is bound to.
#[derive(Debug, Clone, Copy)]
pub struct RequestContext<'a> {
    pub address: &'a Address,
    pub request_id: &'a Id32,
    pub name: &'a str,
    pub device: &'a DevicePublic,
    pub server_nonce: &'a Id32,
}

/// Secrets sealed to one device and signed by the account's master key: an approval
/// (the whole account) or a share (new message keys). The server stores it as is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sealed {
    /// The fresh X25519 key the box was sealed with.
    pub ephemeral_key: BoxPublicKey,
    pub nonce: BoxNonce,
    /// `crypto_box_easy` output, base64.
    #[serde(with = "base64_bytes")]
    pub ciphertext: Vec<u8>,
    /// Unix seconds when it was sealed.
    pub issued_at: i64,
    /// The master key that signed it.
    pub master_key: MasterPublicKey,
    pub signature: Signature,
}

/// `T("SMIMP-v0.1/x-device-approval", address, request_id, name, sign_key, box_key,
/// server_nonce, ephemeral_key, nonce, H(ciphertext), u64_be(issued_at), master_key)`.
pub fn approval_hash(context: &RequestContext<'_>, sealed: &Sealed) -> Hash {
    Transcript::new(Purpose::DeviceApproval)
        .field(context.address.as_str())
        .field(context.request_id.as_bytes())
        .field(context.name)
        .field(context.device.sign_key.as_bytes())
        .field(context.device.box_key.as_bytes())
        .field(context.server_nonce.as_bytes())
        .field(sealed.ephemeral_key.as_bytes())
        .field(sealed.nonce.as_bytes())
        .field(blake2b_256(&sealed.ciphertext).as_bytes())
        .field(sealed.issued_at.to_be_bytes())
        .field(sealed.master_key.as_bytes())
        .hash()
}

/// `T("SMIMP-v0.1/x-device-share", address, share_id, recipient sign_key, recipient
/// box_key, ephemeral_key, nonce, H(ciphertext), u64_be(issued_at), master_key)`.
pub fn share_hash(address: &Address, share_id: &Id32, recipient: &DevicePublic, sealed: &Sealed) -> Hash {
    Transcript::new(Purpose::DeviceShare)
        .field(address.as_str())
        .field(share_id.as_bytes())
        .field(recipient.sign_key.as_bytes())
        .field(recipient.box_key.as_bytes())
        .field(sealed.ephemeral_key.as_bytes())
        .field(sealed.nonce.as_bytes())
        .field(blake2b_256(&sealed.ciphertext).as_bytes())
        .field(sealed.issued_at.to_be_bytes())
        .field(sealed.master_key.as_bytes())
        .hash()
}

/// Seals `plaintext` to `recipient` from `ephemeral`, unsigned yet.
fn seal_unsigned(
    plaintext: &[u8],
    recipient: &BoxPublicKey,
    ephemeral: &BoxSecretKey,
    nonce: BoxNonce,
    master: &MasterKey,
    now: i64,
) -> Sealed {
    Sealed {
        ephemeral_key: ephemeral.public(),
        nonce,
        ciphertext: box_seal(plaintext, &nonce, recipient, ephemeral),
        issued_at: now,
        master_key: master.public(),
        signature: Signature([0; 64]),
    }
}

/// Seals the account's secrets for the device of `context` and signs the approval.
pub fn seal_approval(
    context: &RequestContext<'_>,
    secrets: &AccountSecrets,
    master: &MasterKey,
    now: i64,
    rng: &mut impl CryptoRngCore,
) -> Sealed {
    let ephemeral = BoxSecretKey::generate(rng);
    seal_approval_with(context, &secrets.to_json(), &ephemeral, BoxNonce::random(rng), master, now)
}

/// [`seal_approval`] with the plaintext, ephemeral key and nonce given (for vectors).
pub fn seal_approval_with(
    context: &RequestContext<'_>,
    plaintext: &[u8],
    ephemeral: &BoxSecretKey,
    nonce: BoxNonce,
    master: &MasterKey,
    now: i64,
) -> Sealed {
    let mut sealed = seal_unsigned(plaintext, &context.device.box_key, ephemeral, nonce, master, now);
    sealed.signature = master.sign(&approval_hash(context, &sealed));
    sealed
}

/// Seals new message keys for one other device and signs the share.
pub fn seal_share(
    address: &Address,
    share_id: &Id32,
    recipient: &DevicePublic,
    secrets: &AccountSecrets,
    master: &MasterKey,
    now: i64,
    rng: &mut impl CryptoRngCore,
) -> Sealed {
    let ephemeral = BoxSecretKey::generate(rng);
    let plaintext = secrets.to_json();
    let mut sealed = seal_unsigned(&plaintext, &recipient.box_key, &ephemeral, BoxNonce::random(rng), master, now);
    sealed.signature = master.sign(&share_hash(address, share_id, recipient, &sealed));
    sealed
}

/// Checks the signer and signature of `sealed` over `hash`, then opens it.
fn open_checked(
    sealed: &Sealed,
    hash: &Hash,
    own: &BoxSecretKey,
    master: &MasterPublicKey,
) -> Result<AccountSecrets, DeviceError> {
    if sealed.master_key != *master {
        return Err(DeviceError::WrongSigner { expected: *master, found: sealed.master_key });
    }
    master.verify(hash, &sealed.signature).map_err(|_| DeviceError::BadSignature)?;
    let plaintext = Zeroizing::new(
        box_open(&sealed.ciphertext, &sealed.nonce, &sealed.ephemeral_key, own).map_err(DeviceError::Sealed)?,
    );
    AccountSecrets::from_json(&plaintext)
}

/// Opens an approval on the device it was made for: the signer must be `master` (the
/// account's key the device trusts), the signature must cover this very request, and
/// the sealed master key must be that same key.
pub fn open_approval(
    context: &RequestContext<'_>,
    sealed: &Sealed,
    own: &BoxSecretKey,
    master: &MasterPublicKey,
) -> Result<AccountSecrets, DeviceError> {
    let secrets = open_checked(sealed, &approval_hash(context, sealed), own, master)?;
    let found = MasterKey::from_seed(&*secrets.master_seed()?).public();
    if found != *master {
        return Err(DeviceError::MasterMismatch { expected: *master, found });
    }
    Ok(secrets)
}

/// Opens a share sent to this device (`own`, whose public halves are `recipient`).
pub fn open_share(
    address: &Address,
    share_id: &Id32,
    recipient: &DevicePublic,
    sealed: &Sealed,
    own: &BoxSecretKey,
    master: &MasterPublicKey,
) -> Result<AccountSecrets, DeviceError> {
    open_checked(sealed, &share_hash(address, share_id, recipient, sealed), own, master)
}

/// One device of the account as every device knows it (public data).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Zeroize)]
#[serde(deny_unknown_fields)]
pub struct DeviceEntry {
    pub name: String,
    #[zeroize(skip)]
    pub keys: DevicePublic,
    pub enrolled_at: i64,
    /// The device that approved it; `None` for the one that created the account.
    pub enrolled_by: Option<String>,
}

/// One message key pair inside sealed secrets.
#[derive(Clone, Serialize, Deserialize, Zeroize)]
#[serde(deny_unknown_fields)]
pub struct SecretKeyEntry {
    /// The X25519 secret, hex.
    pub secret: String,
    #[zeroize(skip)]
    pub kind: KeyKind,
    pub created_at: i64,
    pub retired_at: Option<i64>,
}

/// What an approval or a share carries: secrets in hex, wiped on drop. A share
/// carries message keys only (the other fields empty).
#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop, Default)]
#[serde(deny_unknown_fields)]
pub struct AccountSecrets {
    /// The master seed, hex; empty in a share.
    pub master_seed: String,
    pub previous_master_seeds: Vec<String>,
    pub message_keys: Vec<SecretKeyEntry>,
    /// The storage key, hex; empty in a share.
    pub storage_key: String,
    pub devices: Vec<DeviceEntry>,
}

impl std::fmt::Debug for AccountSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountSecrets")
            .field("message_keys", &self.message_keys.len())
            .field("devices", &self.devices)
            .finish_non_exhaustive()
    }
}

impl AccountSecrets {
    fn to_json(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(1024 + 256 * self.message_keys.len()));
        serde_json::to_writer(&mut *out, self).expect("a document of strings and numbers always serializes");
        out
    }

    fn from_json(bytes: &[u8]) -> Result<Self, DeviceError> {
        serde_json::from_slice(bytes).map_err(|e| DeviceError::Malformed(e.to_string()))
    }

    /// The master seed's bytes.
    pub fn master_seed(&self) -> Result<Zeroizing<[u8; 32]>, DeviceError> {
        hex32(&self.master_seed, "master seed")
    }
}

/// 32 bytes from hex, for a secret.
pub fn hex32(text: &str, what: &str) -> Result<Zeroizing<[u8; 32]>, DeviceError> {
    let mut out = Zeroizing::new([0u8; 32]);
    hex::decode_to_slice(text, out.as_mut())
        .map_err(|_| DeviceError::Malformed(format!("{what} is not 32 bytes of hex")))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use rand_core::OsRng;

    use super::*;

    fn alice() -> Address {
        Address::parse("alice#example.org").unwrap()
    }

    fn secrets(master: &MasterKey) -> AccountSecrets {
        let mut secrets = AccountSecrets::default();
        secrets.master_seed = hex::encode(master.seed().as_slice());
        secrets.storage_key = "11".repeat(32);
        secrets
    }

    #[test]
    fn base32_follows_rfc_4648() {
        for (input, expected) in [("", ""), ("f", "MY"), ("fo", "MZXQ"), ("foo", "MZXW6"), ("foobar", "MZXW6YTBOI")] {
            assert_eq!(base32(input.as_bytes()), expected);
        }
    }

    #[test]
    fn witness_changes_with_any_key_and_the_nonce() {
        let device = DeviceKeys::generate(&mut OsRng).public();
        let nonce = Id32([7; 32]);
        let code = witness(&alice(), "laptop", &device, &nonce);
        assert_eq!(code.as_str().len(), 19);
        assert!(code.matches(&code.as_str().to_lowercase().replace('-', " ")));
        let swapped = DevicePublic { box_key: BoxSecretKey::generate(&mut OsRng).public(), ..device };
        assert_ne!(witness(&alice(), "laptop", &swapped, &nonce), code);
        assert_ne!(witness(&alice(), "laptop", &device, &Id32([8; 32])), code);
        assert_ne!(witness(&alice(), "laptop2", &device, &nonce), code);
    }

    #[test]
    fn an_approval_opens_only_for_its_own_request() {
        let master = MasterKey::generate(&mut OsRng);
        let keys = DeviceKeys::generate(&mut OsRng);
        let device = keys.public();
        let (id, nonce) = (Id32([1; 32]), Id32([2; 32]));
        let context = RequestContext {
            address: &alice(),
            request_id: &id,
            name: "laptop",
            device: &device,
            server_nonce: &nonce,
        };
        let sealed = seal_approval(&context, &secrets(&master), &master, 100, &mut OsRng);
        let opened = open_approval(&context, &sealed, keys.box_key(), &master.public()).unwrap();
        assert_eq!(opened.storage_key, "11".repeat(32));

        let other_id = Id32([3; 32]);
        let replayed = RequestContext { request_id: &other_id, ..context };
        assert_eq!(
            open_approval(&replayed, &sealed, keys.box_key(), &master.public()).unwrap_err(),
            DeviceError::BadSignature
        );
        let stranger = MasterKey::generate(&mut OsRng);
        assert!(matches!(
            open_approval(&context, &sealed, keys.box_key(), &stranger.public()),
            Err(DeviceError::WrongSigner { .. })
        ));
        let mut altered = sealed.clone();
        altered.ciphertext[0] ^= 1;
        assert_eq!(
            open_approval(&context, &altered, keys.box_key(), &master.public()).unwrap_err(),
            DeviceError::BadSignature
        );
        // Sealing someone else's master seed under the right signature is refused too.
        let forged = seal_approval(&context, &secrets(&stranger), &master, 100, &mut OsRng);
        assert!(matches!(
            open_approval(&context, &forged, keys.box_key(), &master.public()),
            Err(DeviceError::MasterMismatch { .. })
        ));
    }

    #[test]
    fn names_are_checked() {
        assert!(check_name("Alice's laptop").is_ok());
        for bad in ["", "  ", "a\nb", &"x".repeat(MAX_DEVICE_NAME + 1)] {
            assert_eq!(check_name(bad), Err(DeviceError::BadName), "{bad:?}");
        }
    }
}
