//! The attack suite: each test plays one hostile party and asserts what the user sees
//! and that nothing else changed.

mod common;

#[path = "hostile_server/delivery.rs"]
mod delivery;
