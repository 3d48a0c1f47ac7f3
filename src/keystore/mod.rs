//! The gateway's keystore: one file per account holding every secret the gateway
//! needs for it, encrypted at rest (design §1–2: "the gateway's disk holds secrets
//! … only sealed").
//!
//! It holds the account address; the master Ed25519 key and the master keys it
//! replaced; every message key pair with its kind and lifetime (spec "Setting
//! Ephemeral Keys": private keys of discarded public keys are retained for a while);
//! the storage key that seals the gateway's local cache; and the Argon2id verifier of
//! the local SMTP/IMAP password.
//!
//! - this file: the in-memory [`Keystore`] and its key-management rules;
//! - `file`: the encrypted file format, [`KdfParams`], atomic save and load;
//! - `passphrase`: where the passphrase comes from ([`PassphraseSource`]);
//! - `error`: [`KeystoreError`].
//!
//! Depends only on `smimp/` and std/crates (argon2, serde, zeroize): no tokio, no
//! sqlx, no network. Loading and saving block (file I/O and a deliberately slow
//! Argon2id), so async callers run them on a blocking thread. Time is a parameter
//! (unix seconds) so tests pin it.

mod devices;
mod error;
mod file;
mod lock;
mod passphrase;

pub use devices::OwnDevice;
pub use error::KeystoreError;
pub use file::{KdfParams, FORMAT_NAME, FORMAT_VERSION};
pub use lock::{create_parent_dir, KeystoreLock};
pub use passphrase::{Passphrase, PassphraseConfig, PassphraseSource};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use rand_core::{OsRng, RngCore};
use zeroize::Zeroizing;

use crate::smimp::address::Address;
use crate::smimp::crypto::{BoxPublicKey, BoxSecretKey, MasterKey, MasterPublicKey, SecretBoxKey};
use crate::smimp::device::DeviceEntry;
use crate::smimp::keys::KeyKind;

/// One message key pair the account has published (or is about to), with its life.
#[derive(Debug, Clone)]
pub struct MessageKey {
    secret: BoxSecretKey,
    /// Cached: deriving it is a scalar multiplication, and lookups compare it.
    public: BoxPublicKey,
    kind: KeyKind,
    created_at: i64,
    retired_at: Option<i64>,
}

impl MessageKey {
    /// The public half, the one senders encrypt to.
    pub fn public(&self) -> &BoxPublicKey {
        &self.public
    }

    /// The secret half, to open messages sealed to [`Self::public`].
    pub fn secret(&self) -> &BoxSecretKey {
        &self.secret
    }

    /// Single-use or the standing fallback.
    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    /// When the key was added (unix seconds).
    pub fn created_at(&self) -> i64 {
        self.created_at
    }

    /// When the key was discarded (unix seconds), if it was.
    pub fn retired_at(&self) -> Option<i64> {
        self.retired_at
    }
}

/// An account's secrets, unlocked in memory. Every secret inside zeroizes on drop and
/// `Debug` shows only public halves and counts.
pub struct Keystore {
    address: Address,
    master: MasterKey,
    /// Oldest first. Kept because the sender side of `crypto_box` is the converted
    /// master key, so messages this account sealed before a rotation (its sent copies,
    /// queued retries) open only with the master key of that time.
    previous_masters: Vec<MasterKey>,
    /// In the order they were added; retired keys stay until [`Keystore::prune`].
    message_keys: Vec<MessageKey>,
    storage_key: SecretBoxKey,
    /// Argon2id PHC string of the local SMTP/IMAP password; `None` until one is set.
    local_password: Option<String>,
    /// This machine as a device of the account (docs/devices.md); `None` until a
    /// device command first needs it.
    device: Option<OwnDevice>,
    /// Every device of the account, this one included (public data).
    devices: Vec<DeviceEntry>,
}

impl Keystore {
    /// A keystore for a new identity: no message keys and no local password yet.
    pub fn new(address: Address, master: MasterKey, storage_key: SecretBoxKey) -> Self {
        Self {
            address,
            master,
            previous_masters: Vec::new(),
            message_keys: Vec::new(),
            storage_key,
            local_password: None,
            device: None,
            devices: Vec::new(),
        }
    }

    /// The account this keystore belongs to.
    pub fn address(&self) -> &Address {
        &self.address
    }

    /// The current master key: it signs profile records, message keys, logins and
    /// message hashes, and (converted) seals outgoing messages.
    pub fn master(&self) -> &MasterKey {
        &self.master
    }

    /// The master keys replaced by [`Self::rotate_master`], oldest first.
    pub fn previous_masters(&self) -> &[MasterKey] {
        &self.previous_masters
    }

    /// The current or a previous master key with this public key, to reopen
    /// something sealed under it.
    pub fn master_for(&self, public: &MasterPublicKey) -> Option<&MasterKey> {
        std::iter::once(&self.master).chain(self.previous_masters.iter().rev()).find(|key| key.public() == *public)
    }

    /// Makes `new` the current master key and keeps the old one in the previous
    /// masters. Rotating to the key already current changes nothing, so a retried
    /// rotation does not list the same key twice.
    pub fn rotate_master(&mut self, new: MasterKey) {
        if new.public() == self.master.public() {
            return;
        }
        let old = std::mem::replace(&mut self.master, new);
        self.previous_masters.push(old);
    }

    /// The key that seals the gateway's local cache (its store's encrypted rows).
    pub fn storage_key(&self) -> &SecretBoxKey {
        &self.storage_key
    }

    /// Every message key, in the order added, retired ones included.
    pub fn message_keys(&self) -> &[MessageKey] {
        &self.message_keys
    }

    /// The secret for a message public key, retired or not: a message may arrive
    /// sealed to a key that was issued just before it was discarded.
    pub fn secret_for(&self, public: &BoxPublicKey) -> Option<&BoxSecretKey> {
        self.find(public).map(|key| &key.secret)
    }

    /// Records a new message key pair, created `now`, and returns its public key.
    /// Adding a key already present keeps the existing entry (and its times), so a
    /// retried upload cannot reset a key's retirement.
    pub fn add_message_key(&mut self, secret: BoxSecretKey, kind: KeyKind, now: i64) -> BoxPublicKey {
        let public = secret.public();
        if self.find(&public).is_none() {
            self.message_keys.push(MessageKey { secret, public, kind, created_at: now, retired_at: None });
        }
        public
    }

    /// Marks a key discarded at `now` (replaced on the server, or an ephemeral key
    /// used). Its secret stays until [`Self::prune`] drops it. Returns whether the key
    /// is known. A key already retired keeps its first retirement time, so retiring
    /// twice cannot stretch how long it is kept.
    pub fn retire(&mut self, public: &BoxPublicKey, now: i64) -> bool {
        match self.message_keys.iter_mut().find(|key| key.public == *public) {
            Some(key) => {
                key.retired_at.get_or_insert(now);
                true
            }
            None => false,
        }
    }

    /// The non-ephemeral key in use: the newest one not retired (by creation time,
    /// then by the order added).
    pub fn current_nonephemeral(&self) -> Option<&MessageKey> {
        self.message_keys
            .iter()
            .filter(|key| key.kind == KeyKind::Nonephemeral && key.retired_at.is_none())
            .max_by_key(|key| key.created_at)
    }

    /// The ephemeral keys not yet retired, in the order added: what the server may
    /// still hand out.
    pub fn unretired_ephemeral(&self) -> impl Iterator<Item = &MessageKey> + '_ {
        self.message_keys.iter().filter(|key| key.kind == KeyKind::Ephemeral && key.retired_at.is_none())
    }

    /// Drops the keys retired more than `keep_for_secs` before `now` and returns how
    /// many were dropped. Keys not retired are never dropped; the retention bound is
    /// the operator's choice (spec: keep them "for some time").
    pub fn prune(&mut self, now: i64, keep_for_secs: u64) -> usize {
        let before = self.message_keys.len();
        self.message_keys.retain(|key| match key.retired_at {
            Some(retired) => now.saturating_sub(retired) <= i64::try_from(keep_for_secs).unwrap_or(i64::MAX),
            None => true,
        });
        before - self.message_keys.len()
    }

    /// Sets the password the mail client logs in to the gateway with, stored only as
    /// an Argon2id PHC string at [`KdfParams::local_password`]'s cost (why it is low
    /// is said there).
    pub fn set_local_password(&mut self, password: &str) -> Result<(), KeystoreError> {
        self.set_local_password_with(password, KdfParams::local_password())
    }

    /// [`Self::set_local_password`] with explicit cost (tests use
    /// [`KdfParams::for_tests`]); the cost is recorded in the PHC string.
    pub fn set_local_password_with(&mut self, password: &str, params: KdfParams) -> Result<(), KeystoreError> {
        let mut salt = [0u8; 16];
        OsRng.fill_bytes(&mut salt);
        let refused =
            |reason: argon2::password_hash::Error| KeystoreError::LocalPassword { reason: reason.to_string() };
        let salt = SaltString::encode_b64(&salt).map_err(refused)?;
        let hash = params.argon2(None)?.hash_password(password.as_bytes(), &salt).map_err(refused)?;
        self.local_password = Some(hash.to_string());
        Ok(())
    }

    /// Removes the local password; every login then fails.
    pub fn clear_local_password(&mut self) {
        self.local_password = None;
    }

    /// Whether a local password is set.
    pub fn has_local_password(&self) -> bool {
        self.local_password.is_some()
    }

    /// Whether `password` is the local password. False when none is set or the stored
    /// string does not parse; the comparison inside argon2 is constant-time.
    pub fn verify_local_password(&self, password: &str) -> bool {
        let Some(stored) = &self.local_password else { return false };
        let Ok(hash) = PasswordHash::new(stored) else { return false };
        argon2::Argon2::default().verify_password(password.as_bytes(), &hash).is_ok()
    }

    fn find(&self, public: &BoxPublicKey) -> Option<&MessageKey> {
        self.message_keys.iter().find(|key| key.public == *public)
    }
}

impl std::fmt::Debug for Keystore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let retired = self.message_keys.iter().filter(|key| key.retired_at.is_some()).count();
        f.debug_struct("Keystore")
            .field("address", &self.address)
            .field("master", &self.master)
            .field("previous_masters", &self.previous_masters.len())
            .field("message_keys", &self.message_keys.len())
            .field("retired_message_keys", &retired)
            .field("storage_key", &self.storage_key)
            .field("local_password", &if self.local_password.is_some() { "set (redacted)" } else { "unset" })
            .finish()
    }
}

/// The secret parts of a keystore as plain bytes, for the file format; every buffer
/// zeroizes on drop.
pub(crate) struct KeystoreParts {
    pub address: Address,
    pub master_seed: Zeroizing<[u8; 32]>,
    pub previous_master_seeds: Vec<Zeroizing<[u8; 32]>>,
    pub message_keys: Vec<MessageKeyParts>,
    pub storage_key: Zeroizing<[u8; 32]>,
    pub local_password: Option<Zeroizing<String>>,
    pub device: Option<OwnDeviceParts>,
    pub devices: Vec<DeviceEntry>,
}

/// This device's name and key pair as stored.
pub(crate) struct OwnDeviceParts {
    pub name: String,
    pub sign_seed: Zeroizing<[u8; 32]>,
    pub box_secret: Zeroizing<[u8; 32]>,
}

pub(crate) struct MessageKeyParts {
    pub secret: Zeroizing<[u8; 32]>,
    pub kind: KeyKind,
    pub created_at: i64,
    pub retired_at: Option<i64>,
}

impl Keystore {
    pub(crate) fn to_parts(&self) -> KeystoreParts {
        KeystoreParts {
            address: self.address.clone(),
            master_seed: self.master.seed(),
            previous_master_seeds: self.previous_masters.iter().map(MasterKey::seed).collect(),
            message_keys: self
                .message_keys
                .iter()
                .map(|key| MessageKeyParts {
                    secret: key.secret.to_bytes(),
                    kind: key.kind,
                    created_at: key.created_at,
                    retired_at: key.retired_at,
                })
                .collect(),
            storage_key: self.storage_key.to_bytes(),
            local_password: self.local_password.clone().map(Zeroizing::new),
            device: self.device.as_ref().map(OwnDevice::to_parts),
            devices: self.devices.clone(),
        }
    }

    pub(crate) fn from_parts(parts: KeystoreParts) -> Self {
        let message_keys = parts
            .message_keys
            .iter()
            .map(|key| {
                let secret = BoxSecretKey::from_bytes(*key.secret);
                MessageKey {
                    public: secret.public(),
                    secret,
                    kind: key.kind,
                    created_at: key.created_at,
                    retired_at: key.retired_at,
                }
            })
            .collect();
        Self {
            address: parts.address.clone(),
            master: MasterKey::from_seed(&parts.master_seed),
            previous_masters: parts.previous_master_seeds.iter().map(|seed| MasterKey::from_seed(seed)).collect(),
            message_keys,
            storage_key: SecretBoxKey::from_bytes(*parts.storage_key),
            local_password: parts.local_password.as_deref().cloned(),
            device: parts.device.as_ref().map(OwnDevice::from_parts),
            devices: parts.devices.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;

    fn keystore() -> Keystore {
        Keystore::new(
            Address::parse("alice#example.org").unwrap(),
            MasterKey::generate(&mut OsRng),
            SecretBoxKey::generate(&mut OsRng),
        )
    }

    #[test]
    fn message_keys_are_found_retired_or_not() {
        let mut store = keystore();
        let secret = BoxSecretKey::generate(&mut OsRng);
        let public = store.add_message_key(secret.clone(), KeyKind::Ephemeral, 100);
        assert_eq!(public, secret.public());
        assert_eq!(store.secret_for(&public).unwrap().to_bytes(), secret.to_bytes());
        assert!(store.retire(&public, 200));
        assert_eq!(store.secret_for(&public).unwrap().to_bytes(), secret.to_bytes());
        assert!(store.secret_for(&BoxSecretKey::generate(&mut OsRng).public()).is_none());
        assert!(!store.retire(&BoxSecretKey::generate(&mut OsRng).public(), 200));
    }

    #[test]
    fn adding_or_retiring_twice_keeps_the_first_times() {
        let mut store = keystore();
        let secret = BoxSecretKey::generate(&mut OsRng);
        let public = store.add_message_key(secret.clone(), KeyKind::Ephemeral, 100);
        store.add_message_key(secret, KeyKind::Nonephemeral, 999);
        assert_eq!(store.message_keys().len(), 1);
        assert_eq!(store.message_keys()[0].created_at(), 100);
        assert_eq!(store.message_keys()[0].kind(), KeyKind::Ephemeral);
        store.retire(&public, 200);
        store.retire(&public, 5_000);
        assert_eq!(store.message_keys()[0].retired_at(), Some(200));
    }

    #[test]
    fn current_nonephemeral_is_the_newest_unretired_one() {
        let mut store = keystore();
        assert!(store.current_nonephemeral().is_none());
        let old = store.add_message_key(BoxSecretKey::generate(&mut OsRng), KeyKind::Nonephemeral, 10);
        let new = store.add_message_key(BoxSecretKey::generate(&mut OsRng), KeyKind::Nonephemeral, 20);
        store.add_message_key(BoxSecretKey::generate(&mut OsRng), KeyKind::Ephemeral, 30);
        assert_eq!(*store.current_nonephemeral().unwrap().public(), new);
        store.retire(&new, 40);
        assert_eq!(*store.current_nonephemeral().unwrap().public(), old);
        store.retire(&old, 40);
        assert!(store.current_nonephemeral().is_none());
    }

    #[test]
    fn unretired_ephemeral_lists_only_live_ephemeral_keys() {
        let mut store = keystore();
        let first = store.add_message_key(BoxSecretKey::generate(&mut OsRng), KeyKind::Ephemeral, 1);
        let second = store.add_message_key(BoxSecretKey::generate(&mut OsRng), KeyKind::Ephemeral, 2);
        let third = store.add_message_key(BoxSecretKey::generate(&mut OsRng), KeyKind::Ephemeral, 3);
        store.add_message_key(BoxSecretKey::generate(&mut OsRng), KeyKind::Nonephemeral, 4);
        store.retire(&second, 5);
        let live: Vec<BoxPublicKey> = store.unretired_ephemeral().map(|key| *key.public()).collect();
        assert_eq!(live, vec![first, third]);
    }

    #[test]
    fn prune_drops_only_keys_retired_longer_ago_than_keep_for() {
        let now = 100 * DAY;
        let keep_for = 30 * DAY as u64;
        let mut store = keystore();
        let live = store.add_message_key(BoxSecretKey::generate(&mut OsRng), KeyKind::Ephemeral, 0);
        let recent = store.add_message_key(BoxSecretKey::generate(&mut OsRng), KeyKind::Ephemeral, 0);
        let boundary = store.add_message_key(BoxSecretKey::generate(&mut OsRng), KeyKind::Nonephemeral, 0);
        let old = store.add_message_key(BoxSecretKey::generate(&mut OsRng), KeyKind::Ephemeral, 0);
        store.retire(&recent, now - DAY);
        store.retire(&boundary, now - 30 * DAY);
        store.retire(&old, now - 30 * DAY - 1);
        assert_eq!(store.prune(now, keep_for), 1);
        assert!(store.secret_for(&old).is_none());
        for kept in [live, recent, boundary] {
            assert!(store.secret_for(&kept).is_some());
        }
        assert_eq!(store.prune(now, keep_for), 0);
        // A clock far in the past or a huge retention never drops anything.
        assert_eq!(store.prune(i64::MIN, 0), 0);
        assert_eq!(store.prune(now, u64::MAX), 0);
    }

    #[test]
    fn rotation_keeps_previous_masters_for_old_messages() {
        let mut store = keystore();
        let first = store.master().public();
        let second = MasterKey::generate(&mut OsRng);
        let second_public = second.public();
        store.rotate_master(second);
        store.rotate_master(MasterKey::from_seed(&store.master().seed()));
        assert_eq!(store.master().public(), second_public);
        assert_eq!(store.previous_masters().len(), 1);
        assert_eq!(store.master_for(&first).unwrap().public(), first);
        assert_eq!(store.master_for(&second_public).unwrap().public(), second_public);
        assert!(store.master_for(&MasterKey::generate(&mut OsRng).public()).is_none());
    }

    #[test]
    fn local_password_verifies_only_the_right_password() {
        let mut store = keystore();
        assert!(!store.verify_local_password(""));
        store.set_local_password_with("correct horse", KdfParams::for_tests()).unwrap();
        assert!(store.has_local_password());
        assert!(store.verify_local_password("correct horse"));
        assert!(!store.verify_local_password("correct horse "));
        assert!(!store.verify_local_password(""));
        assert!(store.local_password.as_deref().unwrap().starts_with("$argon2id$"));
        store.clear_local_password();
        assert!(!store.verify_local_password("correct horse"));
    }

    #[test]
    fn debug_shows_no_secret_bytes() {
        let seed = [0x42; 32];
        let mut store = Keystore::new(
            Address::parse("alice#example.org").unwrap(),
            MasterKey::from_seed(&seed),
            SecretBoxKey::from_bytes([0x42; 32]),
        );
        store.add_message_key(BoxSecretKey::from_bytes([0x42; 32]), KeyKind::Ephemeral, 1);
        store.set_local_password_with("hunter2", KdfParams::for_tests()).unwrap();
        let text = format!("{store:?} {:?}", store.message_keys());
        assert!(!text.contains("4242"), "{text}");
        assert!(!text.contains("argon2id"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("alice#example.org"), "{text}");
    }
}
