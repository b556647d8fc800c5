/// One scheduled id as stored in a slot.
#[derive(Debug, Clone, Copy)]
pub(super) struct Entry<T> {
    pub due: u64,
    /// Insertion counter: breaks ties between equal due times.
    pub seq: u64,
    pub id: T,
}

/// A bucket of entries with a cached minimum due time.
///
/// Removing the minimum only marks the cache stale instead of rescanning, so
/// cancelling many entries of one big slot stays O(1) each; the rescan is
/// paid once, when someone asks.
#[derive(Debug)]
pub(super) struct Slot<T> {
    entries: Vec<Entry<T>>,
    min_due: u64,
    min_stale: bool,
}

impl<T: Copy> Slot<T> {
    pub fn new() -> Self {
        Slot {
            entries: Vec::new(),
            min_due: u64::MAX,
            min_stale: false,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn get(&self, idx: usize) -> &Entry<T> {
        &self.entries[idx]
    }

    /// Appends `entry`; returns its index.
    pub fn push(&mut self, entry: Entry<T>) -> u32 {
        if self.entries.is_empty() {
            self.min_due = entry.due;
            self.min_stale = false;
        } else if !self.min_stale && entry.due < self.min_due {
            self.min_due = entry.due;
        }
        self.entries.push(entry);
        // `u32` keeps the per-id location at 8 bytes; four billion timers in
        // one slot is far beyond any shard's queue.
        u32::try_from(self.entries.len() - 1).expect("fewer than 2^32 timers per slot")
    }

    /// Removes the entry at `idx`; returns it and the id of the entry that
    /// moved into `idx`, whose recorded index must be updated.
    pub fn swap_remove(&mut self, idx: usize) -> (Entry<T>, Option<T>) {
        let removed = self.entries.swap_remove(idx);
        let moved = self.entries.get(idx).map(|e| e.id);
        if self.entries.is_empty() {
            self.min_due = u64::MAX;
            self.min_stale = false;
        } else if removed.due == self.min_due {
            self.min_stale = true;
        }
        (removed, moved)
    }

    pub fn min_due(&self) -> Option<u64> {
        if self.entries.is_empty() {
            None
        } else if self.min_stale {
            self.entries.iter().map(|e| e.due).min()
        } else {
            Some(self.min_due)
        }
    }

    pub fn refresh_min(&mut self) {
        if self.min_stale {
            self.min_due = self.entries.iter().map(|e| e.due).min().unwrap_or(u64::MAX);
            self.min_stale = false;
        }
    }

    pub fn take(&mut self) -> Vec<Entry<T>> {
        self.min_due = u64::MAX;
        self.min_stale = false;
        std::mem::take(&mut self.entries)
    }
}
