use std::time::SystemTime;

use super::date::epoch_secs;

/// RFC 2046 allows at most 70 characters in a boundary.
const MAX_BOUNDARY: usize = 70;

/// Picks a boundary that occurs in none of `contents`.
///
/// The first candidate is deterministic (seed, time, host) so tests can
/// predict it; a sender who plants it in a message only moves us on to the
/// next counter value.
pub(super) fn choose(seed: u64, now: SystemTime, host: &str, contents: &[&[u8]]) -> String {
    let host: String = host
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '.' || *c == '-')
        .collect();
    let base = format!("{seed:016X}.{}/{host}", epoch_secs(now));
    for attempt in 0u64.. {
        let suffix = if attempt == 0 {
            String::new()
        } else {
            format!("={attempt}")
        };
        let keep = MAX_BOUNDARY - suffix.len();
        let candidate = format!("{}{suffix}", &base[..base.len().min(keep)]);
        if !contents.iter().any(|c| contains(c, candidate.as_bytes())) {
            return candidate;
        }
    }
    unreachable!("a finite message cannot contain every counter value")
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
