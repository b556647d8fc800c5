//! A bounded poll: for the conditions no event announces (the queue drained, a
//! connection closed, a file appeared), check again every few milliseconds until a
//! deadline, and fail with a sentence saying what did not happen.

use std::time::{Duration, Instant};

/// How often a condition is checked again.
const EVERY: Duration = Duration::from_millis(20);

/// A condition that did not hold in time.
pub struct TimedOut {
    pub what: String,
    pub after: Duration,
}

impl std::fmt::Display for TimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (still not after {:?})", self.what, self.after)
    }
}

// `expect` and `unwrap` print Debug: make that the sentence too.
impl std::fmt::Debug for TimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for TimedOut {}

/// Check `cond` until it holds or `limit` has passed (it is checked once more at
/// the deadline). `what` names the condition for the error.
pub fn wait_until(
    limit: Duration,
    what: &str,
    mut cond: impl FnMut() -> bool,
) -> Result<(), TimedOut> {
    wait_for(limit, what, || cond().then_some(()))
}

/// As `wait_until`, for a probe that yields a value once the condition holds.
pub fn wait_for<T>(
    limit: Duration,
    what: &str,
    mut probe: impl FnMut() -> Option<T>,
) -> Result<T, TimedOut> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = probe() {
            return Ok(v);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(TimedOut {
                what: what.to_string(),
                after: limit,
            });
        }
        std::thread::sleep(left.min(EVERY));
    }
}

/// Probe until `ok` holds of the reading or `limit` has passed, and return the
/// last reading either way: for tests that assert on (and print) the value.
pub fn settle<T>(limit: Duration, mut probe: impl FnMut() -> T, ok: impl Fn(&T) -> bool) -> T {
    let mut last = None;
    let held = wait_until(limit, "", || {
        let v = probe();
        let done = ok(&v);
        last = Some(v);
        done
    });
    let _ = held;
    last.expect("probed at least once")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_condition_that_holds_returns_at_once() {
        let t = Instant::now();
        wait_until(Duration::from_secs(5), "true", || true).unwrap();
        assert!(t.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn a_probe_yields_its_value_when_it_comes() {
        let mut n = 0;
        let v = wait_for(Duration::from_secs(5), "the third try", || {
            n += 1;
            (n == 3).then_some(n)
        });
        assert_eq!(v.unwrap(), 3);
    }

    #[test]
    fn settle_returns_the_last_reading_held_or_not() {
        let mut n = 0;
        assert_eq!(
            settle(
                Duration::from_secs(5),
                || {
                    n += 1;
                    n
                },
                |&n| n == 4
            ),
            4
        );
        assert_eq!(settle(Duration::from_millis(30), || 7, |&n| n == 0), 7);
    }

    #[test]
    fn a_condition_that_never_holds_says_what_it_waited_for() {
        let e =
            wait_until(Duration::from_millis(50), "the moon turned blue", || false).unwrap_err();
        assert_eq!(e.after, Duration::from_millis(50));
        assert!(e.to_string().starts_with("the moon turned blue"), "{e}");
    }
}
