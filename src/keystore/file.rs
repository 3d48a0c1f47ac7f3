//! The keystore file: its format, its encryption, and the atomic write.
//!
//! ```text
//! {"format":"smimp-gateway-keystore","version":1,"kdf":{…,"salt":"hex"},"cipher":…,"nonce":"hex","verifier":"hex"}\n
//! base64(XSalsa20-Poly1305(secret document))\n
//! ```
//!
//! Argon2id (v0x13) turns the passphrase, a random 16-byte salt and the header's cost
//! into 64 bytes: the first 32 are the secretbox key, the BLAKE2b-256 of the last 32
//! is the header's `verifier`. So a wrong passphrase is told apart from a damaged
//! file: the verifier fails for the first, the MAC for the second. The secretbox has
//! no associated data, so the header is bound by the BLAKE2b-256 of its exact bytes
//! inside the encrypted document; any change to it is refused on load.
//!
//! Saving writes a fresh salt and nonce to a 0600 temporary file in the same
//! directory, syncs it, renames it over the target and syncs the directory: a crash
//! at any point leaves either the old keystore or the new one, never a mix.
//!
//! Depends only on `smimp/` (crypto, encoding, address, keys) and std/crates.

use std::ffi::OsString;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::passphrase::Passphrase;
use super::{Keystore, KeystoreError, KeystoreParts, MessageKeyParts, OwnDeviceParts};
use crate::smimp::address::Address;
use crate::smimp::crypto::{blake2b_256, BoxNonce, SecretBoxKey};
use crate::smimp::device::DeviceEntry;
use crate::smimp::encoding::{base64_decode, base64_encode, hex_to_array};
use crate::smimp::keys::KeyKind;

/// The `format` field of every keystore header.
pub const FORMAT_NAME: &str = "smimp-gateway-keystore";
/// The one format version this build writes and reads.
pub const FORMAT_VERSION: u64 = 1;
const KDF_ALGORITHM: &str = "argon2id";
const CIPHER: &str = "xsalsa20-poly1305";
const SALT_LEN: usize = 16;

/// Argon2id cost. Stored in each file's header, so changing the configured cost
/// affects only the next save.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KdfParams {
    /// Memory in KiB.
    pub m_cost_kib: u32,
    /// Passes over the memory.
    pub t_cost: u32,
    /// Lanes.
    pub p_cost: u32,
}

impl Default for KdfParams {
    /// 64 MiB, 3 passes, 1 lane: the keystore is unlocked once at start-up, so it can
    /// afford more than a login check (RFC 9106 §4's second recommended option).
    fn default() -> Self {
        Self { m_cost_kib: 64 * 1024, t_cost: 3, p_cost: 1 }
    }
}

impl KdfParams {
    /// Most memory a header may ask for (1 GiB): a forged header must not be able to
    /// make a small machine's gateway abort on allocation.
    pub const MAX_M_COST_KIB: u32 = 1024 * 1024;
    /// Most passes a header may ask for.
    pub const MAX_T_COST: u32 = 64;
    /// Most lanes a header may ask for.
    pub const MAX_P_COST: u32 = 16;

    /// The cheapest cost Argon2 allows (8 KiB, 1 pass): for tests only, never for a
    /// real keystore.
    pub fn for_tests() -> Self {
        Self { m_cost_kib: 8, t_cost: 1, p_cost: 1 }
    }

    /// The cost for the local login password, checked on every SMTP/IMAP login. That
    /// password is 144 random bits made by `init`, never one a person chose, so no
    /// hashing cost changes what guessing it takes (2^143 tries on average), while a
    /// memory-hard cost (19 MiB and tens of milliseconds per login) made every client
    /// connection slow and swelled the gateway's memory. Argon2id is kept for its PHC
    /// format; a keystore written with a higher cost still verifies at that cost.
    pub fn local_password() -> Self {
        Self { m_cost_kib: 64, t_cost: 1, p_cost: 1 }
    }

    /// Refuses a cost Argon2 cannot run or this code will not run.
    pub fn validate(&self) -> Result<(), KeystoreError> {
        let refuse = |reason: String| Err(KeystoreError::KdfParams { reason });
        if !(1..=Self::MAX_P_COST).contains(&self.p_cost) {
            return refuse(format!("p_cost {} is not between 1 and {}", self.p_cost, Self::MAX_P_COST));
        }
        if !(1..=Self::MAX_T_COST).contains(&self.t_cost) {
            return refuse(format!("t_cost {} is not between 1 and {}", self.t_cost, Self::MAX_T_COST));
        }
        let least = 8 * self.p_cost;
        if !(least..=Self::MAX_M_COST_KIB).contains(&self.m_cost_kib) {
            return refuse(format!(
                "m_cost_kib {} is not between {least} (8 per lane) and {}",
                self.m_cost_kib,
                Self::MAX_M_COST_KIB
            ));
        }
        Ok(())
    }

    /// Argon2id v0x13 with this cost and output length.
    pub(crate) fn argon2(&self, output_len: Option<usize>) -> Result<argon2::Argon2<'static>, KeystoreError> {
        self.validate()?;
        let params = argon2::Params::new(self.m_cost_kib, self.t_cost, self.p_cost, output_len)
            .map_err(|e| KeystoreError::KdfParams { reason: e.to_string() })?;
        Ok(argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params))
    }
}

/// The clear first line of the file.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    format: String,
    version: u64,
    kdf: KdfHeader,
    cipher: String,
    nonce: String,
    verifier: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KdfHeader {
    algorithm: String,
    m_cost_kib: u32,
    t_cost: u32,
    p_cost: u32,
    salt: String,
}

/// Read before the full header, so a newer version is reported as such rather than
/// as an unknown field.
#[derive(Deserialize)]
struct HeaderProbe {
    format: Option<String>,
    version: Option<u64>,
}

/// The encrypted document. Hex strings for secrets; wiped on drop.
#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
#[serde(deny_unknown_fields)]
struct SecretDocument {
    /// BLAKE2b-256 of the header line's bytes.
    header_hash: String,
    address: String,
    master_seed: String,
    previous_master_seeds: Vec<String>,
    message_keys: Vec<MessageKeyDocument>,
    storage_key: String,
    local_password: Option<String>,
    /// This machine as a device of the account (absent in keystores made before devices).
    #[serde(default)]
    device: Option<DeviceDocument>,
    #[serde(default)]
    devices: Vec<DeviceEntry>,
}

#[derive(Serialize, Deserialize, Zeroize)]
#[serde(deny_unknown_fields)]
struct DeviceDocument {
    name: String,
    sign_seed: String,
    box_secret: String,
}

#[derive(Serialize, Deserialize, Zeroize)]
#[serde(deny_unknown_fields)]
struct MessageKeyDocument {
    secret: String,
    #[zeroize(skip)]
    kind: KeyKind,
    created_at: i64,
    retired_at: Option<i64>,
}

/// 32 bytes of Argon2 output for the key and 32 for the verifier.
struct Derived(Zeroizing<[u8; 64]>);

impl Derived {
    fn new(passphrase: &Passphrase, salt: &[u8; SALT_LEN], params: KdfParams) -> Result<Self, KeystoreError> {
        let mut out = Zeroizing::new([0u8; 64]);
        params
            .argon2(Some(64))?
            .hash_password_into(passphrase.expose(), salt, out.as_mut())
            .map_err(|e| KeystoreError::KdfParams { reason: e.to_string() })?;
        Ok(Self(out))
    }

    fn key(&self) -> SecretBoxKey {
        let mut bytes = Zeroizing::new([0u8; 32]);
        bytes.copy_from_slice(&self.0[..32]);
        SecretBoxKey::from_bytes(*bytes)
    }

    fn verifier(&self) -> [u8; 32] {
        blake2b_256(&self.0[32..]).0
    }
}

impl Keystore {
    /// Encrypts the keystore under `passphrase` with a fresh salt and nonce and
    /// replaces `path` atomically (module doc). The file is created 0600.
    pub fn save(&self, path: &Path, passphrase: &Passphrase, params: KdfParams) -> Result<(), KeystoreError> {
        let bytes = self.seal(passphrase, params)?;
        write_atomically(path, &bytes)
    }

    /// Reads and decrypts a keystore. Tells a wrong passphrase ([`KeystoreError::WrongPassphrase`])
    /// from an altered file ([`KeystoreError::Tampered`]) and an unreadable one
    /// ([`KeystoreError::Corrupt`]); every error names `path`.
    pub fn load(path: &Path, passphrase: &Passphrase) -> Result<Keystore, KeystoreError> {
        let bytes = fs::read(path).map_err(KeystoreError::io("read the keystore", path))?;
        open(path, &bytes, passphrase)
    }

    /// The whole file's bytes.
    fn seal(&self, passphrase: &Passphrase, params: KdfParams) -> Result<Vec<u8>, KeystoreError> {
        params.validate()?;
        let mut salt = [0u8; SALT_LEN];
        OsRng.fill_bytes(&mut salt);
        let nonce = BoxNonce::random(&mut OsRng);
        let derived = Derived::new(passphrase, &salt, params)?;
        let header = Header {
            format: FORMAT_NAME.to_string(),
            version: FORMAT_VERSION,
            kdf: KdfHeader {
                algorithm: KDF_ALGORITHM.to_string(),
                m_cost_kib: params.m_cost_kib,
                t_cost: params.t_cost,
                p_cost: params.p_cost,
                salt: hex::encode(salt),
            },
            cipher: CIPHER.to_string(),
            nonce: nonce.to_hex(),
            verifier: hex::encode(derived.verifier()),
        };
        let header = serde_json::to_vec(&header).expect("a header of strings and numbers always serializes");
        let document = self.document(blake2b_256(&header).to_hex());
        // Sized up front so the buffer never reallocates and leaves copies behind.
        let mut plaintext = Zeroizing::new(Vec::with_capacity(
            1024 + 256 * document.message_keys.len() + 128 * document.previous_master_seeds.len(),
        ));
        serde_json::to_writer(&mut *plaintext, &document).expect("a document of strings always serializes");
        let ciphertext = derived.key().seal(&nonce, &plaintext);
        let mut file = header;
        file.push(b'\n');
        file.extend_from_slice(base64_encode(&ciphertext).as_bytes());
        file.push(b'\n');
        Ok(file)
    }

    fn document(&self, header_hash: String) -> SecretDocument {
        let parts = self.to_parts();
        SecretDocument {
            header_hash,
            address: parts.address.as_str().to_string(),
            master_seed: hex::encode(parts.master_seed.as_slice()),
            previous_master_seeds: parts
                .previous_master_seeds
                .iter()
                .map(|seed| hex::encode(seed.as_slice()))
                .collect(),
            message_keys: parts
                .message_keys
                .iter()
                .map(|key| MessageKeyDocument {
                    secret: hex::encode(key.secret.as_slice()),
                    kind: key.kind,
                    created_at: key.created_at,
                    retired_at: key.retired_at,
                })
                .collect(),
            storage_key: hex::encode(parts.storage_key.as_slice()),
            local_password: parts.local_password.as_deref().cloned(),
            device: parts.device.as_ref().map(|own| DeviceDocument {
                name: own.name.clone(),
                sign_seed: hex::encode(own.sign_seed.as_slice()),
                box_secret: hex::encode(own.box_secret.as_slice()),
            }),
            devices: parts.devices.clone(),
        }
    }
}

/// Decrypts a keystore file's bytes; `path` is only for the errors.
fn open(path: &Path, bytes: &[u8], passphrase: &Passphrase) -> Result<Keystore, KeystoreError> {
    let corrupt = |reason: &str| KeystoreError::corrupt(path, reason);
    let newline = bytes.iter().position(|&b| b == b'\n').ok_or_else(|| corrupt("no header line"))?;
    let (header_bytes, body) = (&bytes[..newline], &bytes[newline + 1..]);

    let probe: HeaderProbe =
        serde_json::from_slice(header_bytes).map_err(|e| corrupt(&format!("the header is not JSON: {e}")))?;
    if probe.format.as_deref() != Some(FORMAT_NAME) {
        return Err(corrupt("not a smimp-gateway keystore (the header's format is wrong)"));
    }
    match probe.version {
        Some(FORMAT_VERSION) => {}
        Some(found) => {
            return Err(KeystoreError::UnsupportedVersion {
                path: path.to_path_buf(),
                found,
                supported: FORMAT_VERSION,
            })
        }
        None => return Err(corrupt("the header has no version")),
    }
    let header: Header =
        serde_json::from_slice(header_bytes).map_err(|e| corrupt(&format!("the header is malformed: {e}")))?;
    if header.kdf.algorithm != KDF_ALGORITHM || header.cipher != CIPHER {
        return Err(corrupt("the header names an unknown KDF or cipher"));
    }
    let params = KdfParams { m_cost_kib: header.kdf.m_cost_kib, t_cost: header.kdf.t_cost, p_cost: header.kdf.p_cost };
    params.validate().map_err(|e| corrupt(&e.to_string()))?;
    let salt: [u8; SALT_LEN] = hex_to_array(&header.kdf.salt).map_err(|e| corrupt(&format!("salt: {e}")))?;
    let nonce = BoxNonce(hex_to_array(&header.nonce).map_err(|e| corrupt(&format!("nonce: {e}")))?);
    let verifier: [u8; 32] = hex_to_array(&header.verifier).map_err(|e| corrupt(&format!("verifier: {e}")))?;

    let body = std::str::from_utf8(body).map_err(|_| corrupt("the body is not text"))?;
    let body = body.strip_suffix('\n').ok_or_else(|| corrupt("the file is truncated (no final newline)"))?;
    let ciphertext = base64_decode(body).map_err(|e| corrupt(&format!("the body: {e}")))?;

    let derived = Derived::new(passphrase, &salt, params)?;
    if !constant_time_eq(&derived.verifier(), &verifier) {
        return Err(KeystoreError::WrongPassphrase { path: path.to_path_buf() });
    }
    let tampered = || KeystoreError::Tampered { path: path.to_path_buf() };
    let plaintext = Zeroizing::new(derived.key().open(&nonce, &ciphertext).map_err(|_| tampered())?);
    let document: SecretDocument = serde_json::from_slice(&plaintext)
        .map_err(|e| corrupt(&format!("the decrypted document is malformed: {e}")))?;
    if document.header_hash != blake2b_256(header_bytes).to_hex() {
        return Err(tampered());
    }
    Ok(Keystore::from_parts(parts_of(path, &document)?))
}

fn parts_of(path: &Path, document: &SecretDocument) -> Result<KeystoreParts, KeystoreError> {
    let secret = |what: &str, text: &str| {
        let mut bytes = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(text, bytes.as_mut())
            .map_err(|_| KeystoreError::corrupt(path, format!("{what} is not 32 bytes of hex")))?;
        Ok::<_, KeystoreError>(bytes)
    };
    Ok(KeystoreParts {
        address: Address::parse(&document.address)
            .map_err(|e| KeystoreError::corrupt(path, format!("the address: {e}")))?,
        master_seed: secret("the master key", &document.master_seed)?,
        previous_master_seeds: document
            .previous_master_seeds
            .iter()
            .map(|seed| secret("a previous master key", seed))
            .collect::<Result<_, _>>()?,
        message_keys: document
            .message_keys
            .iter()
            .map(|key| {
                Ok(MessageKeyParts {
                    secret: secret("a message key", &key.secret)?,
                    kind: key.kind,
                    created_at: key.created_at,
                    retired_at: key.retired_at,
                })
            })
            .collect::<Result<_, KeystoreError>>()?,
        storage_key: secret("the storage key", &document.storage_key)?,
        local_password: document.local_password.as_ref().map(|text| Zeroizing::new(text.clone())),
        device: match &document.device {
            Some(own) => Some(OwnDeviceParts {
                name: own.name.clone(),
                sign_seed: secret("the device signing key", &own.sign_seed)?,
                box_secret: secret("the device box key", &own.box_secret)?,
            }),
            None => None,
        },
        devices: document.devices.clone(),
    })
}

/// Equality that does not stop at the first difference.
fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Temp file, sync, rename, directory sync (module doc).
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), KeystoreError> {
    let temp = write_temp(path, bytes)?;
    if let Err(source) = fs::rename(&temp, path) {
        // Best effort: the temp file holds only ciphertext.
        let _ = fs::remove_file(&temp);
        return Err(KeystoreError::Io { action: "replace the keystore", path: path.to_path_buf(), source });
    }
    let dir = directory_of(path);
    fs::File::open(&dir)
        .and_then(|dir| dir.sync_all())
        .map_err(KeystoreError::io("sync the keystore's directory", &dir))
}

/// The first step of a save: the new contents in a synced 0600 temporary file beside
/// `path`, whose path is returned. Until the rename, `path` is untouched.
fn write_temp(path: &Path, bytes: &[u8]) -> Result<PathBuf, KeystoreError> {
    let name = path.file_name().ok_or_else(|| KeystoreError::Io {
        action: "write the keystore",
        path: path.to_path_buf(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "the path names no file"),
    })?;
    let mut suffix = [0u8; 8];
    OsRng.fill_bytes(&mut suffix);
    let mut temp_name = OsString::from(".");
    temp_name.push(name);
    temp_name.push(format!(".tmp-{}", hex::encode(suffix)));
    let temp = directory_of(path).join(temp_name);

    let write = || -> std::io::Result<()> {
        let mut file = fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&temp)?;
        // The mode above is filtered by the umask; make it exactly 0600.
        file.set_permissions(fs::Permissions::from_mode(0o600))?;
        file.write_all(bytes)?;
        file.sync_all()
    };
    if let Err(source) = write() {
        let _ = fs::remove_file(&temp);
        return Err(KeystoreError::Io { action: "write the temporary keystore", path: temp, source });
    }
    Ok(temp)
}

fn directory_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smimp::crypto::{BoxSecretKey, MasterKey};

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> Self {
            let mut suffix = [0u8; 8];
            OsRng.fill_bytes(&mut suffix);
            let dir = std::env::temp_dir().join(format!(
                "smimp-keystore-{name}-{}-{}",
                std::process::id(),
                hex::encode(suffix)
            ));
            fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }

        fn file(&self) -> PathBuf {
            self.0.join("alice.keystore")
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn passphrase(text: &str) -> Passphrase {
        Passphrase::new(text.to_string())
    }

    fn full_keystore() -> Keystore {
        let mut store = Keystore::new(
            Address::parse("alice#example.org").unwrap(),
            MasterKey::generate(&mut OsRng),
            SecretBoxKey::generate(&mut OsRng),
        );
        store.rotate_master(MasterKey::generate(&mut OsRng));
        store.rotate_master(MasterKey::generate(&mut OsRng));
        let used = store.add_message_key(BoxSecretKey::generate(&mut OsRng), KeyKind::Ephemeral, 1_000);
        store.add_message_key(BoxSecretKey::generate(&mut OsRng), KeyKind::Ephemeral, 1_001);
        store.add_message_key(BoxSecretKey::generate(&mut OsRng), KeyKind::Nonephemeral, 1_002);
        store.retire(&used, 2_000);
        store.set_local_password_with("imap login", KdfParams::for_tests()).unwrap();
        store
    }

    fn assert_same(a: &Keystore, b: &Keystore) {
        assert_eq!(a.address(), b.address());
        assert_eq!(*a.master().seed(), *b.master().seed());
        let seeds = |k: &Keystore| k.previous_masters().iter().map(|m| *m.seed()).collect::<Vec<_>>();
        assert_eq!(seeds(a), seeds(b));
        assert_eq!(*a.storage_key().to_bytes(), *b.storage_key().to_bytes());
        assert_eq!(a.local_password, b.local_password);
        assert_eq!(a.message_keys().len(), b.message_keys().len());
        for (x, y) in a.message_keys().iter().zip(b.message_keys()) {
            assert_eq!(*x.secret().to_bytes(), *y.secret().to_bytes());
            assert_eq!(x.public(), y.public());
            assert_eq!(x.kind(), y.kind());
            assert_eq!(x.created_at(), y.created_at());
            assert_eq!(x.retired_at(), y.retired_at());
        }
    }

    /// Saves `store` and returns the file's header line and body line, without newlines.
    fn saved(dir: &TempDir, store: &Keystore) -> (String, String) {
        store.save(&dir.file(), &passphrase("right"), KdfParams::for_tests()).unwrap();
        let text = fs::read_to_string(dir.file()).unwrap();
        let (header, body) = text.split_once('\n').unwrap();
        (header.to_string(), body.strip_suffix('\n').unwrap().to_string())
    }

    #[test]
    fn round_trip_keeps_every_field() {
        let dir = TempDir::new("round-trip");
        let store = full_keystore();
        saved(&dir, &store);
        let loaded = Keystore::load(&dir.file(), &passphrase("right")).unwrap();
        assert_same(&store, &loaded);
        assert!(loaded.verify_local_password("imap login"));
        assert_eq!(loaded.previous_masters().len(), 2);
        assert_eq!(loaded.message_keys()[0].retired_at(), Some(2_000));
    }

    #[test]
    fn header_is_small_json_and_holds_no_secret() {
        let dir = TempDir::new("header");
        let store = full_keystore();
        let (header, body) = saved(&dir, &store);
        let json: serde_json::Value = serde_json::from_str(&header).unwrap();
        assert_eq!(json["format"], FORMAT_NAME);
        assert_eq!(json["version"], FORMAT_VERSION);
        assert_eq!(json["kdf"]["algorithm"], "argon2id");
        assert_eq!(json["kdf"]["t_cost"], 1);
        assert_eq!(json["kdf"]["salt"].as_str().unwrap().len(), 32);
        assert_eq!(json["nonce"].as_str().unwrap().len(), 48);
        let file = fs::read_to_string(dir.file()).unwrap();
        assert!(!file.contains(&hex::encode(*store.master().seed())));
        assert!(!file.contains("alice"));
        assert!(base64_decode(&body).is_ok());
    }

    #[test]
    fn each_save_uses_a_fresh_salt_and_nonce() {
        let dir = TempDir::new("fresh");
        let store = full_keystore();
        let (first, _) = saved(&dir, &store);
        let (second, _) = saved(&dir, &store);
        let first: serde_json::Value = serde_json::from_str(&first).unwrap();
        let second: serde_json::Value = serde_json::from_str(&second).unwrap();
        assert_ne!(first["kdf"]["salt"], second["kdf"]["salt"]);
        assert_ne!(first["nonce"], second["nonce"]);
    }

    #[test]
    fn wrong_passphrase_is_told_apart_and_names_the_file() {
        let dir = TempDir::new("wrong");
        saved(&dir, &full_keystore());
        let error = Keystore::load(&dir.file(), &passphrase("wrong")).unwrap_err();
        assert!(matches!(&error, KeystoreError::WrongPassphrase { path } if *path == dir.file()), "{error:?}");
        let message = error.to_string();
        assert!(message.contains(&dir.file().display().to_string()), "{message}");
        assert!(message.contains("wrong passphrase"), "{message}");
    }

    #[test]
    fn any_flipped_ciphertext_byte_is_tampering() {
        let dir = TempDir::new("flip");
        let (header, body) = saved(&dir, &full_keystore());
        let ciphertext = base64_decode(&body).unwrap();
        for index in [0, 15, 16, ciphertext.len() / 2, ciphertext.len() - 1] {
            let mut changed = ciphertext.clone();
            changed[index] ^= 0x01;
            fs::write(dir.file(), format!("{header}\n{}\n", base64_encode(&changed))).unwrap();
            let error = Keystore::load(&dir.file(), &passphrase("right")).unwrap_err();
            assert!(matches!(error, KeystoreError::Tampered { .. }), "byte {index}: {error:?}");
        }
    }

    #[test]
    fn changed_header_fields_are_never_accepted() {
        let dir = TempDir::new("header-change");
        let (header, body) = saved(&dir, &full_keystore());
        let mut json: serde_json::Value = serde_json::from_str(&header).unwrap();
        let original = json.clone();
        type Edit = fn(&mut serde_json::Value);
        let edits: [(&str, Edit); 5] = [
            ("t_cost", |v| v["kdf"]["t_cost"] = 2.into()),
            ("m_cost", |v| v["kdf"]["m_cost_kib"] = 16.into()),
            ("salt", |v| v["kdf"]["salt"] = "00".repeat(16).into()),
            ("nonce", |v| v["nonce"] = "00".repeat(24).into()),
            ("verifier", |v| v["verifier"] = "00".repeat(32).into()),
        ];
        for (what, edit) in edits {
            json.clone_from(&original);
            edit(&mut json);
            fs::write(dir.file(), format!("{json}\n{body}\n")).unwrap();
            let result = Keystore::load(&dir.file(), &passphrase("right"));
            assert!(
                matches!(result, Err(KeystoreError::Tampered { .. } | KeystoreError::WrongPassphrase { .. })),
                "{what}: {result:?}"
            );
        }
        // Same fields, other bytes (spacing): the verifier and the MAC pass, the
        // header hash inside the document does not.
        let spaced = header.replacen(':', ": ", 1);
        fs::write(dir.file(), format!("{spaced}\n{body}\n")).unwrap();
        let result = Keystore::load(&dir.file(), &passphrase("right"));
        assert!(matches!(result, Err(KeystoreError::Tampered { .. })), "{result:?}");
    }

    #[test]
    fn truncated_or_garbled_files_are_corrupt() {
        let dir = TempDir::new("corrupt");
        let (header, body) = saved(&dir, &full_keystore());
        let whole = format!("{header}\n{body}\n");
        let cases = [
            String::new(),
            "garbage".to_string(),
            whole[..header.len() / 2].to_string(),
            format!("{header}\n"),
            whole[..whole.len() - 10].to_string(),
            format!("{header}\n!!not base64!!\n"),
            format!("{}\n{body}\n", header.replace(FORMAT_NAME, "something-else")),
            format!("{}\n{body}\n", header.replace("argon2id", "scrypt")),
            format!("{}\n{body}\n", header.replace("\"t_cost\":1", "\"t_cost\":0")),
            format!("{}\n{body}\n", header.replace("\"m_cost_kib\":8", "\"m_cost_kib\":4000000000")),
        ];
        for (index, case) in cases.iter().enumerate() {
            fs::write(dir.file(), case).unwrap();
            let error = Keystore::load(&dir.file(), &passphrase("right")).unwrap_err();
            assert!(
                matches!(&error, KeystoreError::Corrupt { path, .. } if *path == dir.file()),
                "case {index}: {error:?}"
            );
        }
    }

    #[test]
    fn a_newer_version_is_reported_as_such() {
        let dir = TempDir::new("version");
        let (header, body) = saved(&dir, &full_keystore());
        let newer = header.replace("\"version\":1", "\"version\":2").replace("\"cipher\"", "\"future\":1,\"cipher\"");
        fs::write(dir.file(), format!("{newer}\n{body}\n")).unwrap();
        let error = Keystore::load(&dir.file(), &passphrase("right")).unwrap_err();
        assert!(matches!(error, KeystoreError::UnsupportedVersion { found: 2, supported: 1, .. }), "{error:?}");
    }

    #[test]
    fn missing_file_is_an_io_error_naming_it() {
        let dir = TempDir::new("missing");
        let error = Keystore::load(&dir.file(), &passphrase("right")).unwrap_err();
        assert!(matches!(error, KeystoreError::Io { .. }), "{error:?}");
        assert!(error.to_string().contains(&dir.file().display().to_string()));
    }

    #[test]
    fn a_crash_before_the_rename_leaves_the_old_keystore() {
        let dir = TempDir::new("crash");
        let old = full_keystore();
        saved(&dir, &old);
        let mut new = full_keystore();
        new.add_message_key(BoxSecretKey::generate(&mut OsRng), KeyKind::Ephemeral, 3_000);
        let new_bytes = new.seal(&passphrase("right"), KdfParams::for_tests()).unwrap();
        // The whole temp file written and synced, then the crash.
        let complete = write_temp(&dir.file(), &new_bytes).unwrap();
        // A crash in the middle of writing another attempt's temp file.
        let partial = write_temp(&dir.file(), &new_bytes[..new_bytes.len() / 3]).unwrap();
        assert_ne!(complete, partial);
        assert_eq!(complete.parent(), dir.file().parent());
        let loaded = Keystore::load(&dir.file(), &passphrase("right")).unwrap();
        assert_same(&old, &loaded);
        // The next save goes through despite the leftovers.
        new.save(&dir.file(), &passphrase("right"), KdfParams::for_tests()).unwrap();
        assert_same(&new, &Keystore::load(&dir.file(), &passphrase("right")).unwrap());
    }

    #[test]
    fn files_are_0600_even_when_replacing_a_wider_file() {
        let dir = TempDir::new("mode");
        fs::write(dir.file(), "old").unwrap();
        fs::set_permissions(dir.file(), fs::Permissions::from_mode(0o644)).unwrap();
        saved(&dir, &full_keystore());
        assert_eq!(fs::metadata(dir.file()).unwrap().permissions().mode() & 0o777, 0o600);
        let leftovers: Vec<_> = fs::read_dir(&dir.0).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(leftovers, vec![OsString::from("alice.keystore")], "no temp file is left behind");
    }

    #[test]
    fn relative_paths_save_in_their_directory() {
        assert_eq!(directory_of(Path::new("alice.keystore")), PathBuf::from("."));
        assert_eq!(directory_of(Path::new("/var/lib/x/alice.keystore")), PathBuf::from("/var/lib/x"));
        assert!(matches!(write_temp(Path::new("/"), b"x"), Err(KeystoreError::Io { .. })));
    }

    #[test]
    fn kdf_params_are_bounded() {
        KdfParams::default().validate().unwrap();
        KdfParams::for_tests().validate().unwrap();
        KdfParams::local_password().validate().unwrap();
        assert_eq!(KdfParams::default(), KdfParams { m_cost_kib: 65536, t_cost: 3, p_cost: 1 });
        for bad in [
            KdfParams { m_cost_kib: 7, t_cost: 1, p_cost: 1 },
            KdfParams { m_cost_kib: 8, t_cost: 1, p_cost: 2 },
            KdfParams { m_cost_kib: 8, t_cost: 0, p_cost: 1 },
            KdfParams { m_cost_kib: 8, t_cost: 1, p_cost: 0 },
            KdfParams { m_cost_kib: KdfParams::MAX_M_COST_KIB + 1, t_cost: 1, p_cost: 1 },
            KdfParams { m_cost_kib: 64, t_cost: KdfParams::MAX_T_COST + 1, p_cost: 1 },
        ] {
            assert!(matches!(bad.validate(), Err(KeystoreError::KdfParams { .. })), "{bad:?}");
        }
        let dir = TempDir::new("params");
        let refused =
            full_keystore().save(&dir.file(), &passphrase("x"), KdfParams { t_cost: 0, ..KdfParams::for_tests() });
        assert!(matches!(refused, Err(KeystoreError::KdfParams { .. })));
        assert!(!dir.file().exists());
    }
}
