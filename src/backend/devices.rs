//! Message keys shared between an account's devices (docs/devices.md; docs/protocol.md
//! §12.6): keys one device's upkeep creates are sealed to every other device's box key
//! and signed by the master key, and left on the server; each device picks up the
//! shares left for it, so mail sealed to a key topped up on one machine opens on all.
//! A share opens only with the recipient device's key and counts only when signed by a
//! master key the keystore holds.

use std::path::Path;

use rand_core::OsRng;

use crate::client::account::{owner_session, AccountError};
use crate::client::{ClientError, ServerClient, SessionClient};
use crate::discovery::Discovery;
use crate::keystore::{KdfParams, Keystore, KeystoreError, KeystoreLock, Passphrase};
use crate::smimp::crypto::BoxPublicKey;
use crate::smimp::device::{open_share, seal_share};
use crate::smimp::encoding::Id32;
use crate::smimp::wire::DeviceShare;

/// The most shares sent in one call (the server's limit per call).
const SHARES_PER_CALL: usize = 64;

/// Why keys could not be shared or picked up.
#[derive(Debug, thiserror::Error)]
pub enum ShareError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Account(#[from] AccountError),
    #[error(transparent)]
    Keystore(#[from] KeystoreError),
}

/// Seals the message keys `publics` (and the device list) to every other device of the
/// account and leaves them on the server: the number of devices shared with.
pub async fn share_keys(
    owner: &SessionClient,
    keystore: &Keystore,
    publics: &[BoxPublicKey],
    now: i64,
) -> Result<usize, ShareError> {
    let Some(own) = keystore.device() else { return Ok(0) };
    let own = own.keys.public();
    if publics.is_empty() {
        return Ok(0);
    }
    let secrets = keystore.share_of(publics);
    let address = keystore.address();
    let shares: Vec<DeviceShare> = keystore
        .devices()
        .iter()
        .filter(|device| device.keys != own)
        .map(|device| {
            let share_id = Id32::random(&mut OsRng);
            let sealed = seal_share(address, &share_id, &device.keys, &secrets, keystore.master(), now, &mut OsRng);
            DeviceShare { share_id, recipient: device.keys, sealed }
        })
        .collect();
    let count = shares.len();
    for chunk in shares.chunks(SHARES_PER_CALL) {
        owner.device_put_shares(chunk.to_vec()).await?;
    }
    Ok(count)
}

/// Opens the shares left for this device and adds the keys the keystore lacks (a
/// share signed by a master key the keystore does not hold is ignored): the number of
/// keys added. The device list is taken from shares signed by the current master key.
pub fn take_shares(keystore: &mut Keystore, shares: &[DeviceShare]) -> usize {
    let Some(own) = keystore.device() else { return 0 };
    let public = own.keys.public();
    let opened: Vec<_> = shares
        .iter()
        .filter(|share| share.recipient == public)
        .filter_map(|share| {
            let signer = keystore.master_for(&share.sealed.master_key)?.public();
            let address = keystore.address();
            let secrets = open_share(address, &share.share_id, &public, &share.sealed, own.keys.box_key(), &signer);
            match secrets {
                Ok(secrets) => Some((signer, secrets)),
                Err(err) => {
                    tracing::warn!(share = %share.share_id, error = %err, "a key share was refused");
                    None
                }
            }
        })
        .collect();
    let current = keystore.master().public();
    let mut added = 0;
    for (signer, secrets) in opened {
        added += keystore.add_shared_keys(&secrets).unwrap_or(0);
        if signer == current && !secrets.devices.is_empty() {
            keystore.set_devices(secrets.devices.clone());
        }
    }
    added
}

/// Picks up this device's shares for the keystore at `path` (under its lock, saved when
/// keys were added): the number of keys added.
pub async fn pick_up_shares(
    discovery: &Discovery,
    path: &Path,
    passphrase: &Passphrase,
    kdf: KdfParams,
) -> Result<usize, ShareError> {
    let _lock = KeystoreLock::take(path)?;
    let mut keystore = Keystore::load(path, passphrase)?;
    let Some(own) = keystore.device() else { return Ok(0) };
    if keystore.devices().len() < 2 {
        return Ok(0);
    }
    let box_key = own.keys.public().box_key;
    let address = keystore.address().clone();
    let server = ServerClient::connect(discovery, address.domain()).await?;
    let owner = owner_session(server, &address, &keystore).await?;
    let shares = owner.device_shares(box_key).await;
    let _ = owner.logout().await;
    let added = take_shares(&mut keystore, &shares?);
    if added > 0 {
        keystore.save(path, passphrase, kdf)?;
    }
    Ok(added)
}
