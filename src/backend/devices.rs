//! Message keys shared between an account's devices (docs/devices.md; docs/protocol.md
//! §12.6): keys one device's upkeep creates are sealed to every other device's box key
//! and signed by the master key, and left on the server; each device picks up the
//! shares left for it, so mail sealed to a key topped up on one machine opens on all.
//! A share opens only with the recipient device's key and counts only when signed by a
//! master key the keystore holds.

use std::path::Path;

use rand_core::OsRng;

use crate::client::account::AccountError;
use crate::client::{ClientError, ServerClient, SessionClient};
use crate::discovery::Discovery;
use crate::keystore::{KdfParams, Keystore, KeystoreError, KeystoreLock, Passphrase};
use crate::smimp::crypto::{BoxPublicKey, MasterKey, MasterPublicKey};
use crate::smimp::device::{open_share, seal_share};
use crate::smimp::encoding::Id32;
use crate::smimp::profile::verify_history;
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

/// Opens the shares left for this device and adds the keys the keystore lacks: the
/// number of keys added. A share counts when signed by a master key the keystore holds,
/// or by `rotated_to` — the account's current key, when its verified history leads to
/// it from a key the keystore holds (a revocation on another device); such a share's
/// master key is taken over. The device list is taken from shares by the newest signer.
pub fn take_shares(keystore: &mut Keystore, shares: &[DeviceShare], rotated_to: Option<MasterPublicKey>) -> usize {
    let Some(own) = keystore.device() else { return 0 };
    let public = own.keys.public();
    let opened: Vec<_> = shares
        .iter()
        .filter(|share| share.recipient == public)
        .filter_map(|share| {
            let signer = share.sealed.master_key;
            if keystore.master_for(&signer).is_none() && Some(signer) != rotated_to {
                return None;
            }
            let address = keystore.address();
            match open_share(address, &share.share_id, &public, &share.sealed, own.keys.box_key(), &signer) {
                Ok(secrets) => Some((signer, secrets)),
                Err(err) => {
                    tracing::warn!(share = %share.share_id, error = %err, "a key share was refused");
                    None
                }
            }
        })
        .collect();
    let mut added = 0;
    for (signer, secrets) in opened {
        if Some(signer) == rotated_to
            && MasterKey::from_seed(&secrets.master_seed().unwrap_or_default()).public() == signer
        {
            let _ = keystore.take_master(&secrets);
        }
        added += keystore.add_shared_keys(&secrets).unwrap_or(0);
        if signer == keystore.master().public() && !secrets.devices.is_empty() {
            keystore.set_devices(secrets.devices.clone());
        }
    }
    added
}

/// The account's current master key when it is not one the keystore holds but its
/// verified history leads to it from one the keystore holds.
async fn rotated_to(server: &ServerClient, keystore: &Keystore) -> Result<Option<MasterPublicKey>, ShareError> {
    let history = server.user_history(keystore.address()).await?;
    let Ok(history) = verify_history(keystore.address(), &history.history) else { return Ok(None) };
    let current = history.current_key();
    let known = history.records().iter().any(|record| keystore.master_for(&record.data.public_key).is_some());
    Ok((keystore.master_for(&current).is_none() && known).then_some(current))
}

/// Picks up this device's shares for the keystore at `path` (under its lock, saved when
/// anything changed): the number of keys added.
pub async fn pick_up_shares(
    discovery: &Discovery,
    path: &Path,
    passphrase: &Passphrase,
    kdf: KdfParams,
) -> Result<usize, ShareError> {
    let _lock = KeystoreLock::take(path)?;
    let mut keystore = Keystore::load(path, passphrase)?;
    let Some(own) = keystore.device() else { return Ok(0) };
    let box_key = own.keys.public().box_key;
    let address = keystore.address().clone();
    let server = ServerClient::connect(discovery, address.domain()).await?;
    let shares = server.device_shares(&address, box_key).await?;
    if shares.is_empty() {
        return Ok(0);
    }
    let rotated = if shares.iter().any(|s| keystore.master_for(&s.sealed.master_key).is_none()) {
        rotated_to(&server, &keystore).await?
    } else {
        None
    };
    let master = keystore.master().public();
    let added = take_shares(&mut keystore, &shares, rotated);
    if added > 0 || keystore.master().public() != master {
        keystore.save(path, passphrase, kdf)?;
    }
    Ok(added)
}
