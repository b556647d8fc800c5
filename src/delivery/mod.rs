//! Delivery: routing, MX resolution, outbound sessions and outcomes.

mod engine;
mod nexthop;
mod scheduler;

pub use engine::{admin_request, recover, run};
pub use nexthop::{parse_nameserver, NextHop};
pub use scheduler::Scheduler;
