//! Attacks: limits (filled in with their defences).
