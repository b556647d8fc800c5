//! Queue ids: how a shard hands them out and how people see them.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::proto::MessageIds;

/// Shard-local source of queue ids.
#[derive(Clone, Debug)]
pub struct IdSource(Rc<Cell<u64>>);

impl IdSource {
    /// Ids are `shard << 56 | microseconds`, counting up from the start time, so
    /// they sort by arrival and stay unique across restarts.
    pub fn new(shard: u8, now: SystemTime, at_least: u64) -> Self {
        let micros = now
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0);
        let seed = ((shard as u64) << 56) | (micros & ((1 << 56) - 1));
        IdSource(Rc::new(Cell::new(seed.max(at_least))))
    }

    pub fn next(&self) -> u64 {
        let id = self.0.get();
        self.0.set(id + 1);
        id
    }
}

/// The SMTP session takes its ids here and writes them the queue's way.
impl MessageIds for IdSource {
    fn next(&self) -> u64 {
        IdSource::next(self)
    }

    fn format(&self, id: u64) -> String {
        format_id(id)
    }
}

/// Queue ids are written as 16 upper-case hex digits.
pub fn format_id(id: u64) -> String {
    format!("{id:016X}")
}

pub fn parse_id(s: &str) -> Option<u64> {
    (s.len() == 16)
        .then(|| u64::from_str_radix(s, 16).ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_sixteen_hex_digits_both_ways() {
        assert_eq!(format_id(0xABCDEF), "0000000000ABCDEF");
        assert_eq!(parse_id("0000000000ABCDEF"), Some(0xABCDEF));
        assert_eq!(parse_id("xyz"), None);
    }

    #[test]
    fn ids_count_up_from_the_shard_and_start_time() {
        let ids = IdSource::new(2, UNIX_EPOCH, 0);
        assert_eq!(ids.next(), 2 << 56);
        assert_eq!(ids.next(), (2 << 56) + 1);
        let later = IdSource::new(2, UNIX_EPOCH, 7 + (2 << 56));
        assert_eq!(later.next(), 7 + (2 << 56));
    }
}
