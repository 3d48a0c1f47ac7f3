//! The `x-devices` extension (docs/protocol.md §12; docs/devices.md): a new device's
//! request to join an account — unauthenticated, so admitted by a proof of work on a
//! single-use challenge, limited per client address, a few pending per account, and
//! short-lived — the owner's devices listing and answering requests, and sealed key
//! shares between devices. The server checks signatures it can check, and stores and
//! forwards ciphertext only.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::Extension;
use rand_core::OsRng;

use crate::server::auth::OwnerSession;
use crate::server::error::{ApiError, ApiResult, Json};
use crate::server::limits::check_login_rate;
use crate::server::routes::session::ClientIp;
use crate::server::routes::{address, no_such_user};
use crate::server::state::AppState;
use crate::server::store::{DeviceRequestRow, Write};
use crate::smimp::address::Address;
use crate::smimp::crypto::BoxPublicKey;
use crate::smimp::device::{approval_hash, check_name, request_hash, request_pow, share_hash, RequestContext, Sealed};
use crate::smimp::encoding::Id32;
use crate::smimp::timestamp::Timestamp;
use crate::smimp::wire::{
    Decided, Denial, DeviceChallenge, DeviceRequest, DeviceRequested, DeviceSeen, DeviceShares, DevicesSeen, ErrorCode,
    PendingRequest, PendingRequests, RequestState, RequestStatus, Updated, DEVICE_REQUEST_LIFETIME_SECS,
    MAX_PENDING_DEVICE_REQUESTS,
};

/// The most shares one call may store.
pub const MAX_SHARES_PER_CALL: usize = 64;

fn timestamp(seconds: i64) -> ApiResult<Timestamp> {
    Timestamp::from_unix(seconds)
        .ok_or_else(|| ApiError::new(ErrorCode::Internal, "the server's clock is out of range"))
}

/// The local, initialised account named in a path.
async fn account(state: &AppState, text: &str) -> ApiResult<Address> {
    let user = address(text)?;
    if !state.is_local(&user) || state.store.current_key(&user).await?.is_none() {
        return Err(no_such_user(&user));
    }
    Ok(user)
}

fn request_id(text: &str) -> ApiResult<Id32> {
    text.parse()
        .map_err(|_| ApiError::new(ErrorCode::BadRequest, format!("{text:?} is not a request id (64 hex digits)")))
}

/// `GET x-devices/challenge/{address}`: a single-use nonce and the work a request must prove.
pub async fn challenge(
    State(state): State<Arc<AppState>>,
    Extension(ClientIp(ip)): Extension<ClientIp>,
    Path(user): Path<String>,
) -> ApiResult<Json<DeviceChallenge>> {
    limit(&state, ip).await?;
    let user = account(&state, &user).await?;
    let now = state.clock.now();
    let nonce = Id32::random(&mut OsRng);
    let zero_bits = state.config.pow.default_zero_bits;
    let expires_at = now + DEVICE_REQUEST_LIFETIME_SECS;
    state.store.add_device_challenge(&user, &nonce, zero_bits, expires_at, now).await?;
    Ok(Json(DeviceChallenge { nonce, zero_bits, expires_at: timestamp(expires_at)? }))
}

/// The per-address limit of unauthenticated calls (the login limit's).
async fn limit(state: &AppState, ip: IpAddr) -> ApiResult<()> {
    check_login_rate(state, ip).await
}

/// `POST x-devices/request/{address}`: a new device asks to join the account.
pub async fn request(
    State(state): State<Arc<AppState>>,
    Path(user): Path<String>,
    Json(request): Json<DeviceRequest>,
) -> ApiResult<Json<DeviceRequested>> {
    let user = account(&state, &user).await?;
    check_name(&request.name).map_err(|e| ApiError::new(ErrorCode::BadRequest, e.to_string()))?;
    let now = state.clock.now();
    let zero_bits = state.store.take_device_challenge(&user, &request.nonce, now).await?.ok_or_else(|| {
        ApiError::new(ErrorCode::NonceUnknown, "the challenge is unknown, used or expired: ask for a new one")
    })?;
    let hash = request_hash(&user, &request.name, &request.device, &request.nonce);
    request.device.sign_key.verify(&hash, &request.signature).map_err(|e| {
        ApiError::new(ErrorCode::InvalidSignature, format!("the request is not signed by the device's key: {e}"))
    })?;
    request_pow(&user, &hash, &request.nonce)
        .verify(zero_bits, &request.pow)
        .map_err(|e| ApiError::new(ErrorCode::PowInvalid, format!("the request's proof of work is refused: {e}")))?;
    let row = DeviceRequestRow {
        request_id: Id32::random(&mut OsRng),
        address: user.clone(),
        name: request.name,
        device: request.device,
        nonce: request.nonce,
        pin_proof: request.pin_proof,
        state: RequestState::Pending,
        approval: None,
        reason: None,
        created_at: now,
        expires_at: now + DEVICE_REQUEST_LIFETIME_SECS,
    };
    if state.store.add_device_request(&row, MAX_PENDING_DEVICE_REQUESTS, now).await? == Write::Conflict {
        return Err(ApiError::new(
            ErrorCode::RateLimited,
            format!(
                "{user} has {MAX_PENDING_DEVICE_REQUESTS} device requests pending already: approve or deny them on an \
                 enrolled device, or wait until they expire"
            ),
        ));
    }
    tracing::info!(account = %user, name = %row.name, "device request stored");
    Ok(Json(DeviceRequested { request_id: row.request_id, expires_at: timestamp(row.expires_at)? }))
}

/// `GET x-devices/status/{request_id}`: where a request stands; the request id is the
/// new device's capability to read its answer (256 random bits).
pub async fn status(State(state): State<Arc<AppState>>, Path(id): Path<String>) -> ApiResult<Json<RequestStatus>> {
    let id = request_id(&id)?;
    let row = state
        .store
        .device_request(&id, state.clock.now())
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, format!("there is no device request {id}")))?;
    Ok(Json(RequestStatus { state: row.state, approval: row.approval, reason: row.reason }))
}

/// `GET x-devices/pending`: the account's live pending requests.
pub async fn pending(
    State(state): State<Arc<AppState>>,
    OwnerSession(session): OwnerSession,
) -> ApiResult<Json<PendingRequests>> {
    let rows = state.store.pending_device_requests(&session.address, state.clock.now()).await?;
    let requests = rows
        .into_iter()
        .map(|row| {
            Ok(PendingRequest {
                request_id: row.request_id,
                name: row.name,
                device: row.device,
                nonce: row.nonce,
                pin_proof: row.pin_proof,
                created_at: timestamp(row.created_at)?,
                expires_at: timestamp(row.expires_at)?,
            })
        })
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(Json(PendingRequests { requests }))
}

fn no_pending(address: &Address, id: &Id32) -> ApiError {
    ApiError::new(
        ErrorCode::NotFound,
        format!("{address} has no pending device request {id}: it was answered, has expired or never existed"),
    )
}

/// `POST x-devices/approve/{request_id}`: stores the sealed approval after checking
/// that the account's current key signed it for this very request.
pub async fn approve(
    State(state): State<Arc<AppState>>,
    OwnerSession(session): OwnerSession,
    Path(id): Path<String>,
    Json(sealed): Json<Sealed>,
) -> ApiResult<Json<Decided>> {
    let id = request_id(&id)?;
    let now = state.clock.now();
    let owner = &session.address;
    let row = state.store.device_request(&id, now).await?.filter(|row| &row.address == owner);
    let row = row.filter(|row| row.state == RequestState::Pending).ok_or_else(|| no_pending(owner, &id))?;
    let context = RequestContext {
        address: owner,
        request_id: &id,
        name: &row.name,
        device: &row.device,
        server_nonce: &row.nonce,
    };
    let key = state.store.current_key(owner).await?.ok_or_else(|| no_such_user(owner))?;
    if sealed.master_key != key || key.verify(&approval_hash(&context, &sealed), &sealed.signature).is_err() {
        return Err(ApiError::new(
            ErrorCode::InvalidSignature,
            "the approval is not signed by the account's current master key for this request",
        ));
    }
    match state.store.decide_device_request(owner, &id, RequestState::Approved, Some(&sealed), None, now).await? {
        Write::Done => Ok(Json(Decided { state: RequestState::Approved })),
        _ => Err(no_pending(owner, &id)),
    }
}

/// `POST x-devices/deny/{request_id}`.
pub async fn deny(
    State(state): State<Arc<AppState>>,
    OwnerSession(session): OwnerSession,
    Path(id): Path<String>,
    Json(denial): Json<Denial>,
) -> ApiResult<Json<Decided>> {
    let id = request_id(&id)?;
    let owner = &session.address;
    let (now, reason) = (state.clock.now(), denial.reason);
    match state.store.decide_device_request(owner, &id, RequestState::Denied, None, reason, now).await? {
        Write::Done => Ok(Json(Decided { state: RequestState::Denied })),
        _ => Err(no_pending(owner, &id)),
    }
}

/// `POST x-devices/shares`: sealed message keys for other devices of the account,
/// each signed by its current master key.
pub async fn put_shares(
    State(state): State<Arc<AppState>>,
    OwnerSession(session): OwnerSession,
    Json(shares): Json<DeviceShares>,
) -> ApiResult<Json<Updated>> {
    let owner = &session.address;
    if shares.shares.len() > MAX_SHARES_PER_CALL {
        return Err(ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("at most {MAX_SHARES_PER_CALL} shares may be stored in one call"),
        ));
    }
    let key = state.store.current_key(owner).await?.ok_or_else(|| no_such_user(owner))?;
    for share in &shares.shares {
        let hash = share_hash(owner, &share.share_id, &share.recipient, &share.sealed);
        if share.sealed.master_key != key || key.verify(&hash, &share.sealed.signature).is_err() {
            return Err(ApiError::new(
                ErrorCode::InvalidSignature,
                format!("share {} is not signed by the account's current master key", share.share_id),
            ));
        }
    }
    state.store.add_device_shares(owner, &shares.shares, state.clock.now()).await?;
    Ok(Json(Updated { updated: true }))
}

/// `GET x-devices/shares/{address}/{box_key}`: the shares left for one device. Public
/// (a device whose master key was rotated away cannot log in until it has its share),
/// limited like logins; a share is ciphertext only its device opens.
pub async fn get_shares(
    State(state): State<Arc<AppState>>,
    Extension(ClientIp(ip)): Extension<ClientIp>,
    Path((user, box_key)): Path<(String, String)>,
) -> ApiResult<Json<DeviceShares>> {
    limit(&state, ip).await?;
    let user = account(&state, &user).await?;
    let box_key: BoxPublicKey = box_key
        .parse()
        .map_err(|_| ApiError::new(ErrorCode::BadRequest, format!("{box_key:?} is not a box key (64 hex digits)")))?;
    let shares = state.store.device_shares(&user, &box_key).await?;
    state.store.touch_device(&user, &box_key, state.clock.now()).await?;
    Ok(Json(DeviceShares { shares }))
}

/// `GET x-devices/seen`: when each device of the account last fetched its shares.
pub async fn seen(
    State(state): State<Arc<AppState>>,
    OwnerSession(session): OwnerSession,
) -> ApiResult<Json<DevicesSeen>> {
    let seen = state.store.devices_seen(&session.address).await?;
    let devices = seen
        .into_iter()
        .map(|(box_key, at)| Ok(DeviceSeen { box_key, seen_at: timestamp(at)? }))
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(Json(DevicesSeen { devices }))
}
