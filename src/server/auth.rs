//! Who is calling: the `SMIMP-Authentication` header turned into a live session
//! (spec "Create Session"), and the stricter form for operations only an
//! account's owner may call.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::server::error::ApiError;
use crate::server::state::AppState;
use crate::server::store::SessionRow;
use crate::smimp::crypto::{blake2b_256, Hash};
use crate::smimp::encoding::Id32;
use crate::smimp::wire::{ErrorCode, AUTH_HEADER};

/// The stored form of a session id: the database never holds the id itself.
pub fn session_hash(session: &Id32) -> Hash {
    blake2b_256(session.as_bytes())
}

/// Any live session: a local user's or a remote sender's.
#[derive(Debug, Clone)]
pub struct Session(pub SessionRow);

/// A live session of a local account's owner.
#[derive(Debug, Clone)]
pub struct OwnerSession(pub SessionRow);

impl FromRequestParts<Arc<AppState>> for Session {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, ApiError> {
        let header = parts.headers.get(AUTH_HEADER).ok_or_else(|| {
            ApiError::new(
                ErrorCode::NotAuthenticated,
                format!("this call needs a session: log in and send it in {AUTH_HEADER}"),
            )
        })?;
        let id: Id32 = header.to_str().ok().and_then(|text| text.trim().parse().ok()).ok_or_else(|| {
            ApiError::new(ErrorCode::NotAuthenticated, format!("{AUTH_HEADER} is not a session id (64 hex digits)"))
        })?;
        let hash = session_hash(&id);
        if let Some(row) = state.store.session(&hash, state.clock.now()).await? {
            return Ok(Session(row));
        }
        if state.store.session_known(&hash).await? {
            return Err(ApiError::new(ErrorCode::SessionExpired, "the session has expired or was ended; log in again"));
        }
        Err(ApiError::new(
            ErrorCode::NotAuthenticated,
            format!("{AUTH_HEADER} names no session of this server; log in"),
        ))
    }
}

impl FromRequestParts<Arc<AppState>> for OwnerSession {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, ApiError> {
        let Session(row) = Session::from_request_parts(parts, state).await?;
        if !row.local {
            return Err(ApiError::new(
                ErrorCode::Forbidden,
                "this call is for the account's owner; a session of a user of another server may only send",
            ));
        }
        Ok(OwnerSession(row))
    }
}
