//! Logging in and out (spec "Create Session", "Destroy Session"; docs/protocol.md §9):
//! a single-use login token, signed by the user's current master key — a local
//! account's, or a remote user's fetched from their home server — becomes a session.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::Extension;
use rand_core::OsRng;

use crate::server::auth::{session_hash, Session};
use crate::server::error::{ApiError, ApiResult, Json};
use crate::server::limits::check_login_rate;
use crate::server::remote::remote_key;
use crate::server::routes::{address, no_such_user};
use crate::server::state::AppState;
use crate::server::store::SessionRow;
use crate::smimp::address::Address;
use crate::smimp::encoding::Id32;
use crate::smimp::envelope::login_token_hash;
use crate::smimp::timestamp::Timestamp;
use crate::smimp::wire::{
    create_session_hash, ErrorCode, LoginChallenge, LoginRequest, SessionCreated, SessionEnded,
    LOGIN_TOKEN_LIFETIME_SECS,
};

/// The client's IP address, inserted by the connection loop.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

fn timestamp(seconds: i64) -> ApiResult<Timestamp> {
    Timestamp::from_unix(seconds)
        .ok_or_else(|| ApiError::new(ErrorCode::Internal, "the server's clock is out of range"))
}

/// `GET create_session/{address}`: a fresh login token.
pub async fn login_token(
    State(state): State<Arc<AppState>>,
    Extension(ClientIp(ip)): Extension<ClientIp>,
    Path(user): Path<String>,
) -> ApiResult<Json<LoginChallenge>> {
    check_login_rate(&state, ip)?;
    let user = address(&user)?;
    if state.is_local(&user) && state.store.current_key(&user).await?.is_none() {
        return Err(no_such_user(&user));
    }
    let token = Id32::random(&mut OsRng);
    let expires_at = state.clock.now() + LOGIN_TOKEN_LIFETIME_SECS;
    state.store.add_login_token(&token, &user, expires_at).await?;
    Ok(Json(LoginChallenge { token, expires_at: timestamp(expires_at)? }))
}

/// The key a login must be signed with: a local account's current key, or a remote
/// user's from their verified history at their home server.
async fn login_key(state: &AppState, user: &Address) -> ApiResult<crate::smimp::crypto::MasterPublicKey> {
    if state.is_local(user) {
        return state.store.current_key(user).await?.ok_or_else(|| no_such_user(user));
    }
    remote_key(state, user).await.map_err(|e| {
        ApiError::new(ErrorCode::RemoteLookupFailed, format!("cannot establish {user}'s key at their home server: {e}"))
    })
}

/// `POST create_session/{address}`: the signed token becomes a session. The client
/// address's login limit was counted before the body was read
/// (`limits::limit_unauthenticated`, from the route table's entry).
pub async fn create_session(
    State(state): State<Arc<AppState>>,
    Path(user): Path<String>,
    Json(request): Json<LoginRequest>,
) -> ApiResult<Json<SessionCreated>> {
    let user = address(&user)?;
    let now = state.clock.now();
    let refused = || {
        ApiError::new(
            ErrorCode::LoginFailed,
            "the login token is unknown, expired, already used or for another address",
        )
    };
    // Single use (§9): the first POST naming a token consumes it, whatever the outcome.
    if !state.store.take_login_token(&request.token, &user, now).await? {
        return Err(refused());
    }
    let key = login_key(&state, &user).await?;
    key.verify(&create_session_hash(&user, &request.token), &request.signature).map_err(|_| {
        ApiError::new(ErrorCode::LoginFailed, format!("the login token is not signed by {user}'s current master key"))
    })?;
    let session = Id32::random(&mut OsRng);
    let expires_at = now + state.config.limits.session_lifetime.as_secs() as i64;
    let row = SessionRow {
        session_hash: session_hash(&session),
        local: state.is_local(&user),
        address: user,
        public_key: key,
        login_token_hash: login_token_hash(&request.token),
        expires_at,
    };
    state.store.add_session(&row, now, state.config.limits.max_sessions_per_identity).await?;
    Ok(Json(SessionCreated { session, expires_at: timestamp(expires_at)? }))
}

/// `POST destroy_session`: the session ends at once.
pub async fn destroy_session(
    State(state): State<Arc<AppState>>,
    Session(session): Session,
) -> ApiResult<Json<SessionEnded>> {
    let ended = state.store.end_session(&session.session_hash, state.clock.now()).await?;
    Ok(Json(SessionEnded { ended }))
}
