//! Remote users' keys (spec "Create Session": "the server will request their public
//! Ed25519 key from the appropriate server"): discovery of their home server, their
//! whole history fetched and verified, the current key taken from it. Fails closed.

use crate::discovery::DiscoveryError;
use crate::server::state::AppState;
use crate::smimp::address::Address;
use crate::smimp::crypto::MasterPublicKey;
use crate::smimp::profile::{verify_history, ProfileError};
use crate::smimp::wire::{Route, UserHistory, UserInfoKind};

/// The largest user history read from another server.
pub const MAX_HISTORY_BYTES: usize = 4 * 1024 * 1024;

/// Why a remote user's key could not be established.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("{0}")]
    Discovery(#[from] DiscoveryError),
    #[error("{url}: the answer is not a user history: {reason}")]
    BadAnswer { url: String, reason: String },
    #[error("{address}'s history does not verify: {0}", address = .1)]
    History(ProfileError, Address),
}

/// The current master key of `address` at its home server, from a verified history.
pub async fn remote_key(state: &AppState, address: &Address) -> Result<MasterPublicKey, RemoteError> {
    let discovery = &state.discovery;
    let base = discovery.base_url(address.domain()).await?;
    let url = format!("{base}/{}", Route::GetUser { address: address.clone(), kind: UserInfoKind::History }.path());
    let response = discovery.client().get(&url).send().await.map_err(|e| crate::discovery::describe(&url, &e))?;
    if !response.status().is_success() {
        return Err(DiscoveryError::Status { url, status: response.status().as_u16() }.into());
    }
    let bytes = crate::discovery::read_capped(response, MAX_HISTORY_BYTES).await.map_err(|e| e.at(&url))?;
    let answer: UserHistory = serde_json::from_slice(&bytes)
        .map_err(|e| RemoteError::BadAnswer { url: url.clone(), reason: e.to_string() })?;
    let history = verify_history(address, &answer.history).map_err(|e| RemoteError::History(e, address.clone()))?;
    Ok(history.current_key())
}
