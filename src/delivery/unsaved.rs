//! Queue writes that failed after a delivery (a full disk, a wedged store): what the
//! record should have become. They are kept here and tried again until they stick,
//! because a message delivered but still queued would be delivered again (after a
//! restart, or at its next attempt).

use std::cell::RefCell;
use std::collections::BTreeMap;

use crate::queue::format_id;
use crate::queue::{QueuedMessage, ShardQueue};

pub enum Pending {
    /// Every recipient is done: the message goes.
    Remove,
    /// Some recipients are done: the record must say so before the next attempt.
    Update(Box<QueuedMessage>),
}

#[derive(Default)]
pub struct Unsaved(RefCell<BTreeMap<u64, Pending>>);

impl Unsaved {
    pub fn keep(&self, id: u64, p: Pending) {
        self.0.borrow_mut().insert(id, p);
    }

    pub fn is_empty(&self) -> bool {
        self.0.borrow().is_empty()
    }

    pub fn has(&self, id: u64) -> bool {
        self.0.borrow().contains_key(&id)
    }

    /// Write them all again and commit once; what sticks is forgotten. True when
    /// nothing is left.
    pub async fn retry(&self, queue: &ShardQueue) -> bool {
        let ids: Vec<u64> = self.0.borrow().keys().copied().collect();
        if ids.is_empty() {
            return true;
        }
        for &id in &ids {
            let written = match self.0.borrow().get(&id) {
                Some(Pending::Remove) => queue.remove(id),
                Some(Pending::Update(rec)) => queue.update(id, rec),
                None => Ok(()),
            };
            if written.is_err() {
                return false;
            }
        }
        if queue.commit().await.is_err() {
            return false;
        }
        let mut map = self.0.borrow_mut();
        for id in ids {
            map.remove(&id);
            tracing::info!(id = %format_id(id), "queue record written after an earlier failure");
        }
        map.is_empty()
    }
}
