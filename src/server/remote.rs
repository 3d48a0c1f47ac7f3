//! Remote users' keys (spec "Create Session": "the server will request their public
//! Ed25519 key from the appropriate server"): discovery of their home server, their
//! whole history fetched and verified, the current key taken from it. Fails closed.
//!
//! Any client can make the server do this, naming a domain of their choosing, so it
//! is bounded (docs/protocol.md §9.1): a history is read up to [`MAX_HISTORY_BYTES`],
//! parsed and verified on the blocking pool (never on the async workers that serve
//! every other request), at most [`VERIFYING_AT_ONCE`] at a time, and a verified key
//! is kept for [`CACHE_SECS`] in a bounded cache, so repeated logins of one remote
//! user cost one verification a minute.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::Semaphore;

use crate::discovery::DiscoveryError;
use crate::server::state::AppState;
use crate::smimp::address::Address;
use crate::smimp::crypto::MasterPublicKey;
use crate::smimp::profile::{verify_history, ProfileError};
use crate::smimp::wire::{body_limit, Route, UserHistory, UserInfoKind};

/// The largest user history read from another server. A record is at most
/// [`body_limit::PROFILE_RECORD`] (16 KiB, the `update_profile` body limit) and a
/// typical one about 400 bytes, so 1 MiB holds 64 records of the largest size or
/// some 2,500 ordinary updates and key rotations; this server refuses to grow a
/// history of its own past it (`update_profile`), so it never serves one that other
/// servers refuse.
pub const MAX_HISTORY_BYTES: usize = 1024 * 1024;

const _: () = assert!(MAX_HISTORY_BYTES >= 64 * body_limit::PROFILE_RECORD);

/// How long a verified remote key is used without fetching the history again: a
/// remote user's key rotation is seen at most this late.
pub const CACHE_SECS: i64 = 60;

/// The most remote keys cached at once; past it the oldest entry goes.
pub const CACHE_ENTRIES: usize = 1024;

/// Remote histories parsed and verified at the same time; more wait their turn.
pub const VERIFYING_AT_ONCE: usize = 2;

/// Why a remote user's key could not be established.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("{0}")]
    Discovery(#[from] DiscoveryError),
    #[error("{url}: the answer is not a user history: {reason}")]
    BadAnswer { url: String, reason: String },
    #[error("{address}'s history does not verify: {0}", address = .1)]
    History(ProfileError, Address),
    #[error("verifying {0}'s history stopped unexpectedly")]
    Stopped(Address),
}

/// Verified remote keys, by address, with the time they were verified.
#[derive(Debug)]
pub struct RemoteKeys {
    entries: Mutex<HashMap<String, (MasterPublicKey, i64)>>,
    verifying: Semaphore,
}

impl Default for RemoteKeys {
    fn default() -> Self {
        Self { entries: Mutex::new(HashMap::new()), verifying: Semaphore::new(VERIFYING_AT_ONCE) }
    }
}

impl RemoteKeys {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (MasterPublicKey, i64)>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The key verified for `address` less than [`CACHE_SECS`] before `now`.
    pub fn get(&self, address: &Address, now: i64) -> Option<MasterPublicKey> {
        self.lock().get(address.as_str()).filter(|(_, at)| now - at < CACHE_SECS).map(|(key, _)| *key)
    }

    /// Remembers a verified key, dropping expired entries and then the oldest when full.
    pub fn insert(&self, address: &Address, key: MasterPublicKey, now: i64) {
        let mut entries = self.lock();
        if entries.len() >= CACHE_ENTRIES {
            entries.retain(|_, (_, at)| now - *at < CACHE_SECS);
        }
        if entries.len() >= CACHE_ENTRIES {
            let oldest = entries.iter().min_by_key(|(_, (_, at))| *at).map(|(name, _)| name.clone());
            if let Some(oldest) = oldest {
                entries.remove(&oldest);
            }
        }
        entries.insert(address.as_str().to_string(), (key, now));
    }

    /// Forgets expired entries (the server's purge loop).
    pub fn retain_fresh(&self, now: i64) {
        self.lock().retain(|_, (_, at)| now - *at < CACHE_SECS);
    }

    /// How many keys are cached.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The current master key of `address` at its home server, from a verified history
/// (or the cache of recently verified ones).
pub async fn remote_key(state: &AppState, address: &Address) -> Result<MasterPublicKey, RemoteError> {
    match state.remote_keys.get(address, state.clock.now()) {
        Some(key) => Ok(key),
        None => fresh_remote_key(state, address).await,
    }
}

/// The key of `address` fetched from its home server now, past the cache (which it
/// then refreshes): for a login whose signature failed against a cached key, since the
/// user may have rotated their key within the cache's minute.
pub async fn fresh_remote_key(state: &AppState, address: &Address) -> Result<MasterPublicKey, RemoteError> {
    let discovery = &state.discovery;
    let base = discovery.base_url(address.domain()).await?;
    let url = format!("{base}/{}", Route::GetUser { address: address.clone(), kind: UserInfoKind::History }.path());
    let response = discovery.client().get(&url).send().await.map_err(|e| crate::discovery::describe(&url, &e))?;
    if !response.status().is_success() {
        return Err(DiscoveryError::Status { url, status: response.status().as_u16() }.into());
    }
    let bytes = crate::discovery::read_capped(response, MAX_HISTORY_BYTES).await.map_err(|e| e.at(&url))?;
    let key = verify_off_workers(state, address, url, bytes).await?;
    state.remote_keys.insert(address, key, state.clock.now());
    Ok(key)
}

/// Parses and verifies a fetched history on the blocking pool, a few at a time.
async fn verify_off_workers(
    state: &AppState,
    address: &Address,
    url: String,
    bytes: Vec<u8>,
) -> Result<MasterPublicKey, RemoteError> {
    let _permit = state.remote_keys.verifying.acquire().await.map_err(|_| RemoteError::Stopped(address.clone()))?;
    let owner = address.clone();
    tokio::task::spawn_blocking(move || {
        let answer: UserHistory =
            serde_json::from_slice(&bytes).map_err(|e| RemoteError::BadAnswer { url, reason: e.to_string() })?;
        let history = verify_history(&owner, &answer.history).map_err(|e| RemoteError::History(e, owner.clone()))?;
        Ok(history.current_key())
    })
    .await
    .map_err(|_| RemoteError::Stopped(address.clone()))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smimp::crypto::MasterKey;

    fn address(n: usize) -> Address {
        Address::parse(&format!("user{n}#example.net")).unwrap()
    }

    #[test]
    fn cached_keys_expire_and_the_cache_stays_bounded() {
        let cache = RemoteKeys::default();
        let key = MasterKey::generate(&mut rand_core::OsRng).public();
        cache.insert(&address(0), key, 1000);
        assert_eq!(cache.get(&address(0), 1000 + CACHE_SECS - 1), Some(key));
        assert_eq!(cache.get(&address(0), 1000 + CACHE_SECS), None);
        for n in 1..=CACHE_ENTRIES + 10 {
            cache.insert(&address(n), key, 1000);
        }
        assert_eq!(cache.len(), CACHE_ENTRIES);
        assert_eq!(cache.get(&address(CACHE_ENTRIES + 10), 1000), Some(key));
        cache.retain_fresh(i64::MAX / 2);
        assert!(cache.is_empty());
    }
}
