//! The shard's delivery schedule: a timer wheel of queue ids, woken when a new
//! message arrives or an operator asks for a retry.

use std::cell::{Cell, RefCell};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::queue::QueuedMessage;
use crate::timer::TimerWheel;

pub fn ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

pub struct Scheduler {
    wheel: RefCell<TimerWheel<u64>>,
    wake: tokio::sync::Notify,
    in_flight: Cell<usize>,
}

impl Scheduler {
    pub fn new(now: SystemTime) -> Self {
        Scheduler {
            wheel: RefCell::new(TimerWheel::new(ms(now))),
            wake: tokio::sync::Notify::new(),
            in_flight: Cell::new(0),
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

    pub fn begin(&self) {
        self.in_flight.set(self.in_flight.get() + 1);
    }

    pub fn end(&self) {
        self.in_flight.set(self.in_flight.get() - 1);
    }

    pub fn len(&self) -> usize {
        self.wheel.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.wheel.borrow().is_empty()
    }
}
