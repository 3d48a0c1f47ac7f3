//! The bridge between the mail front-ends and SMIMP: what SMTP and IMAP need, built
//! over the client, the gateway's store and the keystore. So far: the outbound
//! engine ([`outbound`]) — the durable queue and delivery with trust checks, proof of
//! work and sealing.

pub mod account;
pub mod devices;
pub mod hot_cache;
pub mod imap_store;
pub mod inbound;
pub mod key_upkeep;
pub mod mailbox;
pub mod outbound;
pub mod progress;
pub mod relay;
pub mod relay_settings;
pub mod sessions;
pub mod submission;
pub mod trust;
pub mod uid_index;
