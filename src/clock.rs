//! The wall clock as Unix seconds, read in one place. The protocol core never reads a
//! clock (time is a parameter there); the gateway's commands and its backend take the
//! current time from here.

/// Seconds since the Unix epoch; 0 if the system clock is set before 1970.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or_default()
}
