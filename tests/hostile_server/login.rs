//! Attacks: login (filled in with their defences).
