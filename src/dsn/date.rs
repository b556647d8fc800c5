use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};

/// RFC 5322 date-time in UTC; UTC keeps reports independent of the host's
/// time zone setting.
pub(super) fn rfc5322(time: SystemTime) -> String {
    DateTime::<Utc>::from(time)
        .format("%a, %d %b %Y %H:%M:%S +0000")
        .to_string()
}

/// Compact UTC timestamp for Message-IDs.
pub(super) fn compact(time: SystemTime) -> String {
    DateTime::<Utc>::from(time)
        .format("%Y%m%d%H%M%S")
        .to_string()
}

/// Whole seconds since the epoch; times before it count as zero.
pub(super) fn epoch_secs(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// "3.5 hours" or "2.0 days", the way people read a delay.
pub(super) fn human_age(age: Duration) -> String {
    let hours = age.as_secs_f64() / 3600.0;
    if hours < 48.0 {
        format!("{hours:.1} hours")
    } else {
        format!("{:.1} days", hours / 24.0)
    }
}
