//! The shard's delivery schedule: a timer wheel of queue ids, woken when a new
//! message arrives or an operator asks for a retry; and which messages have an
//! attempt in flight, with what the operator asked to happen when it ends.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use crate::queue::clock::ms;
use crate::queue::QueuedMessage;
use crate::timer::TimerWheel;

pub struct Scheduler {
    wheel: RefCell<TimerWheel<u64>>,
    wake: tokio::sync::Notify,
    in_flight: Cell<usize>,
    /// Messages with an attempt running, and the operator action (if any) to apply
    /// once it ends: acting in the middle would deliver twice or bounce a message
    /// that is being delivered.
    attempts: RefCell<HashMap<u64, Option<AfterAttempt>>>,
}

/// An operator action held until the delivery in progress ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum AfterAttempt {
    /// Fail the recipients still pending then, with a failure DSN.
    Bounce,
    /// Remove the message without notice (wins over a bounce asked for too).
    Delete,
}

impl AfterAttempt {
    /// The word the operator used (`mxring queue bounce|delete`).
    pub fn name(self) -> &'static str {
        match self {
            AfterAttempt::Bounce => "bounce",
            AfterAttempt::Delete => "delete",
        }
    }
}

impl Scheduler {
    pub fn new(now: SystemTime) -> Self {
        Scheduler {
            wheel: RefCell::new(TimerWheel::new(ms(now))),
            wake: tokio::sync::Notify::new(),
            in_flight: Cell::new(0),
            attempts: RefCell::new(HashMap::new()),
        }
    }

    /// A message was queued (or rescheduled): attempt it at its next attempt time.
    pub fn enqueued(&self, id: u64, record: &QueuedMessage) {
        self.schedule(id, record.next_attempt_ms);
    }

    pub fn schedule(&self, id: u64, at_ms: u64) {
        self.wheel.borrow_mut().insert(at_ms, id);
        self.wake.notify_one();
    }

    pub fn cancel(&self, id: u64) -> bool {
        self.wheel.borrow_mut().cancel(&id)
    }

    /// Due ids and how long to sleep until the next one.
    pub fn due(&self, now: SystemTime) -> (Vec<u64>, Option<Duration>) {
        let adv = self.wheel.borrow_mut().advance(ms(now));
        (adv.due, adv.sleep)
    }

    pub async fn woken(&self) {
        self.wake.notified().await
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.get()
    }

    /// An attempt of `id` starts. False (and nothing changes) when one is already
    /// running: a message is never attempted twice at once.
    pub fn begin(&self, id: u64) -> bool {
        let mut attempts = self.attempts.borrow_mut();
        if attempts.contains_key(&id) {
            return false;
        }
        attempts.insert(id, None);
        self.in_flight.set(self.in_flight.get() + 1);
        true
    }

    /// The attempt of `id` ended; what the operator asked for meanwhile.
    pub fn end(&self, id: u64) -> Option<AfterAttempt> {
        let after = self.attempts.borrow_mut().remove(&id).flatten();
        self.in_flight.set(self.in_flight.get() - 1);
        after
    }

    /// Whether an attempt of `id` is running now.
    pub fn in_attempt(&self, id: u64) -> bool {
        self.attempts.borrow().contains_key(&id)
    }

    /// Hold `action` until the attempt of `id` ends. False when none is running.
    pub fn after_attempt(&self, id: u64, action: AfterAttempt) -> bool {
        match self.attempts.borrow_mut().get_mut(&id) {
            Some(slot) => {
                *slot = Some(slot.map_or(action, |held| held.max(action)));
                true
            }
            None => false,
        }
    }

    pub fn len(&self) -> usize {
        self.wheel.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.wheel.borrow().is_empty()
    }
}
