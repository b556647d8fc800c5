use std::collections::HashMap;
use std::hash::Hash;
use std::time::Duration;

use super::advance::Advance;
use super::level::{level_for, slot_for, slot_start, span_start, LEVELS, SLOTS};
use super::slot::{Entry, Slot};

/// Entries due at or before the wheel's current time, waiting for the next
/// `advance` (inserted in the past, or kept back when the clock stepped back).
const READY: usize = LEVELS * SLOTS;
/// Entries more than 2^42 ms ahead; pulled onto the wheel when time gets near.
const OVERFLOW: usize = READY + 1;
const SLOT_COUNT: usize = OVERFLOW + 1;

/// Where an id's entry is, so cancel is a swap-remove instead of a search.
#[derive(Debug, Clone, Copy)]
struct Loc {
    slot: u16,
    idx: u32,
}

/// A hierarchical timing wheel with 1 ms resolution: 7 levels of 64 slots
/// plus an overflow bucket.
///
/// Insert and cancel are O(1). `advance` visits only occupied slots (found
/// through one occupancy bitmap per level), so a jump of days costs the
/// number of entries, not the number of milliseconds. Each entry moves down
/// at most once per level before it fires.
#[derive(Debug)]
pub struct TimerWheel<T> {
    /// The time the wheel has advanced to; every entry outside `READY` is
    /// due strictly after it.
    elapsed: u64,
    slots: Vec<Slot<T>>,
    occupied: [u64; LEVELS],
    index: HashMap<T, Loc>,
    next_seq: u64,
}

impl<T: Copy + Eq + Hash> TimerWheel<T> {
    /// An empty wheel whose current time is `now_ms`.
    pub fn new(now_ms: u64) -> Self {
        TimerWheel {
            elapsed: now_ms,
            slots: (0..SLOT_COUNT).map(|_| Slot::new()).collect(),
            occupied: [0; LEVELS],
            index: HashMap::new(),
            next_seq: 0,
        }
    }

    /// Schedules `id` at `due_ms`. A due time in the past fires on the next
    /// advance. Re-inserting a scheduled id replaces its due time, and it
    /// then ranks after ids already scheduled at the same time.
    pub fn insert(&mut self, due_ms: u64, id: T) {
        if let Some(loc) = self.index.remove(&id) {
            self.remove_at(loc);
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let loc = self.place(Entry {
            due: due_ms,
            seq,
            id,
        });
        self.index.insert(id, loc);
    }

    /// Removes a scheduled id; returns whether it was scheduled.
    pub fn cancel(&mut self, id: &T) -> bool {
        match self.index.remove(id) {
            Some(loc) => {
                self.remove_at(loc);
                true
            }
            None => false,
        }
    }

    /// Moves time to `now_ms` and returns every id due at or before it.
    ///
    /// A `now_ms` earlier than a previous one (the wall clock stepped back)
    /// is allowed: it fires only what is due by then, and the wheel keeps its
    /// later position.
    pub fn advance(&mut self, now_ms: u64) -> Advance<T> {
        let mut fired = Vec::new();
        self.fire_ready(now_ms, &mut fired);
        while let Some((slot, start)) = self.next_expiration() {
            if start > now_ms {
                break;
            }
            self.elapsed = start;
            self.clear_occupied(slot);
            for entry in self.slots[slot].take() {
                if entry.due <= now_ms {
                    // Fired straight from a high level: no need to cascade
                    // an entry through levels it would only pass through.
                    self.index.remove(&entry.id);
                    fired.push(entry);
                } else {
                    let loc = self.place(entry);
                    self.index.insert(entry.id, loc);
                }
            }
        }
        self.elapsed = self.elapsed.max(now_ms);
        fired.sort_unstable_by_key(|e| (e.due, e.seq));

        // Settle the cached minimum of the earliest slot here, where we may
        // mutate, so `next_due` between advances does not rescan.
        self.slots[READY].refresh_min();
        if let Some((slot, _)) = self.next_expiration() {
            self.slots[slot].refresh_min();
        }
        let sleep = self
            .next_due()
            .map(|due| Duration::from_millis(due.saturating_sub(now_ms).max(1)));
        Advance {
            due: fired.into_iter().map(|e| e.id).collect(),
            sleep,
        }
    }

    /// Number of scheduled ids.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// The earliest scheduled due time, if any.
    pub fn next_due(&self) -> Option<u64> {
        let ready = self.slots[READY].min_due();
        let wheel = self
            .next_expiration()
            .and_then(|(slot, _)| self.slots[slot].min_due());
        match (ready, wheel) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The due time `id` is scheduled at, if it is scheduled.
    pub fn due_time(&self, id: &T) -> Option<u64> {
        self.index
            .get(id)
            .map(|loc| self.slots[loc.slot as usize].get(loc.idx as usize).due)
    }

    pub fn contains(&self, id: &T) -> bool {
        self.index.contains_key(id)
    }

    /// The time the wheel has advanced to.
    pub fn now_ms(&self) -> u64 {
        self.elapsed
    }

    fn place(&mut self, entry: Entry<T>) -> Loc {
        let slot = if entry.due <= self.elapsed {
            READY
        } else {
            let level = level_for(self.elapsed, entry.due);
            if level >= LEVELS {
                OVERFLOW
            } else {
                let slot = slot_for(entry.due, level);
                self.occupied[level] |= 1 << slot;
                level * SLOTS + slot
            }
        };
        let idx = self.slots[slot].push(entry);
        Loc {
            slot: slot as u16,
            idx,
        }
    }

    fn remove_at(&mut self, loc: Loc) {
        let slot = loc.slot as usize;
        let (_, moved) = self.slots[slot].swap_remove(loc.idx as usize);
        if let Some(moved) = moved {
            if let Some(moved_loc) = self.index.get_mut(&moved) {
                moved_loc.idx = loc.idx;
            }
        }
        if self.slots[slot].is_empty() {
            self.clear_occupied(slot);
        }
    }

    fn clear_occupied(&mut self, slot: usize) {
        if slot < READY {
            self.occupied[slot / SLOTS] &= !(1 << (slot % SLOTS));
        }
    }

    /// The earliest non-empty wheel slot (or overflow) and when it begins.
    fn next_expiration(&self) -> Option<(usize, u64)> {
        for (level, &occupied) in self.occupied.iter().enumerate() {
            if occupied != 0 {
                // Occupied slots all lie after the current one (see
                // `level`), so the lowest set bit is the next in time.
                let slot = occupied.trailing_zeros() as usize;
                debug_assert!(slot > slot_for(self.elapsed, level));
                return Some((level * SLOTS + slot, slot_start(self.elapsed, level, slot)));
            }
        }
        self.slots[OVERFLOW]
            .min_due()
            .map(|due| (OVERFLOW, span_start(due)))
    }

    fn fire_ready(&mut self, now_ms: u64, fired: &mut Vec<Entry<T>>) {
        if self.slots[READY].is_empty() {
            return;
        }
        for entry in self.slots[READY].take() {
            if entry.due <= now_ms {
                self.index.remove(&entry.id);
                fired.push(entry);
            } else {
                let loc = self.place(entry);
                self.index.insert(entry.id, loc);
            }
        }
    }
}
