//! The account's own operations at its server (spec "Initialize Account", "Get / Set
//! Non-Ephemeral Key", "Setting Ephemeral Keys", "Update Profile"): every new secret
//! goes into the keystore, and the keystore is saved, before its public half is
//! uploaded — so the server never holds a key whose secret could be lost.

use rand_core::OsRng;

use crate::client::error::ClientError;
use crate::client::server::ServerClient;
use crate::client::session::SessionClient;
use crate::keystore::{Keystore, KeystoreError};
use crate::smimp::address::Address;
use crate::smimp::crypto::{BoxSecretKey, MasterKey};
use crate::smimp::keys::{KeyKind, SignedMessageKey};
use crate::smimp::profile::{verify_history, ProfileError, ProfileFields, ProfileRecord, VerifiedHistory};
use crate::smimp::timestamp::Timestamp;
use crate::smimp::wire::{
    init_password_hash, AccountInitialized, EphemeralKeys, InitializeAccountRequest, KeyCount, ProfileLength, Route,
    UserHistory, UserInfoKind, UserPublicKey,
};

/// Why an account operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Keystore(#[from] KeystoreError),
    #[error("the account's own history at its server does not verify: {0}")]
    OwnHistory(ProfileError),
    #[error("the server's history names a current key this keystore has never held; refusing to sign")]
    NotOurKey,
    #[error("the clock is outside the years 0000-9999")]
    Clock,
}

fn timestamp(now: i64) -> Result<Timestamp, AccountError> {
    Timestamp::from_unix(now).ok_or(AccountError::Clock)
}

fn new_key(keystore: &mut Keystore, kind: KeyKind, now: i64) -> SignedMessageKey {
    let secret = BoxSecretKey::generate(&mut OsRng);
    let signed = SignedMessageKey::sign(keystore.master(), keystore.address(), kind, secret.public());
    keystore.add_message_key(secret, kind, now);
    signed
}

/// An owner session on the account's server, signed with the master key the server
/// publishes as current (the keystore also keeps earlier ones, and a rotation may have
/// been interrupted after the server took the new key).
pub async fn owner_session(
    server: ServerClient,
    address: &Address,
    keystore: &Keystore,
) -> Result<SessionClient, AccountError> {
    let route = Route::GetUser { address: address.clone(), kind: UserInfoKind::PublicKey };
    let current: UserPublicKey = server.call(&route, None, None::<&()>).await?;
    let key = keystore.master_for(&current.public_key).ok_or(AccountError::NotOurKey)?;
    Ok(SessionClient::new(server, address.clone(), std::sync::Arc::new(MasterKey::from_seed(&key.seed()))))
}

/// A new keystore's initialisation: the first record, a non-ephemeral key and
/// `ephemeral` ephemeral keys, all added to `keystore`. Save the keystore, then send
/// the request with [`send_initialization`].
pub fn prepare_initialization(
    keystore: &mut Keystore,
    password: &str,
    ephemeral: usize,
    fields: ProfileFields,
    now: i64,
) -> Result<InitializeAccountRequest, AccountError> {
    let address = keystore.address().clone();
    let record = ProfileRecord::initial(keystore.master(), &address, fields, timestamp(now)?);
    let nonephemeral_key = new_key(keystore, KeyKind::Nonephemeral, now);
    let ephemeral_keys = (0..ephemeral).map(|_| new_key(keystore, KeyKind::Ephemeral, now)).collect();
    Ok(InitializeAccountRequest {
        address,
        password_hash: init_password_hash(password),
        record,
        nonephemeral_key,
        ephemeral_keys: Some(ephemeral_keys),
    })
}

/// Sends a prepared initialisation (password-authenticated, once only).
pub async fn send_initialization(
    server: &ServerClient,
    request: &InitializeAccountRequest,
) -> Result<AccountInitialized, ClientError> {
    server.call(&Route::InitializeAccount, None, Some(request)).await
}

/// The account's own history at its server, verified.
pub async fn own_history(owner: &SessionClient) -> Result<VerifiedHistory, AccountError> {
    let address: Address = owner.address().clone();
    let answer: UserHistory = owner
        .server()
        .call(&Route::GetUser { address: address.clone(), kind: UserInfoKind::History }, None, None::<&()>)
        .await?;
    verify_history(&address, &answer.history).map_err(AccountError::OwnHistory)
}

/// Tops the server's unissued ephemeral keys up to `target`; returns how many were
/// added. `save` persists the keystore before the upload.
pub async fn replenish_ephemeral_keys(
    owner: &SessionClient,
    keystore: &mut Keystore,
    target: usize,
    now: i64,
    save: impl FnOnce(&Keystore) -> Result<(), KeystoreError>,
) -> Result<usize, AccountError> {
    let unissued: EphemeralKeys = owner.call(&Route::ListEphemeralKeys, None::<&()>).await?;
    let address = keystore.address().clone();
    let current = keystore.master().public();
    // Keys signed by an earlier master key (an interrupted rotation) are signed again,
    // when this keystore holds their secret, and dropped otherwise.
    let stale = unissued.keys.iter().any(|k| k.verify(&address, &current).is_err());
    let mut keys: Vec<SignedMessageKey> = unissued
        .keys
        .into_iter()
        .filter_map(|k| match k.verify(&address, &current) {
            Ok(()) => Some(k),
            Err(_) => keystore
                .secret_for(&k.public_key)
                .map(|_| SignedMessageKey::sign(keystore.master(), &address, KeyKind::Ephemeral, k.public_key)),
        })
        .collect();
    if keys.len() >= target && !stale {
        return Ok(0);
    }
    let missing = target.saturating_sub(keys.len());
    keys.extend((0..missing).map(|_| new_key(keystore, KeyKind::Ephemeral, now)));
    save(keystore)?;
    let _: KeyCount = owner.call(&Route::SetEphemeralKeys, Some(&EphemeralKeys { keys })).await?;
    Ok(missing)
}

/// Replaces the non-ephemeral key; the old secret stays in the keystore, retired,
/// for messages already encrypted to it.
pub async fn rotate_nonephemeral_key(
    owner: &SessionClient,
    keystore: &mut Keystore,
    now: i64,
    save: impl FnOnce(&Keystore) -> Result<(), KeystoreError>,
) -> Result<SignedMessageKey, AccountError> {
    let old = keystore.current_nonephemeral().map(|k| *k.public());
    let key = new_key(keystore, KeyKind::Nonephemeral, now);
    if let Some(old) = old {
        keystore.retire(&old, now);
    }
    save(keystore)?;
    let _: SignedMessageKey = owner.call(&Route::SetNonephemeralKey, Some(&key)).await?;
    Ok(key)
}

/// Appends a profile record with new fields (and, when `new_master` is given, a new
/// master key), signed by the current master key. With a new master, the keystore
/// keeps the old one, and fresh message keys signed by the new one replace the
/// server's unissued keys (senders accept only keys signed by the current key).
pub async fn update_profile(
    owner: &SessionClient,
    keystore: &mut Keystore,
    fields: Option<ProfileFields>,
    new_master: Option<MasterKey>,
    now: i64,
    mut save: impl FnMut(&Keystore) -> Result<(), KeystoreError>,
) -> Result<u64, AccountError> {
    let history = own_history(owner).await?;
    let server_key = history.current_key();
    let signer_seed = keystore.master_for(&server_key).ok_or(AccountError::NotOurKey)?.seed();
    let signer = MasterKey::from_seed(&signer_seed);
    // The keystore already holds a newer key the server never accepted: an earlier
    // rotation was interrupted, so this update completes it.
    let resuming = server_key != keystore.master().public();
    let fields = fields.unwrap_or_else(|| history.latest().data.fields());
    let (next_key, rotating) = match (&new_master, resuming) {
        (_, true) => (keystore.master().public(), true),
        (Some(new), false) => (new.public(), true),
        (None, false) => (server_key, false),
    };
    let record = ProfileRecord::next(history.latest(), &signer, next_key, fields, timestamp(now)?)
        .map_err(AccountError::OwnHistory)?;
    if let (Some(new_master), false) = (new_master, resuming) {
        keystore.rotate_master(new_master);
        save(keystore)?;
    }
    let length: ProfileLength = match owner.call(&Route::UpdateProfile, Some(&record)).await {
        Ok(length) => length,
        Err(err) if rotating && !resuming && err.code().is_some() => {
            // Refused for certain: the old key stays the account's key.
            keystore.rotate_master(MasterKey::from_seed(&signer_seed));
            save(keystore)?;
            return Err(err.into());
        }
        Err(err) => return Err(err.into()),
    };
    if rotating {
        let ephemeral: Vec<_> = keystore.unretired_ephemeral().map(|k| *k.public()).collect();
        for public in &ephemeral {
            keystore.retire(public, now);
        }
        let count = ephemeral.len();
        let old = keystore.current_nonephemeral().map(|k| *k.public());
        let nonephemeral = new_key(keystore, KeyKind::Nonephemeral, now);
        if let Some(old) = old {
            keystore.retire(&old, now);
        }
        let keys: Vec<_> = (0..count).map(|_| new_key(keystore, KeyKind::Ephemeral, now)).collect();
        save(keystore)?;
        let _: SignedMessageKey = owner.call(&Route::SetNonephemeralKey, Some(&nonephemeral)).await?;
        let _: KeyCount = owner.call(&Route::SetEphemeralKeys, Some(&EphemeralKeys { keys })).await?;
    }
    Ok(length.length)
}
