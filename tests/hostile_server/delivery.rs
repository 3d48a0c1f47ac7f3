//! Attacks: delivery (filled in with their defences).
