//! Attacks: trust (filled in with their defences).
