//! Addresses whose TCP connect just failed (refused, timed out, no route). While one
//! is held, deliveries skip it with the error it gave instead of connecting again:
//! a dead next hop with mail arriving at thousands of messages per second must not
//! cost a connection attempt per message (Postfix's "dead destination" does the same).
//! Per shard; the hold comes from the current config, so SIGHUP changes it.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

#[derive(Default)]
pub struct Unreachable {
    failed: RefCell<HashMap<SocketAddr, (Instant, String)>>,
}

impl Unreachable {
    /// The error `addr` gave, if it failed less than `hold` ago.
    pub fn check(&self, addr: SocketAddr, hold: Duration) -> Option<String> {
        let mut failed = self.failed.borrow_mut();
        let (at, text) = failed.get(&addr)?;
        if at.elapsed() < hold {
            return Some(text.clone());
        }
        failed.remove(&addr);
        None
    }

    pub fn mark(&self, addr: SocketAddr, error: String) {
        self.failed
            .borrow_mut()
            .insert(addr, (Instant::now(), error));
    }

    /// A connection succeeded, or the operator asked for a retry now.
    pub fn forget(&self, addr: SocketAddr) {
        self.failed.borrow_mut().remove(&addr);
    }

    pub fn forget_all(&self) {
        self.failed.borrow_mut().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr() -> SocketAddr {
        "192.0.2.7:25".parse().unwrap()
    }

    #[test]
    fn a_failed_address_is_held_then_released() {
        let u = Unreachable::default();
        assert_eq!(u.check(addr(), Duration::from_secs(10)), None);
        u.mark(addr(), "connect to x: Connection refused".into());
        assert_eq!(
            u.check(addr(), Duration::from_secs(10)).as_deref(),
            Some("connect to x: Connection refused")
        );
        // A zero hold (the operator turned it off) never skips.
        assert_eq!(u.check(addr(), Duration::ZERO), None);
        assert_eq!(
            u.check(addr(), Duration::from_secs(10)),
            None,
            "expired entry removed"
        );
    }

    #[test]
    fn forgetting_releases_at_once() {
        let u = Unreachable::default();
        u.mark(addr(), "refused".into());
        u.forget(addr());
        assert_eq!(u.check(addr(), Duration::from_secs(10)), None);
        u.mark(addr(), "refused".into());
        u.forget_all();
        assert_eq!(u.check(addr(), Duration::from_secs(10)), None);
    }
}
