//! Per-client-address limits on open connections and on the connection rate
//! (a token bucket), kept per shard: no lock, no cross-core traffic.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Instant;

struct PerIp {
    open: usize,
    tokens: f64,
    refilled: Instant,
}

pub struct IpLimits {
    map: HashMap<IpAddr, PerIp>,
    max_open: usize,
    per_minute: u32,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    TooManyOpen,
    TooFast,
}

impl Refusal {
    /// For the log: which of the operator's limits the address reached.
    pub fn describe(&self) -> &'static str {
        match self {
            Refusal::TooManyOpen => "max_connections_per_ip reached",
            Refusal::TooFast => "connection_rate_per_ip reached",
        }
    }
}

impl IpLimits {
    /// `shards` divides the configured limits: each shard enforces its share.
    pub fn new(max_open: usize, per_minute: u32, shards: usize) -> Self {
        let share = |n: usize| if n == 0 { 0 } else { n.div_ceil(shards.max(1)) };
        IpLimits {
            map: HashMap::new(),
            max_open: share(max_open),
            per_minute: share(per_minute as usize) as u32,
        }
    }

    /// Admit a new connection from `ip` at `now`, or say why not.
    pub fn admit(&mut self, ip: IpAddr, now: Instant) -> Result<(), Refusal> {
        let burst = self.per_minute as f64;
        let e = self.map.entry(ip).or_insert(PerIp {
            open: 0,
            tokens: burst,
            refilled: now,
        });
        if self.max_open > 0 && e.open >= self.max_open {
            return Err(Refusal::TooManyOpen);
        }
        if self.per_minute > 0 {
            let elapsed = now.saturating_duration_since(e.refilled).as_secs_f64();
            e.tokens = (e.tokens + elapsed * burst / 60.0).min(burst);
            e.refilled = now;
            if e.tokens < 1.0 {
                return Err(Refusal::TooFast);
            }
            e.tokens -= 1.0;
        }
        e.open += 1;
        Ok(())
    }

    pub fn release(&mut self, ip: IpAddr) {
        if let Some(e) = self.map.get_mut(&ip) {
            e.open = e.open.saturating_sub(1);
            // Forget idle addresses once their bucket is full again.
            if e.open == 0 && (self.per_minute == 0 || e.tokens >= self.per_minute as f64) {
                self.map.remove(&ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn open_connection_cap_and_release() {
        let mut l = IpLimits::new(2, 0, 1);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let now = Instant::now();
        assert_eq!(l.admit(ip, now), Ok(()));
        assert_eq!(l.admit(ip, now), Ok(()));
        assert_eq!(l.admit(ip, now), Err(Refusal::TooManyOpen));
        assert_eq!(l.admit("192.0.2.2".parse().unwrap(), now), Ok(()));
        l.release(ip);
        assert_eq!(l.admit(ip, now), Ok(()));
    }

    #[test]
    fn rate_bucket_refills_over_time() {
        let mut l = IpLimits::new(0, 60, 1);
        let ip: IpAddr = "2001:db8::1".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..60 {
            assert_eq!(l.admit(ip, t0), Ok(()));
            l.release(ip);
        }
        assert_eq!(l.admit(ip, t0), Err(Refusal::TooFast));
        assert_eq!(l.admit(ip, t0 + Duration::from_secs(1)), Ok(()));
    }

    #[test]
    fn limits_are_shared_out_over_shards() {
        let l = IpLimits::new(100, 600, 2);
        assert_eq!((l.max_open, l.per_minute), (50, 300));
    }
}
