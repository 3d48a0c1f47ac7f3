//! The API documents of SMIMP v0.1 (docs/protocol.md §8–§10; spec "Public Data",
//! "Session Management", "Sending A Message", "Mailbox Management", "Account
//! Administration"): the serde type of every request and response body, one route
//! table with the path and method of every operation, the hashes only the API uses
//! (login, avatar, list entry, initialisation password) and the error body with its
//! codes. One file per API group; everything is re-exported here, so callers name
//! `crate::smimp::wire::X` whatever group `X` lives in.
//!
//! The reference server and the client both speak through these types, so they
//! cannot drift apart. Pure: no I/O, no HTTP crate; methods and statuses are plain
//! values that the callers map onto their HTTP library. Request documents refuse
//! unknown fields (`deny_unknown_fields`); response documents ignore them, so an
//! older client can read a newer server.

mod account;
mod devices;
mod errors;
mod mailbox;
mod public;
mod routes;
mod sending;
mod session;
#[cfg(test)]
mod tests;

pub use account::*;
pub use devices::*;
pub use errors::*;
pub use mailbox::*;
pub use public::*;
pub use routes::*;
pub use sending::*;
pub use session::*;

/// The only protocol version this profile defines; the second segment of every path
/// except `version` (spec "Server Version Request").
pub const VERSION: &str = "0.1";

/// The HTTP header that carries the session id (hex) on every authenticated call
/// (spec "Create Session").
pub const AUTH_HEADER: &str = "SMIMP-Authentication";
