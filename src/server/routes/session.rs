//! Logging in and out (spec "Create Session", "Destroy Session"; docs/protocol.md §9):
//! a single-use login token, signed for this server's domain by the user's current
//! master key — a local account's, or a remote user's fetched from their home server —
//! becomes a session.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::Extension;
use rand_core::OsRng;

use crate::server::auth::{session_hash, Session};
use crate::server::error::{ApiError, ApiResult, Json};
use crate::server::limits::check_login_rate;
use crate::server::remote::{fresh_remote_key, remote_key, RemoteError};
use crate::server::routes::{address, no_such_user};
use crate::server::state::AppState;
use crate::server::store::SessionRow;
use crate::smimp::address::{Address, Domain};
use crate::smimp::crypto::{Hash, MasterPublicKey, Signature};
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
    check_login_rate(&state, ip).await?;
    let user = address(&user)?;
    if state.is_local(&user) && state.store.current_key(&user).await?.is_none() {
        return Err(no_such_user(&user));
    }
    let token = Id32::random(&mut OsRng);
    let expires_at = state.clock.now() + LOGIN_TOKEN_LIFETIME_SECS;
    state.store.add_login_token(&token, &user, expires_at).await?;
    Ok(Json(LoginChallenge { token, expires_at: timestamp(expires_at)? }))
}

/// The key that signed this login: a local account's current key, or a remote user's
/// from their verified history at their home server. A remote key is cached for a
/// minute, so a signature the cached key refuses is checked once more against a fresh
/// look-up: a user who rotated their key within that minute is not locked out.
async fn signing_key(
    state: &AppState,
    user: &Address,
    signed: &Hash,
    signature: &Signature,
) -> ApiResult<MasterPublicKey> {
    let refused = || {
        let here = &state.config.server.domain;
        ApiError::new(
            ErrorCode::LoginFailed,
            format!("the login token is not signed by {user}'s current master key for this server ({here})"),
        )
    };
    let lookup_failed = |e: RemoteError| {
        ApiError::new(ErrorCode::RemoteLookupFailed, format!("cannot establish {user}'s key at their home server: {e}"))
    };
    let key = if state.is_local(user) {
        state.store.current_key(user).await?.ok_or_else(|| no_such_user(user))?
    } else {
        let cached = remote_key(state, user).await.map_err(lookup_failed)?;
        if cached.verify(signed, signature).is_ok() {
            return Ok(cached);
        }
        fresh_remote_key(state, user).await.map_err(lookup_failed)?
    };
    key.verify(signed, signature).map_err(|_| refused())?;
    Ok(key)
}

/// This server's domain, the one every login here must be signed for (§9). A login
/// that says it was signed for another domain is refused by name; one that claims
/// this domain falsely fails the signature check, which is always over this domain.
fn this_server(state: &AppState, signed_for: &Domain) -> ApiResult<Domain> {
    let here = Domain::parse(&state.config.server.domain)
        .map_err(|e| ApiError::new(ErrorCode::Internal, format!("the server's own domain is not valid: {e}")))?;
    if *signed_for != here {
        return Err(ApiError::new(
            ErrorCode::WrongServer,
            format!(
                "this login was signed for {signed_for}, not for this server ({here}): a login signature is good \
                 only at the server the client meant to log in to"
            ),
        ));
    }
    Ok(here)
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
    let here = this_server(&state, &request.server)?;
    let key =
        signing_key(&state, &user, &create_session_hash(&here, &user, &request.token), &request.signature).await?;
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
