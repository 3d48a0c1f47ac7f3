//! Account administration by the account itself (spec "Account Administration"):
//! the one-time initialisation, message keys, profile updates that must extend the
//! signed chain, the avatar, whitelist and blacklist, and the quota.

use std::sync::Arc;

use axum::extract::{Path, State};

use crate::server::auth::OwnerSession;
use crate::server::error::{ApiError, ApiResult, Json};
use crate::server::remote::MAX_HISTORY_BYTES;
use crate::server::routes::no_such_user;
use crate::server::state::AppState;
use crate::server::store::{StoredAvatar, Write};
use crate::smimp::address::Address;
use crate::smimp::crypto::{blake2b_256, Hash, MasterPublicKey};
use crate::smimp::keys::{KeyError, KeyKind, SignedMessageKey};
use crate::smimp::profile::{verify_history, ProfileError, ProfileRecord};
use crate::smimp::wire::{
    avatar_hash, percent_encode_segment, AccountInitialized, Added, AvatarContentType, AvatarStored, AvatarUpload,
    EphemeralKeys, ErrorCode, InitializeAccountRequest, KeyCount, ListEntries, ListEntry, ListKind, ProfileLength,
    Quota, Removed, VERSION,
};

/// The most unissued ephemeral keys an account may keep on the server (docs/protocol.md
/// §8.24): enough for a busy mailbox, small enough that one request stays cheap.
pub const MAX_EPHEMERAL_KEYS: usize = 1000;

/// Refuses a profile record with the reason, mapped to the error codes of §10.
fn profile_refusal(err: ProfileError) -> ApiError {
    let code = match err {
        ProfileError::BadSignature { .. } | ProfileError::WrongSigner => ErrorCode::InvalidSignature,
        ProfileError::BrokenChain { .. }
        | ProfileError::MissingPrevious { .. }
        | ProfileError::FirstHasPrevious
        | ProfileError::TimeWentBackwards { .. }
        | ProfileError::AddressMismatch { .. } => ErrorCode::ChainBroken,
        _ => ErrorCode::BadRequest,
    };
    ApiError::new(code, format!("the profile record is refused: {err}"))
}

/// Checks a message key of `kind` against the owner's current key.
fn check_key(key: &SignedMessageKey, kind: KeyKind, owner: &Address, owner_key: &MasterPublicKey) -> ApiResult<()> {
    if key.kind != kind {
        return Err(ApiError::new(
            ErrorCode::BadRequest,
            format!("a {} key was given where a {} key belongs", key.kind.as_str(), kind.as_str()),
        ));
    }
    key.verify(owner, owner_key).map_err(|e| match e {
        KeyError::IsMasterKey => ApiError::new(ErrorCode::MasterKeyRefused, e.to_string()),
        KeyError::BadSignature => ApiError::new(ErrorCode::InvalidSignature, format!("{e} ({})", key.public_key)),
    })
}

async fn current_key(state: &AppState, owner: &Address) -> ApiResult<MasterPublicKey> {
    state.store.current_key(owner).await?.ok_or_else(|| no_such_user(owner))
}

/// The stored form of the one-time password: a hash of the hash the client sends,
/// so the database alone cannot initialise an account.
pub fn password_check(password_hash: &Hash) -> Hash {
    blake2b_256(password_hash.as_bytes())
}

/// `POST initialize_account`: once, with the one-time password.
pub async fn initialize_account(
    State(state): State<Arc<AppState>>,
    Json(request): Json<InitializeAccountRequest>,
) -> ApiResult<Json<AccountInitialized>> {
    let address = request.address;
    let missing = || ApiError::new(ErrorCode::NotFound, format!("there is no account {address} on this server"));
    if !state.is_local(&address) {
        return Err(missing());
    }
    let account = state.store.account(&address).await?.ok_or_else(missing)?;
    if account.initialized {
        return Err(ApiError::new(
            ErrorCode::AlreadyInitialized,
            format!("{address} is already initialised; it can be initialised only once"),
        ));
    }
    let expected = account.password_check.map(|h| h.0).unwrap_or([0; 32]);
    let matches: bool =
        subtle::ConstantTimeEq::ct_eq(&expected[..], &password_check(&request.password_hash).0[..]).into();
    if account.password_check.is_none() || !matches {
        return Err(ApiError::new(ErrorCode::LoginFailed, "the initialisation password is wrong"));
    }
    let history = verify_history(&address, std::slice::from_ref(&request.record)).map_err(profile_refusal)?;
    let key = history.current_key();
    check_key(&request.nonephemeral_key, KeyKind::Nonephemeral, &address, &key)?;
    let ephemeral = request.ephemeral_keys.unwrap_or_default();
    for k in &ephemeral {
        check_key(k, KeyKind::Ephemeral, &address, &key)?;
    }
    let written = state
        .store
        .initialize(&address, &request.record, &key, &request.nonephemeral_key, &ephemeral, state.clock.now())
        .await?;
    if written != Write::Done {
        return Err(ApiError::new(ErrorCode::AlreadyInitialized, format!("{address} is already initialised")));
    }
    tracing::info!(address = %address, ephemeral_keys = ephemeral.len(), "account initialised");
    Ok(Json(AccountInitialized { address, public_key: key }))
}

/// `GET nonephemeral_key`.
pub async fn nonephemeral_key(
    State(state): State<Arc<AppState>>,
    OwnerSession(s): OwnerSession,
) -> ApiResult<Json<SignedMessageKey>> {
    let key = state.store.nonephemeral_key(&s.address).await?.ok_or_else(|| no_such_user(&s.address))?;
    Ok(Json(key))
}

/// `POST nonephemeral_key`: replaces it.
pub async fn set_nonephemeral_key(
    State(state): State<Arc<AppState>>,
    OwnerSession(s): OwnerSession,
    Json(key): Json<SignedMessageKey>,
) -> ApiResult<Json<SignedMessageKey>> {
    check_key(&key, KeyKind::Nonephemeral, &s.address, &current_key(&state, &s.address).await?)?;
    match state.store.set_nonephemeral_key(&s.address, &key, state.clock.now()).await? {
        Write::Done => Ok(Json(key)),
        _ => Err(ApiError::new(ErrorCode::Conflict, "this key was used before; a message key is never reused")),
    }
}

/// `GET ephemeral_keys`: the keys not yet issued.
pub async fn ephemeral_keys(
    State(state): State<Arc<AppState>>,
    OwnerSession(s): OwnerSession,
) -> ApiResult<Json<EphemeralKeys>> {
    Ok(Json(EphemeralKeys { keys: state.store.available_ephemeral_keys(&s.address).await? }))
}

/// `POST ephemeral_keys`: replaces every unissued key.
pub async fn set_ephemeral_keys(
    State(state): State<Arc<AppState>>,
    OwnerSession(s): OwnerSession,
    Json(request): Json<EphemeralKeys>,
) -> ApiResult<Json<KeyCount>> {
    if request.keys.len() > MAX_EPHEMERAL_KEYS {
        return Err(ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!(
                "{} keys were sent; this server keeps at most {MAX_EPHEMERAL_KEYS} unissued keys per account",
                request.keys.len()
            ),
        ));
    }
    let owner_key = current_key(&state, &s.address).await?;
    let mut seen = std::collections::HashSet::new();
    for key in &request.keys {
        check_key(key, KeyKind::Ephemeral, &s.address, &owner_key)?;
        if !seen.insert(key.public_key) {
            return Err(ApiError::new(ErrorCode::BadRequest, format!("the key {} is listed twice", key.public_key)));
        }
    }
    let count = state.store.replace_ephemeral_keys(&s.address, &request.keys, state.clock.now()).await?;
    Ok(Json(KeyCount { count: count as u64 }))
}

/// `POST update_profile`: the next record of the chain, signed by the prior key.
pub async fn update_profile(
    State(state): State<Arc<AppState>>,
    OwnerSession(s): OwnerSession,
    Json(record): Json<ProfileRecord>,
) -> ApiResult<Json<ProfileLength>> {
    let stored = state.store.history(&s.address).await?;
    let history = verify_history(&s.address, &stored)
        .map_err(|e| ApiError::new(ErrorCode::Internal, format!("the stored history does not verify: {e}")))?;
    let seq = stored.len() as i64;
    check_history_size(&stored, &record)?;
    let extended = history.extend(record.clone()).map_err(|e| match e {
        ProfileError::AddressMismatch { .. } => {
            ApiError::new(ErrorCode::Forbidden, format!("the profile record is refused: {e}"))
        }
        other => profile_refusal(other),
    })?;
    let key = extended.current_key();
    match state.store.append_record(&s.address, seq, &record, &key).await? {
        Write::Done => Ok(Json(ProfileLength { length: extended.records().len() as u64 })),
        _ => Err(ApiError::new(
            ErrorCode::ChainBroken,
            "another update was stored first; fetch the history and sign the next record again",
        )),
    }
}

/// Refuses a record that would make the history larger than other servers read
/// (`remote::MAX_HISTORY_BYTES`): this server never serves a history that would lock
/// its user out of logging in elsewhere.
fn check_history_size(stored: &[ProfileRecord], record: &ProfileRecord) -> ApiResult<()> {
    let size: usize = stored
        .iter()
        .chain(std::iter::once(record))
        .map(|r| serde_json::to_vec(r).map(|bytes| bytes.len() + 1).unwrap_or(usize::MAX / 2))
        .sum();
    if size + 512 > MAX_HISTORY_BYTES {
        return Err(ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!(
                "the profile history would be larger than {MAX_HISTORY_BYTES} bytes, which other servers do not read"
            ),
        ));
    }
    Ok(())
}

fn looks_like(content_type: AvatarContentType, image: &[u8]) -> bool {
    match content_type {
        AvatarContentType::Png => image.starts_with(b"\x89PNG\r\n\x1a\n"),
        AvatarContentType::Jpeg => image.starts_with(&[0xff, 0xd8, 0xff]),
    }
}

/// `POST user_avatar`: a signed PNG or JPEG image.
pub async fn set_avatar(
    State(state): State<Arc<AppState>>,
    OwnerSession(s): OwnerSession,
    Json(upload): Json<AvatarUpload>,
) -> ApiResult<Json<AvatarStored>> {
    if !looks_like(upload.content_type, &upload.image) {
        return Err(ApiError::new(
            ErrorCode::BadRequest,
            format!("the image is not a {} file", upload.content_type.as_str()),
        ));
    }
    let hash = avatar_hash(&s.address, &upload.image);
    current_key(&state, &s.address).await?.verify(&hash, &upload.signature).map_err(|_| {
        ApiError::new(ErrorCode::InvalidSignature, "the avatar is not signed by the account's current master key")
    })?;
    state
        .store
        .set_avatar(
            &s.address,
            &StoredAvatar {
                content_type: upload.content_type.as_str().to_string(),
                image: upload.image,
                hash,
                signature: upload.signature,
            },
        )
        .await?;
    let url = format!(
        "https://{}/{VERSION}/avatar_image/{}",
        state.config.server.public_base,
        percent_encode_segment(s.address.as_str())
    );
    Ok(Json(AvatarStored { url, hash }))
}

async fn list(state: &AppState, owner: &Address, kind: ListKind) -> ApiResult<Json<ListEntries>> {
    Ok(Json(ListEntries { entries: state.store.list_entries(owner, kind).await? }))
}

async fn add(state: &AppState, owner: &Address, kind: ListKind, entry: ListEntry) -> ApiResult<Json<Added>> {
    match state.store.add_list_entry(owner, kind, &entry).await? {
        Write::Done => Ok(Json(Added { added: true })),
        _ => Err(ApiError::new(
            ErrorCode::Conflict,
            "this entry is already on the list; remove it first to change its note",
        )),
    }
}

async fn remove(state: &AppState, owner: &Address, kind: ListKind, hash: &str) -> ApiResult<Json<Removed>> {
    let hash: Hash = hash
        .parse()
        .map_err(|_| ApiError::new(ErrorCode::BadRequest, format!("{hash:?} is not an entry hash (64 hex digits)")))?;
    match state.store.remove_list_entry(owner, kind, &hash).await? {
        Write::Done => Ok(Json(Removed { removed: true })),
        _ => Err(ApiError::new(ErrorCode::NotFound, "there is no such entry on the list")),
    }
}

/// Extension: `GET whitelist`.
pub async fn whitelist(
    State(state): State<Arc<AppState>>,
    OwnerSession(s): OwnerSession,
) -> ApiResult<Json<ListEntries>> {
    list(&state, &s.address, ListKind::Whitelist).await
}

/// Extension: `GET blacklist`.
pub async fn blacklist(
    State(state): State<Arc<AppState>>,
    OwnerSession(s): OwnerSession,
) -> ApiResult<Json<ListEntries>> {
    list(&state, &s.address, ListKind::Blacklist).await
}

/// `POST whitelist`.
pub async fn add_whitelist(
    State(state): State<Arc<AppState>>,
    OwnerSession(s): OwnerSession,
    Json(entry): Json<ListEntry>,
) -> ApiResult<Json<Added>> {
    add(&state, &s.address, ListKind::Whitelist, entry).await
}

/// `POST blacklist`.
pub async fn add_blacklist(
    State(state): State<Arc<AppState>>,
    OwnerSession(s): OwnerSession,
    Json(entry): Json<ListEntry>,
) -> ApiResult<Json<Added>> {
    add(&state, &s.address, ListKind::Blacklist, entry).await
}

/// `DELETE whitelist/{hash}`.
pub async fn remove_whitelist(
    State(state): State<Arc<AppState>>,
    OwnerSession(s): OwnerSession,
    Path(hash): Path<String>,
) -> ApiResult<Json<Removed>> {
    remove(&state, &s.address, ListKind::Whitelist, &hash).await
}

/// `DELETE blacklist/{hash}`.
pub async fn remove_blacklist(
    State(state): State<Arc<AppState>>,
    OwnerSession(s): OwnerSession,
    Path(hash): Path<String>,
) -> ApiResult<Json<Removed>> {
    remove(&state, &s.address, ListKind::Blacklist, &hash).await
}

/// `GET quota`.
pub async fn quota(State(state): State<Arc<AppState>>, OwnerSession(s): OwnerSession) -> ApiResult<Json<Quota>> {
    let used = state.store.quota_used(&s.address).await?;
    let limit = state.config.limits.quota_bytes;
    let available = if limit < 0 { -1 } else { limit.saturating_sub(used as i64).max(0) };
    Ok(Json(Quota { used, available }))
}
