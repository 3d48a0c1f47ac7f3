//! The attack suite: each test plays one hostile party (a sender's, a recipient's or the
//! account's own server lying on purpose through [`harness::Hostile`], a local process,
//! a mail client) and asserts what the user sees and that nothing else changed.
//! docs/security.md lists every attack with the test that proves its defence.

mod common;
#[path = "hostile_server/harness.rs"]
mod harness;

#[path = "hostile_server/delivery.rs"]
mod delivery;
#[path = "hostile_server/limits.rs"]
mod limits;
#[path = "hostile_server/local.rs"]
mod local;
#[path = "hostile_server/login.rs"]
mod login;
#[path = "hostile_server/pages.rs"]
mod pages;
#[path = "hostile_server/proxy.rs"]
mod proxy;
#[path = "hostile_server/trust.rs"]
mod trust;
