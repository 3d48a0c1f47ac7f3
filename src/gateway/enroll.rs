//! The account commands of the gateway: `init` (create an identity at its server),
//! `keys rotate`, `keys replenish` and `profile update`.

use std::path::{Path, PathBuf};

use rand_core::{OsRng, RngCore};

use crate::backend::key_upkeep::{self, KeySupply, UpkeepError};
use crate::client::account::{self, AccountError};
use crate::client::SessionClient;
use crate::clock::unix_now;
use crate::gateway::context::{CommandError, Context};
use crate::keystore::{create_parent_dir, Keystore, KeystoreError, KeystoreLock};
use crate::smimp::address::Address;
use crate::smimp::crypto::{MasterKey, SecretBoxKey};
use crate::smimp::profile::ProfileFields;
use crate::smimp::wire::ErrorCode;
use crate::store::AccountRecord;

impl Context {
    pub(crate) fn save(&self, path: &Path) -> impl Fn(&Keystore) -> Result<(), KeystoreError> + '_ {
        let path = path.to_path_buf();
        move |keystore: &Keystore| keystore.save(&path, &self.passphrase, self.config.keystore.kdf())
    }

    /// The keystore file of an account registered on this gateway.
    pub(crate) async fn keystore_of(&self, address: &Address) -> Result<PathBuf, CommandError> {
        let accounts = self.store.accounts().await?;
        let record = accounts.iter().find(|a| &a.address == address).ok_or_else(|| CommandError::NotHere {
            address: address.to_email(),
            config: self.config_path.display().to_string(),
        })?;
        Ok(PathBuf::from(&record.keystore_path))
    }

    /// The `[keys]` and `[keystore]` settings the key supply is kept with.
    pub fn key_supply(&self) -> KeySupply {
        let keys = &self.config.keys;
        KeySupply {
            ephemeral_target: keys.ephemeral_target,
            check_every: keys.replenish_every,
            retain_discarded: keys.retain_discarded,
            kdf: self.config.keystore.kdf(),
        }
    }

    pub(crate) async fn open_account(
        &self,
        text: &str,
    ) -> Result<(Address, PathBuf, Keystore, KeystoreLock), CommandError> {
        let address = parse_address(text)?;
        let path = self.keystore_of(&address).await?;
        let lock = KeystoreLock::take(&path)?;
        let mut keystore = Keystore::load(&path, &self.passphrase)?;
        // Secrets of keys discarded longer ago than keys.retain_discarded go at the next save.
        keystore.prune(unix_now(), self.config.keys.retain_discarded.as_secs());
        Ok((address, path, keystore, lock))
    }
}

pub(crate) fn parse_address(text: &str) -> Result<Address, CommandError> {
    Address::from_email(text).or_else(|_| Address::parse(text)).map_err(|e| CommandError::Address(text.into(), e))
}

/// What `init` made.
#[derive(Debug)]
pub struct Initialised {
    pub address: Address,
    pub username: String,
    pub password: String,
    pub keystore: PathBuf,
}

/// Creates the identity: keys, the keystore (saved before anything is uploaded),
/// `initialize_account`, the local credentials, and the account's registration.
pub async fn init(
    ctx: &Context,
    address_text: &str,
    one_time_password: &str,
    now: i64,
) -> Result<Initialised, CommandError> {
    let address = parse_address(address_text)?;
    let path = ctx.config.keystore_path(&address);
    let _lock = KeystoreLock::take(&path)?;
    if path.exists() {
        return Err(CommandError::AlreadyHere { address: address.to_email(), keystore: path.display().to_string() });
    }
    let server = ctx.server(address.domain()).await?;
    let mut keystore =
        Keystore::new(address.clone(), MasterKey::generate(&mut OsRng), SecretBoxKey::generate(&mut OsRng));
    let request = account::prepare_initialization(
        &mut keystore,
        one_time_password.trim(),
        ctx.config.keys.ephemeral_target,
        ProfileFields::default(),
        now,
    )
    .map_err(CommandError::Account)?;
    let mut secret = [0u8; 18];
    OsRng.fill_bytes(&mut secret);
    let password = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, secret);
    keystore.set_local_password(&password)?;
    create_parent_dir(&path)?;
    (ctx.save(&path))(&keystore)?;
    if let Err(err) = account::send_initialization(&server, &request).await {
        // Only a refusal proves nothing was accepted; after a lost answer the server may
        // hold this identity, so its keystore must stay.
        if err.code().is_some() {
            let _ = std::fs::remove_file(&path);
        } else {
            return Err(CommandError::Interrupted {
                address: address.to_email(),
                keystore: path.display().to_string(),
                reason: err.to_string(),
            });
        }
        return Err(match err.code() {
            Some(ErrorCode::AlreadyInitialized) => CommandError::AlreadyInitialised { address: address.to_email() },
            Some(ErrorCode::LoginFailed) => CommandError::WrongPassword { address: address.to_email() },
            _ => ctx.explain(address.domain(), err),
        });
    }
    let username = address.to_email();
    ctx.store
        .add_account(&AccountRecord {
            address: address.clone(),
            keystore_path: path.display().to_string(),
            username: username.clone(),
            created_at: now,
        })
        .await?;
    Ok(Initialised { address, username, password, keystore: path })
}

/// Which key `keys rotate` replaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotate {
    /// The non-ephemeral message key.
    Nonephemeral,
    /// The master key itself, by a signed profile update.
    Master,
}

/// A session at the account's server, logged in with whichever of the keystore's master
/// keys the server currently names (an interrupted rotation leaves the older one there).
pub(crate) async fn owner(
    ctx: &Context,
    address: &Address,
    keystore: &Keystore,
) -> Result<SessionClient, CommandError> {
    let server = ctx.server(address.domain()).await?;
    account::owner_session(server, address, keystore).await.map_err(|err| match err {
        AccountError::Client(e) => ctx.explain(address.domain(), e),
        other => CommandError::Account(other),
    })
}

/// `keys rotate`: returns the new public key (hex).
pub async fn rotate(ctx: &Context, address_text: &str, which: Rotate, now: i64) -> Result<String, CommandError> {
    let (address, path, mut keystore, _lock) = ctx.open_account(address_text).await?;
    let owner = owner(ctx, &address, &keystore).await?;
    let new_key = match which {
        Rotate::Nonephemeral => {
            let key = account::rotate_nonephemeral_key(&owner, &mut keystore, now, ctx.save(&path))
                .await
                .map_err(CommandError::Account)?;
            key.public_key.to_hex()
        }
        Rotate::Master => {
            let new_master = MasterKey::generate(&mut OsRng);
            account::update_profile(&owner, &mut keystore, None, Some(new_master), now, ctx.save(&path))
                .await
                .map_err(CommandError::Account)?;
            // The published key: the new one, or a pending one from an interrupted rotation.
            keystore.master().public().to_hex()
        }
    };
    let _ = owner.logout().await;
    Ok(new_key)
}

/// `profile update`: the new history length.
pub async fn update_profile(
    ctx: &Context,
    address_text: &str,
    fields: ProfileFields,
    now: i64,
) -> Result<u64, CommandError> {
    let (address, path, mut keystore, _lock) = ctx.open_account(address_text).await?;
    let owner = owner(ctx, &address, &keystore).await?;
    let length = account::update_profile(&owner, &mut keystore, Some(fields), None, now, ctx.save(&path))
        .await
        .map_err(CommandError::Account)?;
    let _ = owner.logout().await;
    Ok(length)
}

/// Tops up the server's ephemeral keys to the configured target: the number added.
pub async fn replenish(ctx: &Context, address_text: &str, now: i64) -> Result<usize, CommandError> {
    let address = parse_address(address_text)?;
    let path = ctx.keystore_of(&address).await?;
    key_upkeep::replenish(&ctx.discovery, &path, &ctx.passphrase, &ctx.key_supply(), now).await.map_err(|err| match err
    {
        UpkeepError::Account(AccountError::Client(e)) => ctx.explain(address.domain(), e),
        UpkeepError::Account(e) => CommandError::Account(e),
        UpkeepError::Keystore(e) => CommandError::Keystore(e),
    })
}
