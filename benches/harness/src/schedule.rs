//! When each connection sends (open loop): a fixed total rate or a linear ramp, spread
//! evenly over the connections. Closed loop has no schedule: a connection sends as
//! soon as its previous message was answered.

use std::time::{Duration, Instant};

use crate::cli::Ramp;

#[derive(Clone, Copy, Debug)]
pub enum Offered {
    Fixed(f64),
    /// Rises linearly over the ramp's duration, then holds its end rate.
    Ramp(Ramp),
}

impl Offered {
    /// The total offered rate (messages/s) at `t` into the run.
    pub fn rate_at(&self, t: Duration) -> f64 {
        match *self {
            Offered::Fixed(r) => r,
            Offered::Ramp(r) => {
                let f = (t.as_secs_f64() / r.over.as_secs_f64()).min(1.0);
                r.start + (r.end - r.start) * f
            }
        }
    }
}

/// The send schedule of one connection. A slow reply does not slow the schedule down:
/// a connection never has more than one transaction in flight, so one that fell behind
/// sends its overdue messages back to back, each timed from its own slot (the queue a
/// real sender would build up; no coordinated omission).
pub struct Pacer {
    offered: Offered,
    start: Instant,
    connections: f64,
    next: Instant,
}

impl Pacer {
    pub fn new(offered: Offered, start: Instant, id: u32, connections: u32) -> Pacer {
        let connections = f64::from(connections.max(1));
        let first_gap = Duration::from_secs_f64(connections / offered.rate_at(Duration::ZERO));
        // Connections start staggered over one interval, so the offered load is even
        // rather than arriving in bursts of one message per connection.
        let offset = first_gap.mul_f64(f64::from(id) / connections);
        Pacer {
            offered,
            start,
            connections,
            next: start + offset,
        }
    }

    /// The next slot's time, without consuming it.
    pub fn next(&self) -> Instant {
        self.next
    }

    fn gap_at(&self, at: Instant) -> Duration {
        let rate = self
            .offered
            .rate_at(at.saturating_duration_since(self.start));
        Duration::from_secs_f64(self.connections / rate)
    }

    /// Takes the slot returned by `next`.
    pub fn advance(&mut self) {
        self.next += self.gap_at(self.next);
    }

    /// Slots due before `end` that are still waiting at `now`.
    pub fn overdue(&self, now: Instant, end: Instant) -> u64 {
        let mut n = 0;
        let mut at = self.next;
        let until = now.min(end);
        while at < until {
            n += 1;
            at += self.gap_at(at);
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ramp_rises_then_holds() {
        let r = Offered::Ramp(Ramp {
            start: 100.0,
            end: 1100.0,
            over: Duration::from_secs(10),
        });
        assert_eq!(r.rate_at(Duration::ZERO), 100.0);
        assert_eq!(r.rate_at(Duration::from_secs(5)), 600.0);
        assert_eq!(r.rate_at(Duration::from_secs(60)), 1100.0);
    }

    #[test]
    fn slots_are_staggered_and_kept_when_late() {
        let t0 = Instant::now();
        // 10 msg/s over 2 connections: each sends every 200 ms, the second 100 ms later.
        let a = Pacer::new(Offered::Fixed(10.0), t0, 0, 2);
        let mut b = Pacer::new(Offered::Fixed(10.0), t0, 1, 2);
        assert_eq!(a.next(), t0);
        assert_eq!(b.next(), t0 + Duration::from_millis(100));
        b.advance();
        assert_eq!(b.next(), t0 + Duration::from_millis(300));
        // A second late: the slots at 300, 500, 700, 900 and 1100 ms are still owed.
        let late = t0 + Duration::from_millis(1250);
        assert_eq!(b.overdue(late, t0 + Duration::from_secs(60)), 5);
        // Only those due before the end of the run count.
        assert_eq!(b.overdue(late, t0 + Duration::from_millis(600)), 2);
    }
}
