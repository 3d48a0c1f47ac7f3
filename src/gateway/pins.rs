//! One-time PINs (docs/devices.md; docs/protocol.md §12.5): `device pin` issues one on
//! an enrolled machine, and the running gateway approves the request that proves it
//! knows the PIN by itself, or denies it saying whether the PIN was wrong, already used
//! or expired. Only the PIN's key (`smimp::device::pin_key`) is kept, in a file per
//! account sealed with the account's storage key; changes happen under the keystore's
//! lock, so `device pin` and the running gateway never overwrite each other.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rand_core::OsRng;
use serde::{Deserialize, Serialize};

use crate::backend::account::Account;
use crate::client::SessionClient;
use crate::clock::unix_now;
use crate::discovery::Discovery;
use crate::gateway::context::{CommandError, Context};
use crate::gateway::devices::{grant, machine_name, GrantError};
use crate::keystore::{KdfParams, Keystore, KeystoreError, KeystoreLock, Passphrase};
use crate::listen::Shutdown;
use crate::smimp::address::Address;
use crate::smimp::crypto::{BoxNonce, Hash, SecretBoxKey};
use crate::smimp::device::{new_pin, pin_key, pin_proof_with, request_hash};
use crate::smimp::encoding::{base64_decode, base64_encode};
use crate::smimp::wire::{DenyReason, PendingRequest};

/// How long a PIN works.
pub const PIN_LIFETIME: Duration = Duration::from_secs(600);
/// How long a used or expired PIN is remembered, to tell its reuse from a wrong PIN.
const REMEMBER_SECS: i64 = 3600;
/// How often the running gateway looks for PIN requests while a PIN is remembered.
pub const PIN_POLL: Duration = Duration::from_secs(1);

/// One issued PIN: its key, expiry and use.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct PinRecord {
    key: Hash,
    expires_at: i64,
    used_at: Option<i64>,
}

/// The PIN file of `address` under the gateway's data directory.
pub fn pin_file(data_dir: &Path, address: &Address) -> PathBuf {
    data_dir.join("device-pins").join(format!("{}.pins", address.to_email()))
}

fn io<'a>(path: &'a Path, action: &'static str) -> impl FnOnce(std::io::Error) -> KeystoreError + 'a {
    move |source| KeystoreError::Io { action, path: path.to_path_buf(), source }
}

fn read(path: &Path, key: &SecretBoxKey) -> Result<Vec<PinRecord>, KeystoreError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(io(path, "read the PIN file")(err)),
    };
    let corrupt = |why: &str| KeystoreError::corrupt(path, why);
    let (nonce, body) = text.trim().split_once('\n').ok_or_else(|| corrupt("not two lines"))?;
    let nonce: BoxNonce = nonce.parse().map_err(|_| corrupt("the nonce"))?;
    let sealed = base64_decode(body).map_err(|_| corrupt("the body"))?;
    let plain = key.open(&nonce, &sealed).map_err(|_| corrupt("it does not open with the account's storage key"))?;
    serde_json::from_slice(&plain).map_err(|e| corrupt(&e.to_string()))
}

fn write(path: &Path, key: &SecretBoxKey, records: &[PinRecord]) -> Result<(), KeystoreError> {
    let nonce = BoxNonce::random(&mut OsRng);
    let plain = serde_json::to_vec(records).expect("PIN records serialise");
    let text = format!("{nonce}\n{}\n", base64_encode(&key.seal(&nonce, &plain)));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io(dir, "create the PIN directory"))?;
    }
    let temp = path.with_extension("pins.tmp");
    std::fs::write(&temp, text).map_err(io(&temp, "write the PIN file"))?;
    std::fs::rename(&temp, path).map_err(io(path, "replace the PIN file"))
}

/// `device pin`: a new one-time PIN for the account and when it expires (unix seconds).
pub async fn issue(ctx: &Context, address_text: &str, lifetime: Duration) -> Result<(String, i64), CommandError> {
    let (address, path, mut keystore, _lock) = ctx.open_account(address_text).await?;
    let now = unix_now();
    if keystore.device().is_none() {
        keystore.ensure_device(&machine_name(), now);
        (ctx.save(&path))(&keystore)?;
    }
    let file = pin_file(&ctx.config.gateway.data_dir, &address);
    let mut records = read(&file, keystore.storage_key())?;
    records.retain(|r| r.expires_at + REMEMBER_SECS > now);
    let pin = new_pin(&mut OsRng);
    let expires_at = now + i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX / 2);
    records.push(PinRecord { key: pin_key(&pin), expires_at, used_at: None });
    write(&file, keystore.storage_key(), &records)?;
    Ok((pin, expires_at))
}

/// What to do with a PIN request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Approve(usize),
    Deny(DenyReason),
}

fn judge(records: &[PinRecord], address: &Address, request: &PendingRequest, proof: &Hash, now: i64) -> Verdict {
    let hash = request_hash(address, &request.name, &request.device, &request.nonce);
    match records.iter().position(|r| pin_proof_with(&r.key, &hash) == *proof) {
        None => Verdict::Deny(DenyReason::WrongPin),
        Some(at) if records[at].used_at.is_some() => Verdict::Deny(DenyReason::UsedPin),
        Some(at) if records[at].expires_at <= now => Verdict::Deny(DenyReason::ExpiredPin),
        Some(at) => Verdict::Approve(at),
    }
}

/// Where the loop finds what it needs for one account.
#[derive(Clone)]
pub struct PinSettings {
    pub data_dir: PathBuf,
    pub kdf: KdfParams,
}

/// Every [`PIN_POLL`], for each account with a remembered PIN: answers its PIN requests.
pub async fn pin_approval_loop(
    discovery: Discovery,
    accounts: Vec<Arc<Account>>,
    settings: PinSettings,
    shutdown: Shutdown,
) {
    loop {
        for account in &accounts {
            if let Err(err) = answer_pin_requests(&discovery, account, &settings).await {
                tracing::warn!(account = %account.sender.address, error = %err, "PIN requests could not be answered");
            }
        }
        tokio::select! {
            () = tokio::time::sleep(PIN_POLL) => {}
            () = shutdown.requested() => return,
        }
    }
}

async fn answer_pin_requests(discovery: &Discovery, account: &Account, settings: &PinSettings) -> Result<(), String> {
    let address = &account.sender.address;
    let file = pin_file(&settings.data_dir, address);
    if !file.exists() {
        return Ok(());
    }
    let now = unix_now();
    let records = read(&file, account.keystore().storage_key()).map_err(|e| e.to_string())?;
    if !records.iter().any(|r| r.expires_at + REMEMBER_SECS > now) {
        return Ok(());
    }
    let owner = account.sender.sessions.own(discovery).await.map_err(|e| e.to_string())?;
    let pending = owner.device_pending().await.map_err(|e| e.to_string())?;
    for request in pending {
        let Some(proof) = request.pin_proof else { continue };
        match judge(&records, address, &request, &proof, now) {
            Verdict::Deny(reason) => {
                owner.device_deny(request.request_id, Some(reason)).await.map_err(|e| e.to_string())?;
                tracing::info!(account = %address, device = %request.name, reason = reason.as_str(), "PIN request denied");
            }
            Verdict::Approve(at) => {
                let Some((path, passphrase)) = account.keystore_file() else { continue };
                approve_with_pin(&owner, path, passphrase, settings, &file, &request, at).await?;
                account.reload();
                tracing::info!(account = %address, device = %request.name, "PIN request approved");
            }
        }
    }
    Ok(())
}

/// Approves one request under the keystore's lock and marks its PIN used.
async fn approve_with_pin(
    owner: &SessionClient,
    path: &Path,
    passphrase: &Passphrase,
    settings: &PinSettings,
    file: &Path,
    request: &PendingRequest,
    at: usize,
) -> Result<(), String> {
    let text = |e: KeystoreError| e.to_string();
    let _lock = KeystoreLock::take(path).map_err(text)?;
    let mut keystore = Keystore::load(path, passphrase).map_err(text)?;
    let mut records = read(file, keystore.storage_key()).map_err(text)?;
    let now = unix_now();
    if records.get(at).is_none_or(|r| r.used_at.is_some() || r.expires_at <= now) {
        return Ok(());
    }
    // Used first: a crash after the approval must not leave the PIN usable again.
    records[at].used_at = Some(now);
    write(file, keystore.storage_key(), &records).map_err(text)?;
    match grant(&mut keystore, owner, request, now).await {
        Ok(()) => keystore.save(path, passphrase, settings.kdf).map_err(text),
        Err(GrantError::Refused(refused)) => {
            let _ = owner.device_deny(request.request_id, None).await;
            Err(refused.to_string())
        }
        Err(GrantError::Client(err)) => Err(err.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smimp::device::{pin_proof, DeviceKeys};
    use crate::smimp::encoding::Id32;
    use crate::smimp::timestamp::Timestamp;

    #[test]
    fn a_proof_is_judged_by_the_pin_it_was_made_with() {
        let address = Address::parse("alice#example.org").unwrap();
        let request = PendingRequest {
            request_id: Id32([1; 32]),
            name: "laptop".into(),
            device: DeviceKeys::generate(&mut OsRng).public(),
            nonce: Id32([2; 32]),
            pin_proof: None,
            created_at: Timestamp::from_unix(0).unwrap(),
            expires_at: Timestamp::from_unix(600).unwrap(),
        };
        let hash = request_hash(&address, &request.name, &request.device, &request.nonce);
        let (live, used, old) = ("AAAA-BBBB-CCCC-DDDD", "EEEE-FFFF-GGGG-HHHH", "IIII-JJJJ-KKKK-LLLL");
        let records = vec![
            PinRecord { key: pin_key(live), expires_at: 100, used_at: None },
            PinRecord { key: pin_key(used), expires_at: 100, used_at: Some(10) },
            PinRecord { key: pin_key(old), expires_at: 40, used_at: None },
        ];
        let verdict = |pin: &str| judge(&records, &address, &request, &pin_proof(pin, &hash), 50);
        assert_eq!(verdict("aaaa bbbb cccc dddd"), Verdict::Approve(0));
        assert_eq!(verdict(used), Verdict::Deny(DenyReason::UsedPin));
        assert_eq!(verdict(old), Verdict::Deny(DenyReason::ExpiredPin));
        assert_eq!(verdict("AAAA-BBBB-CCCC-DDDE"), Verdict::Deny(DenyReason::WrongPin));
    }

    #[test]
    fn the_pin_file_opens_only_with_the_storage_key() {
        let dir = std::env::temp_dir().join(format!("smimp-pins-{}", std::process::id()));
        let file = dir.join("a.pins");
        let key = SecretBoxKey::generate(&mut OsRng);
        write(&file, &key, &[PinRecord { key: pin_key("x"), expires_at: 5, used_at: None }]).unwrap();
        assert_eq!(read(&file, &key).unwrap().len(), 1);
        assert!(read(&file, &SecretBoxKey::generate(&mut OsRng)).is_err());
        assert!(!std::fs::read_to_string(&file).unwrap().contains(&pin_key("x").to_hex()));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
