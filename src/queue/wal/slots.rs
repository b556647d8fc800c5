//! A shard's segment slots and what lives in each: which messages, how many
//! octets, and whether the slot is being written, sealed, draining or free.
//! Shard-local: only the shard appends, removes and reuses.
//!
//! A slot whose last message is done may be reused only once the index has been
//! flushed past that removal: before that, a crash would bring back index entries
//! pointing into a slot that holds something else by then.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::segment;
use crate::queue::index::Location;

fn free_len_over(slots: &Slots, keep: usize) -> usize {
    slots
        .slots
        .values()
        .filter(|s| s.state == State::Free)
        .count()
        .saturating_sub(keep)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Never used, or reusable.
    Free,
    /// Taking appends.
    Active,
    /// Full (or abandoned) and still holding messages.
    Sealed { since: Instant },
    /// Empty, waiting for an index flush that covers index write `gen`.
    Draining { gen: u64 },
}

#[derive(Debug)]
pub struct Slot {
    pub path: PathBuf,
    pub capacity: u64,
    /// The generation of the current (or last) use; 0 for never used.
    pub seq: u64,
    /// The messages whose body is here, with their record lengths.
    pub members: HashMap<u64, u64>,
    pub live_bytes: u64,
    pub state: State,
    /// Made for one message larger than a segment: deleted, not reused.
    pub oversize: bool,
}

pub struct Slots {
    pub dir: PathBuf,
    pub segment_size: u64,
    slots: BTreeMap<u32, Slot>,
    next_seq: u64,
}

impl Slots {
    /// The slots on disk, with their headers; `min_seq` is the index checkpoint's
    /// generation (new generations start above everything seen).
    pub fn load(
        dir: &Path,
        segment_size: u64,
        min_seq: u64,
    ) -> Result<Slots, crate::queue::StoreError> {
        segment::remove_unfinished(dir)?;
        let mut slots = BTreeMap::new();
        let mut max_seq = min_seq;
        for (n, path, len) in segment::list(dir)? {
            let seq = match segment::read_header(&path)? {
                Ok(Some(h)) => h.seq,
                Ok(None) => 0,
                Err(segment::HeaderError::Newer(v)) => {
                    return Err(crate::queue::StoreError::Format(format!(
                        "segment {} is of format {v}, newer than this mxring reads ({})",
                        path.display(),
                        segment::VERSION
                    )))
                }
                // Unreadable: reusable unless the index says a message lives here
                // (then reading it fails loudly, at delivery).
                Err(segment::HeaderError::Damaged) => 0,
            };
            max_seq = max_seq.max(seq);
            slots.insert(
                n,
                Slot {
                    path,
                    capacity: len,
                    seq,
                    members: HashMap::new(),
                    live_bytes: 0,
                    state: State::Free,
                    oversize: len > segment_size,
                },
            );
        }
        Ok(Slots {
            dir: dir.to_path_buf(),
            segment_size,
            slots,
            next_seq: max_seq + 1,
        })
    }

    /// After `load`: a message the index holds. Slots with members are sealed.
    pub fn add_loaded(&mut self, loc: Location, id: u64, now: Instant) {
        if let Some(s) = self.slots.get_mut(&loc.slot) {
            if s.seq == loc.seq {
                s.state = State::Sealed { since: now };
                if s.members.insert(id, loc.len).is_none() {
                    s.live_bytes += loc.len;
                }
            }
        }
    }

    pub fn add(&mut self, loc: Location, id: u64) {
        if let Some(s) = self.slots.get_mut(&loc.slot) {
            if s.seq == loc.seq && s.members.insert(id, loc.len).is_none() {
                s.live_bytes += loc.len;
            }
        }
    }

    /// A message left the index (index write `gen`).
    pub fn remove(&mut self, loc: Location, id: u64, gen: u64) {
        if let Some(s) = self.slots.get_mut(&loc.slot) {
            if s.seq == loc.seq {
                if let Some(len) = s.members.remove(&id) {
                    s.live_bytes -= len;
                }
                if s.members.is_empty() {
                    if let State::Sealed { .. } = s.state {
                        s.state = State::Draining { gen };
                    }
                }
            }
        }
    }

    /// The slot stops taking appends.
    pub fn seal(&mut self, slot: u32, gen: u64, now: Instant) {
        if let Some(s) = self.slots.get_mut(&slot) {
            s.state = if s.members.is_empty() {
                State::Draining { gen }
            } else {
                State::Sealed { since: now }
            };
        }
    }

    /// The index is flushed up to write `gen`: draining slots become free (one-off
    /// slots are deleted). Returns how many were released.
    pub fn flushed(&mut self, gen: u64) -> usize {
        let mut released = 0;
        let mut delete = Vec::new();
        for (&n, s) in self.slots.iter_mut() {
            if let State::Draining { gen: g } = s.state {
                if g <= gen {
                    released += 1;
                    if s.oversize {
                        delete.push(n);
                    } else {
                        s.state = State::Free;
                    }
                }
            }
        }
        for n in delete {
            if let Some(s) = self.slots.remove(&n) {
                if let Err(e) = std::fs::remove_file(&s.path) {
                    tracing::warn!(segment = %s.path.display(), error = %e, "could not remove a one-off log segment");
                }
            }
        }
        released
    }

    /// Whether some slot waits for an index flush to become free.
    pub fn draining(&self) -> bool {
        self.slots
            .values()
            .any(|s| matches!(s.state, State::Draining { .. }))
    }

    /// Take a free slot that holds `need` octets after its header, for a new
    /// generation. Returns (slot, path, capacity, seq).
    pub fn take_free(&mut self, need: u64) -> Option<(u32, PathBuf, u64, u64)> {
        let (&n, _) = self.slots.iter().find(|(_, s)| {
            s.state == State::Free && s.capacity >= need + segment::HEADER_LEN && !s.oversize
        })?;
        self.take(n)
    }

    /// Make slot `n` the active one, for a new generation.
    pub fn take(&mut self, n: u32) -> Option<(u32, PathBuf, u64, u64)> {
        let seq = self.next_seq;
        self.next_seq += 1;
        let s = self.slots.get_mut(&n)?;
        s.state = State::Active;
        s.seq = seq;
        s.members.clear();
        s.live_bytes = 0;
        Some((n, s.path.clone(), s.capacity, seq))
    }

    pub fn has_free(&self) -> bool {
        self.slots
            .values()
            .any(|s| s.state == State::Free && !s.oversize)
    }

    /// A number for a new slot file.
    pub fn next_number(&self, reserved: &[u32]) -> u32 {
        let mut n = self.slots.keys().next_back().map_or(0, |&n| n + 1);
        while reserved.contains(&n) {
            n += 1;
        }
        n
    }

    /// A slot file just made: registered as free.
    pub fn register(&mut self, n: u32, path: PathBuf, capacity: u64, oversize: bool) {
        self.slots.insert(
            n,
            Slot {
                path,
                capacity,
                seq: 0,
                members: HashMap::new(),
                live_bytes: 0,
                state: State::Free,
                oversize,
            },
        );
    }

    /// Sealed slots worth copying forward: sealed for `after` or longer, and less
    /// than a quarter full of live messages. Their members.
    pub fn to_compact(&self, now: Instant, after: Duration) -> Vec<(u32, Vec<u64>)> {
        self.slots
            .iter()
            .filter_map(|(&n, s)| match s.state {
                State::Sealed { since }
                    if now.duration_since(since) >= after
                        && s.live_bytes * 4 < s.capacity
                        && !s.members.is_empty() =>
                {
                    Some((n, s.members.keys().copied().collect()))
                }
                _ => None,
            })
            .collect()
    }

    /// Keep at most `keep` free slots for reuse; delete the others (the highest
    /// numbered), so a burst's worth of segments does not stay on disk for good.
    pub fn trim_free(&mut self, keep: usize) -> usize {
        let free: Vec<u32> = self
            .slots
            .iter()
            .filter(|(_, s)| s.state == State::Free)
            .map(|(&n, _)| n)
            .collect();
        let mut removed = 0;
        for n in free.into_iter().rev().take(free_len_over(self, keep)) {
            if let Some(s) = self.slots.remove(&n) {
                match std::fs::remove_file(&s.path) {
                    Ok(()) => removed += 1,
                    Err(e) => {
                        tracing::warn!(segment = %s.path.display(), error = %e, "could not remove a spare log segment");
                    }
                }
            }
        }
        removed
    }
}
