//! What one shard's delivery role owns and reads: its share of the queue, the
//! scheduler, the addresses it holds back, and the settings of the moment. The
//! shard builds it and hands the same queue, id source and scheduler to its
//! inbound role; nothing here knows about listeners or sessions.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use super::{Scheduler, Unreachable};
use crate::config::Config;
use crate::policy::Policy;
use crate::queue::IdSource;
use crate::queue::ShardQueue;

/// The settings delivery works by; SIGHUP replaces them as a whole.
#[derive(Clone)]
pub struct DeliverySettings {
    pub config: Arc<Config>,
    pub policy: Arc<Policy>,
}

pub struct DeliveryCtx {
    pub shard: usize,
    pub queue: Rc<ShardQueue>,
    pub ids: IdSource,
    pub scheduler: Rc<Scheduler>,
    /// Addresses whose connect failed lately (`[outbound] unreachable_hold`).
    pub unreachable: Rc<Unreachable>,
    pub shutdown: tokio::sync::watch::Receiver<bool>,
    settings: RefCell<DeliverySettings>,
}

impl DeliveryCtx {
    pub fn new(
        shard: usize,
        queue: Rc<ShardQueue>,
        ids: IdSource,
        scheduler: Rc<Scheduler>,
        shutdown: tokio::sync::watch::Receiver<bool>,
        settings: DeliverySettings,
    ) -> DeliveryCtx {
        DeliveryCtx {
            shard,
            queue,
            ids,
            scheduler,
            unreachable: Rc::default(),
            shutdown,
            settings: RefCell::new(settings),
        }
    }

    /// The settings of this moment. Each reader takes them once at its start (an
    /// attempt, a pass of the delivery loop, an operator action, a report period)
    /// and keeps them to its end, so one piece of work never mixes two configs.
    pub fn settings(&self) -> DeliverySettings {
        self.settings.borrow().clone()
    }

    pub fn replace_settings(&self, settings: DeliverySettings) {
        *self.settings.borrow_mut() = settings;
    }
}
