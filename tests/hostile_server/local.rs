//! Attacks: local (filled in with their defences).
