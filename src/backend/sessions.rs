//! One SMIMP session per (account, server), shared by every part of the gateway that
//! talks to that server as the account: deliveries to its recipients, APPEND and COPY
//! to the account's own mailbox, the mailbox sync. A login is a signed challenge and,
//! at the reference server, one of a limited number per minute, so logging in per
//! message makes a busy client meet "too many logins"; the session is instead reused
//! until it expires or the server says it is gone, then renewed once while concurrent
//! callers wait for that one renewal ([`SessionClient::session`]).
//!
//! A server's entry (its discovered address and version check included) is kept for
//! [`REDISCOVER_AFTER`], then looked up again, so a domain that moves is followed.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;

use crate::client::server::ServerClient;
use crate::client::session::SessionClient;
use crate::client::ClientError;
use crate::discovery::Discovery;
use crate::smimp::address::Address;
use crate::smimp::crypto::MasterKey;

/// How long a server's discovered address and session are reused before discovery
/// runs again.
pub const REDISCOVER_AFTER: Duration = Duration::from_secs(3600);

/// The account's sessions, by server domain.
#[derive(Debug)]
pub struct Sessions {
    address: Address,
    key: Arc<MasterKey>,
    servers: std::sync::Mutex<HashMap<String, Arc<Entry>>>,
}

/// One server's session client, made once by whichever caller comes first; the map's
/// lock is not held while it is made, so a slow server delays only its own callers.
#[derive(Debug)]
struct Entry {
    made: Instant,
    client: OnceCell<Arc<SessionClient>>,
}

impl Sessions {
    /// No network traffic until the first call.
    pub fn new(address: Address, key: Arc<MasterKey>) -> Self {
        Self { address, key, servers: std::sync::Mutex::new(HashMap::new()) }
    }

    /// The account's session client at `domain`'s server, discovered on first use (and
    /// again after [`REDISCOVER_AFTER`]); it logs in on its first call.
    pub async fn at(&self, discovery: &Discovery, domain: &str) -> Result<Arc<SessionClient>, ClientError> {
        let entry = self.entry(domain);
        let client = entry
            .client
            .get_or_try_init(|| async {
                let server = ServerClient::connect(discovery, domain).await?;
                Ok::<_, ClientError>(Arc::new(SessionClient::new(server, self.address.clone(), self.key.clone())))
            })
            .await?;
        Ok(client.clone())
    }

    /// The account's session client at its own server.
    pub async fn own(&self, discovery: &Discovery) -> Result<Arc<SessionClient>, ClientError> {
        self.at(discovery, self.address.domain()).await
    }

    fn entry(&self, domain: &str) -> Arc<Entry> {
        let mut servers = self.servers.lock().unwrap_or_else(|p| p.into_inner());
        let fresh = || Arc::new(Entry { made: Instant::now(), client: OnceCell::new() });
        let entry = servers.entry(domain.to_string()).or_insert_with(fresh);
        if entry.made.elapsed() >= REDISCOVER_AFTER {
            *entry = fresh();
        }
        entry.clone()
    }
}
