//! Brute-force lockout: after `max_failures` failed AUTHs from one client address
//! within `window`, that address is refused (454 4.7.0) without a password check
//! for one more `window`, counted from the failure that locked it. Time comes in as an
//! argument, so tests use a short window or a made-up clock.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Addresses tracked at most; past this, the oldest windows are dropped first, so
/// a flood of distinct addresses cannot grow memory without bound.
const MAX_TRACKED: usize = 100_000;

#[derive(Debug)]
pub struct Lockout {
    max_failures: u32,
    window: Duration,
    failures: HashMap<IpAddr, Failures>,
}

#[derive(Debug)]
struct Failures {
    count: u32,
    /// The first failure counted in this window.
    first: Instant,
    /// When the address was locked out.
    locked: Option<Instant>,
}

impl Lockout {
    pub fn new(max_failures: u32, window: Duration) -> Lockout {
        Lockout {
            max_failures,
            window,
            failures: HashMap::new(),
        }
    }

    /// New limits (SIGHUP); the counts so far are kept.
    pub fn set_limits(&mut self, max_failures: u32, window: Duration) {
        self.max_failures = max_failures;
        self.window = window;
    }

    /// Whether `ip` is locked out now.
    pub fn is_locked(&mut self, ip: IpAddr, now: Instant) -> bool {
        if self.max_failures == 0 {
            return false;
        }
        let Some(f) = self.failures.get(&ip) else {
            return false;
        };
        let since = f.locked.unwrap_or(f.first);
        if now.duration_since(since) < self.window {
            return f.locked.is_some() || f.count >= self.max_failures;
        }
        self.failures.remove(&ip);
        false
    }

    /// Count a failed AUTH from `ip`.
    pub fn failed(&mut self, ip: IpAddr, now: Instant) {
        if self.failures.len() >= MAX_TRACKED && !self.failures.contains_key(&ip) {
            let window = self.window;
            self.failures
                .retain(|_, f| now.duration_since(f.locked.unwrap_or(f.first)) < window);
            if self.failures.len() >= MAX_TRACKED {
                if let Some(oldest) = self
                    .failures
                    .iter()
                    .min_by_key(|(_, f)| f.first)
                    .map(|(ip, _)| *ip)
                {
                    self.failures.remove(&oldest);
                }
            }
        }
        let fresh = Failures {
            count: 0,
            first: now,
            locked: None,
        };
        let f = self.failures.entry(ip).or_insert(fresh);
        if f.locked.is_none() && now.duration_since(f.first) >= self.window {
            f.count = 0;
            f.first = now;
        }
        f.count += 1;
        if self.max_failures > 0 && f.count >= self.max_failures && f.locked.is_none() {
            f.locked = Some(now);
        }
    }

    /// A successful AUTH clears the address's count.
    pub fn succeeded(&mut self, ip: IpAddr) {
        self.failures.remove(&ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_after_max_failures_until_the_window_passes() {
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let other: IpAddr = "192.0.2.8".parse().unwrap();
        let t0 = Instant::now();
        let mut l = Lockout::new(5, Duration::from_secs(600));
        for i in 0..4 {
            l.failed(ip, t0 + Duration::from_secs(i));
            assert!(!l.is_locked(ip, t0 + Duration::from_secs(i)));
        }
        l.failed(ip, t0 + Duration::from_secs(4));
        assert!(l.is_locked(ip, t0 + Duration::from_secs(5)));
        assert!(!l.is_locked(other, t0 + Duration::from_secs(5)));
        // Locked for a whole window from the fifth failure.
        assert!(l.is_locked(ip, t0 + Duration::from_secs(603)));
        assert!(!l.is_locked(ip, t0 + Duration::from_secs(604)));
        // A new window starts from scratch.
        l.failed(ip, t0 + Duration::from_secs(605));
        assert!(!l.is_locked(ip, t0 + Duration::from_secs(606)));
        // Failures spread wider than the window never lock.
        for i in 0..10 {
            l.failed(other, t0 + Duration::from_secs(i * 200));
            assert!(!l.is_locked(other, t0 + Duration::from_secs(i * 200)));
        }
    }

    #[test]
    fn success_clears_and_zero_disables() {
        let ip: IpAddr = "2001:db8::1".parse().unwrap();
        let t0 = Instant::now();
        let mut l = Lockout::new(2, Duration::from_secs(60));
        l.failed(ip, t0);
        l.succeeded(ip);
        l.failed(ip, t0);
        assert!(!l.is_locked(ip, t0));
        l.failed(ip, t0);
        assert!(l.is_locked(ip, t0));
        let mut off = Lockout::new(0, Duration::from_secs(60));
        for _ in 0..10 {
            off.failed(ip, t0);
        }
        assert!(!off.is_locked(ip, t0));
    }
}
