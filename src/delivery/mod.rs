//! Delivery: routing, MX resolution, outbound sessions and outcomes.

mod nexthop;

pub use nexthop::{parse_nameserver, NextHop};
