//! The SMIMP protocol core (docs/protocol.md): addresses, primitives, the signed
//! profile history, message keys, proof of work, envelopes and message payloads.
//!
//! Pure by rule (docs/architecture.md): no sockets, files, async runtime, database or
//! HTTP here; time and randomness are parameters so tests pin them. Every parser and
//! verifier returns a typed error and never panics on input.

pub mod address;
pub mod crypto;
pub mod device;
pub mod encoding;
pub mod envelope;
pub mod keys;
pub mod message;
pub mod pow;
pub mod profile;
pub mod timestamp;
pub mod transcript;
pub mod vectors;
pub mod wire;
