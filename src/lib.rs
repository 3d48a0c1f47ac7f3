//! smimp-gateway: end-to-end encrypted mail (SMIMP v0.1) for the mail clients
//! people already have, and the reference SMIMP server.
//!
//! Module map (docs/architecture.md has the whole of it and the rules):
//! - [`smimp`]: the pure protocol core — addresses, primitives with libsodium's
//!   semantics, the signed profile history and its pin, message keys, proof of work,
//!   envelopes and payloads. No I/O; time and randomness are parameters.
//!
//! Front-ends (SMTP, IMAP), the SMIMP client, the keystore, the gateway's store and
//! the reference server build on this core and are added beside it.

pub mod backend;
pub mod client;
pub mod clock;
pub mod config_file;
pub mod demo;
pub mod discovery;
pub mod gateway;
pub mod imap;
pub mod keystore;
pub mod listen;
pub mod mime;
pub mod notify;
pub mod server;
pub mod smimp;
pub mod smtp;
pub mod sqlite;
pub mod store;
pub mod tls;
