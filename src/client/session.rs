//! An identity's session on one server (spec "Create Session", "Destroy Session"):
//! log in by signing the server's token, bound to the domain the server was discovered
//! by (docs/protocol.md §9), with the master key, keep the session, and
//! log in again transparently when the server says it expired. The same type serves
//! an account at its own server and a sender at a recipient's server.

use std::sync::Arc;

use tokio::sync::Mutex;

use crate::client::error::ClientError;
use crate::client::server::ServerClient;
use crate::smimp::address::Address;
use crate::smimp::crypto::{Hash, MasterKey};
use crate::smimp::encoding::Id32;
use crate::smimp::envelope::login_token_hash;
use crate::smimp::wire::{
    create_session_hash, ErrorCode, LoginChallenge, LoginRequest, Route, SessionCreated, SessionEnded,
};

/// A live session and what envelopes sent in it must bind to.
#[derive(Debug, Clone)]
pub struct Session {
    pub id: Id32,
    pub login_token_hash: Hash,
}

/// An identity (address + master key) talking to one server.
#[derive(Debug)]
pub struct SessionClient {
    server: ServerClient,
    address: Address,
    key: Arc<MasterKey>,
    session: Mutex<Option<Session>>,
}

impl SessionClient {
    /// No network traffic until the first call.
    pub fn new(server: ServerClient, address: Address, key: Arc<MasterKey>) -> Self {
        Self { server, address, key, session: Mutex::new(None) }
    }

    /// The server.
    pub fn server(&self) -> &ServerClient {
        &self.server
    }

    /// The identity's address.
    pub fn address(&self) -> &Address {
        &self.address
    }

    /// The current session, logging in when there is none.
    pub async fn session(&self) -> Result<Session, ClientError> {
        let mut guard = self.session.lock().await;
        if let Some(session) = guard.as_ref() {
            return Ok(session.clone());
        }
        let session = self.login().await?;
        *guard = Some(session.clone());
        Ok(session)
    }

    async fn login(&self) -> Result<Session, ClientError> {
        let challenge: LoginChallenge =
            self.server.call(&Route::GetLoginToken { address: self.address.clone() }, None, None::<&()>).await?;
        // The domain this server was discovered by, never one the server names: a
        // server that passed on another server's token gets a signature useless there.
        let server = self.server.domain().clone();
        let signature = self.key.sign(&create_session_hash(&server, &self.address, &challenge.token));
        let created: SessionCreated = self
            .server
            .call(
                &Route::CreateSession { address: self.address.clone() },
                None,
                Some(&LoginRequest { token: challenge.token, server, signature }),
            )
            .await?;
        tracing::debug!(server = self.server.base(), address = %self.address, "logged in");
        Ok(Session { id: created.session, login_token_hash: login_token_hash(&challenge.token) })
    }

    /// Calls an authenticated route; when the server says the session expired or
    /// ended, logs in once more and repeats the call.
    pub async fn call<T, B>(&self, route: &Route, body: Option<&B>) -> Result<T, ClientError>
    where
        T: serde::de::DeserializeOwned,
        B: serde::Serialize + ?Sized,
    {
        let session = self.session().await?;
        match self.server.call(route, Some(&session.id), body).await {
            Err(err) if matches!(err.code(), Some(ErrorCode::SessionExpired | ErrorCode::NotAuthenticated)) => {
                self.forget(&session).await;
                let session = self.session().await?;
                self.server.call(route, Some(&session.id), body).await
            }
            other => other,
        }
    }

    /// Calls an authenticated route within one given session (no re-login: the PoW
    /// and the message hash are bound to that session's login token). When the server
    /// says that session is over, it is forgotten, so the caller's next try logs in.
    pub async fn call_in<T, B>(&self, session: &Session, route: &Route, body: Option<&B>) -> Result<T, ClientError>
    where
        T: serde::de::DeserializeOwned,
        B: serde::Serialize + ?Sized,
    {
        let result = self.server.call(route, Some(&session.id), body).await;
        if let Err(err) = &result {
            if matches!(err.code(), Some(ErrorCode::SessionExpired | ErrorCode::NotAuthenticated)) {
                self.forget(session).await;
            }
        }
        result
    }

    async fn forget(&self, stale: &Session) {
        let mut guard = self.session.lock().await;
        if guard.as_ref().is_some_and(|s| s.id == stale.id) {
            *guard = None;
        }
    }

    /// Ends the session on the server, if there is one.
    pub async fn logout(&self) -> Result<(), ClientError> {
        let Some(session) = self.session.lock().await.take() else { return Ok(()) };
        let _: SessionEnded = self.server.call(&Route::DestroySession, Some(&session.id), None::<&()>).await?;
        Ok(())
    }
}
