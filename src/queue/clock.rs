//! The queue's wall-clock unit: every time a record keeps (arrival, last and
//! next attempt) is milliseconds since the Unix epoch.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, the queue's unit of wall-clock time.
pub fn ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Now, in the queue's unit.
pub fn now_ms() -> u64 {
    ms(SystemTime::now())
}
