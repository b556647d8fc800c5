//! Outbound connection reuse and per-next-hop concurrency. An idle connection is
//! reused only for the same address under the same TLS plan, so one recipient's
//! policy never rides on a connection made under another's.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::outbound::{OutboundConn, TlsPlan};

type Key = (SocketAddr, TlsPlan);

pub struct Pool {
    idle: RefCell<HashMap<Key, Vec<(OutboundConn, Instant)>>>,
    limits: RefCell<HashMap<SocketAddr, Arc<Semaphore>>>,
    per_host: usize,
}

impl Pool {
    pub fn new(per_host: usize) -> Self {
        Pool {
            idle: RefCell::new(HashMap::new()),
            limits: RefCell::new(HashMap::new()),
            per_host: per_host.max(1),
        }
    }

    /// Wait for a slot at `addr` (the per-next-hop concurrency cap).
    pub async fn slot(&self, addr: SocketAddr) -> OwnedSemaphorePermit {
        let sem = self
            .limits
            .borrow_mut()
            .entry(addr)
            .or_insert_with(|| Arc::new(Semaphore::new(self.per_host)))
            .clone();
        sem.acquire_owned().await.expect("semaphore never closed")
    }

    pub fn checkout(
        &self,
        addr: SocketAddr,
        plan: &TlsPlan,
        max_idle: Duration,
    ) -> Option<OutboundConn> {
        let mut idle = self.idle.borrow_mut();
        let list = idle.get_mut(&(addr, plan.clone()))?;
        while let Some((conn, since)) = list.pop() {
            if since.elapsed() < max_idle {
                return Some(conn);
            }
            tokio::task::spawn_local(conn.quit());
        }
        None
    }

    pub fn checkin(&self, plan: TlsPlan, conn: OutboundConn) {
        self.idle
            .borrow_mut()
            .entry((conn.peer, plan))
            .or_default()
            .push((conn, Instant::now()));
    }

    /// Close connections idle longer than `max_idle`. Returns how many stay open.
    pub fn sweep(&self, max_idle: Duration) -> usize {
        let mut idle = self.idle.borrow_mut();
        let mut left = 0;
        for list in idle.values_mut() {
            let (keep, old): (Vec<_>, Vec<_>) = list
                .drain(..)
                .partition(|(_, since)| since.elapsed() < max_idle);
            for (conn, _) in old {
                tokio::task::spawn_local(conn.quit());
            }
            left += keep.len();
            *list = keep;
        }
        idle.retain(|_, l| !l.is_empty());
        left
    }

    /// Close everything (shutdown).
    pub fn close_all(&self) {
        for (_, list) in self.idle.borrow_mut().drain() {
            for (conn, _) in list {
                tokio::task::spawn_local(conn.quit());
            }
        }
    }
}
