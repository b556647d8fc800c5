//! A per-shard hierarchical timing wheel.
//!
//! The queue keeps wall-clock next-attempt times, so time is plain `u64`
//! milliseconds since the Unix epoch, passed in by the caller: the wheel owns
//! no clock and no runtime, and a day-long schedule is tested in microseconds.
//! Each shard owns its own wheel, so nothing here is shared or locked.

mod advance;
mod level;
mod slot;
mod wheel;

#[cfg(test)]
mod tests;

pub use advance::Advance;
pub use wheel::TimerWheel;
