//! The SMIMP client the gateway is for every account it serves: servers found by
//! discovery and version-checked ([`server`]), sessions with transparent re-login
//! ([`session`]), trust on first use ([`trust`]) and the account's own operations
//! ([`account`]: initialisation, message keys, profile updates).
//!
//! Reaches the network only through `discovery`'s verified HTTPS client, and state
//! only through `store` and `keystore`.

pub mod account;
mod api;
mod devices;
pub mod error;
pub mod server;
pub mod session;
pub mod trust;

pub use error::ClientError;
pub use server::ServerClient;
pub use session::{Session, SessionClient};
