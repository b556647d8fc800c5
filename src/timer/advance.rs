use std::time::Duration;

/// What [`TimerWheel::advance`](super::TimerWheel::advance) found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advance<T> {
    /// Ids whose due time is at or before the new time, earliest first; ties
    /// in the order they were (last) inserted.
    pub due: Vec<T>,
    /// How long until the next scheduled id is due; `None` when nothing is
    /// scheduled. Never zero: anything due now is already in `due`.
    pub sleep: Option<Duration>,
}
