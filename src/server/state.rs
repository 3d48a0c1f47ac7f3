//! What every handler shares: configuration, storage, the discovery client for
//! remote users, rate limiters and the clock (injectable, so tests can expire
//! sessions without sleeping).

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use governor::{DefaultKeyedRateLimiter, Quota};

use crate::discovery::Discovery;
use crate::server::config::ServerConfig;
use crate::server::remote::RemoteKeys;
use crate::server::store::{RateLimit, ServerStore, StoreError};
use crate::smimp::address::Address;

/// The time source: system time plus an offset that only tests move.
#[derive(Debug, Default)]
pub struct Clock {
    offset: AtomicI64,
}

impl Clock {
    /// Unix seconds now.
    pub fn now(&self) -> i64 {
        let system = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or_default();
        system + self.offset.load(Ordering::Relaxed)
    }

    /// Moves time forward (tests of expiry).
    pub fn advance(&self, seconds: i64) {
        self.offset.fetch_add(seconds, Ordering::Relaxed);
    }
}

/// Keyed per-minute limits against abuse (docs/protocol.md §9).
pub struct Limiters {
    /// Logins and initialisations per client IP (an IPv6 client by its /64).
    pub create_session: DefaultKeyedRateLimiter<String>,
}

impl std::fmt::Debug for Limiters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Limiters")
    }
}

fn per_minute(n: u32) -> DefaultKeyedRateLimiter<String> {
    governor::RateLimiter::keyed(Quota::per_minute(NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)))
}

/// The state behind every request.
#[derive(Debug)]
pub struct AppState {
    pub config: ServerConfig,
    pub store: ServerStore,
    pub discovery: Discovery,
    pub limits: Limiters,
    pub clock: Clock,
    /// Recently verified keys of remote users (`remote`).
    pub remote_keys: RemoteKeys,
}

impl AppState {
    /// Builds the state from its parts.
    pub fn new(config: ServerConfig, store: ServerStore, discovery: Discovery) -> Arc<Self> {
        let limits = Limiters { create_session: per_minute(config.limits.create_session_per_minute) };
        Arc::new(Self { config, store, discovery, limits, clock: Clock::default(), remote_keys: RemoteKeys::default() })
    }

    /// Counts one call under `limit` for `key`: first in this process (governor, so
    /// that a flood is refused without touching the database), then in the store that
    /// every instance shares; false when either is past the limit.
    pub async fn rate_allows(&self, limit: RateLimit, key: &str) -> Result<bool, StoreError> {
        let (local, per_minute) = match limit {
            RateLimit::Login => (&self.limits.create_session, self.config.limits.create_session_per_minute),
        };
        if local.check_key(&key.to_string()).is_err() {
            return Ok(false);
        }
        self.store.count_call(limit, key, per_minute, self.clock.now()).await
    }

    /// Whether `address` belongs to this server's domain.
    pub fn is_local(&self, address: &Address) -> bool {
        address.domain() == self.config.server.domain
    }
}
