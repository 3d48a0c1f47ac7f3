//! Keeps each account's supply of single-use (ephemeral) message keys on its server.
//! Every message a sender seals takes one; once they run out, senders fall back to the
//! non-ephemeral key and mail loses forward secrecy. So `run` checks the supply at start
//! and every `keys.replenish_every`, and when fewer than half of `keys.ephemeral_target`
//! are left, tops it up exactly as `smimp-gateway keys replenish` does — both go
//! through [`replenish`] (keystore lock, save before upload) — then rereads the
//! keystore so mail sealed to the new keys opens at once.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::backend::account::Account;
use crate::backend::devices;
use crate::client::account::{self, AccountError};
use crate::client::ServerClient;
use crate::clock::unix_now;
use crate::discovery::Discovery;
use crate::keystore::{KdfParams, Keystore, KeystoreError, KeystoreLock, Passphrase};
use crate::listen::Shutdown;
use crate::smimp::crypto::BoxPublicKey;
use crate::smimp::wire::{EphemeralKeys, Route};

/// How the supply is kept (the gateway's `[keys]` and `[keystore]` settings).
#[derive(Debug, Clone, Copy)]
pub struct KeySupply {
    pub ephemeral_target: usize,
    pub check_every: Duration,
    /// Secrets of keys discarded longer ago than this go at the next save.
    pub retain_discarded: Duration,
    /// The KDF parameters the keystore is saved with.
    pub kdf: KdfParams,
}

/// Why the supply could not be checked or topped up.
#[derive(Debug, thiserror::Error)]
pub enum UpkeepError {
    #[error(transparent)]
    Keystore(#[from] KeystoreError),
    #[error(transparent)]
    Account(#[from] AccountError),
}

impl From<crate::client::ClientError> for UpkeepError {
    fn from(err: crate::client::ClientError) -> Self {
        UpkeepError::Account(AccountError::Client(err))
    }
}

/// Below this many unissued keys, the supply is topped up to the target.
pub fn low_water(target: usize) -> usize {
    target.div_ceil(2)
}

/// Tops up the server's ephemeral keys to the target with the keystore at `path` held
/// under its lock (saved before the new keys are uploaded): the number added.
pub async fn replenish(
    discovery: &Discovery,
    path: &Path,
    passphrase: &Passphrase,
    supply: &KeySupply,
    now: i64,
) -> Result<usize, UpkeepError> {
    let _lock = KeystoreLock::take(path)?;
    let mut keystore = Keystore::load(path, passphrase)?;
    keystore.prune(now, supply.retain_discarded.as_secs());
    let address = keystore.address().clone();
    let server = ServerClient::connect(discovery, address.domain()).await?;
    let owner = account::owner_session(server, &address, &keystore).await?;
    let save = |keystore: &Keystore| keystore.save(path, passphrase, supply.kdf);
    let before: Vec<BoxPublicKey> = keystore.message_keys().iter().map(|key| *key.public()).collect();
    let added = account::replenish_ephemeral_keys(&owner, &mut keystore, supply.ephemeral_target, now, save).await;
    // The account's other devices get the new keys, so mail sealed to them opens there too.
    let new: Vec<BoxPublicKey> =
        keystore.message_keys().iter().map(|key| *key.public()).filter(|key| !before.contains(key)).collect();
    if let Err(err) = devices::share_keys(&owner, &keystore, &new, now).await {
        tracing::warn!(account = %address, error = %err, "new message keys could not be shared with the other devices");
    }
    let _ = owner.logout().await;
    Ok(added?)
}

/// Unissued ephemeral keys the server holds for `account`, signed by its current key;
/// asked in the account's shared session (a check every few minutes is no reason to
/// log in again).
async fn unissued(discovery: &Discovery, account: &Account) -> Result<usize, UpkeepError> {
    let address = &account.sender.address;
    let owner = account.sender.sessions.own(discovery).await?;
    let keys: EphemeralKeys = owner.call(&Route::ListEphemeralKeys, None::<&()>).await?;
    let current = account.sender.master.public();
    Ok(keys.keys.iter().filter(|k| k.verify(address, &current).is_ok()).count())
}

/// Checks one account and tops its supply up when low: the number of keys added. An
/// account without a keystore file to reread (built in memory) is only checked.
pub async fn top_up(
    discovery: &Discovery,
    account: &Account,
    supply: &KeySupply,
    now: i64,
) -> Result<usize, UpkeepError> {
    // Keys another device topped up first, so mail sealed to them opens here (only an
    // account on several devices has any: a single machine never opens its keystore for it).
    let shared = account.keystore().devices().len() > 1;
    if let (true, Some((path, passphrase))) = (shared, account.keystore_file()) {
        match devices::pick_up_shares(discovery, path, passphrase, supply.kdf).await {
            Ok(0) => {}
            Ok(_) => {
                account.reload();
            }
            Err(err) => {
                tracing::warn!(account = %account.sender.address, error = %err, "key shares could not be picked up")
            }
        }
    }
    if unissued(discovery, account).await? >= low_water(supply.ephemeral_target) {
        return Ok(0);
    }
    let Some((path, passphrase)) = account.keystore_file() else { return Ok(0) };
    let added = replenish(discovery, path, passphrase, supply, now).await?;
    if added > 0 {
        account.reload();
    }
    Ok(added)
}

/// Checks every account now and then every `supply.check_every`, until `shutdown`.
/// A failure (server unreachable, keystore busy with a command) is logged and tried
/// again at the next round; it never stops the gateway.
pub async fn key_upkeep_loop(discovery: Discovery, accounts: Vec<Arc<Account>>, supply: KeySupply, shutdown: Shutdown) {
    loop {
        for account in &accounts {
            match top_up(&discovery, account, &supply, unix_now()).await {
                Ok(0) => {}
                Ok(added) => tracing::info!(account = %account.sender.address, added, "ephemeral keys topped up"),
                Err(err) => {
                    tracing::warn!(account = %account.sender.address, error = %err, "ephemeral keys could not be checked")
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(supply.check_every) => {}
            () = shutdown.requested() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_supply_is_topped_up_below_half_the_target() {
        assert_eq!(low_water(20), 10);
        assert_eq!(low_water(5), 3);
        assert_eq!(low_water(1), 1);
        assert_eq!(low_water(0), 0, "a target of 0 never tops up");
    }
}
