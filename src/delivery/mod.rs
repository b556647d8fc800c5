//! Delivery: routing, MX resolution, connection reuse, outbound sessions, outcome
//! classification, retries and DSNs.

mod attempt;
mod dane_lookup;
mod dns;
mod engine;
mod nexthop;
mod notify;
pub mod observe;
pub mod outbound;
pub mod outcome;
mod pool;
mod scheduler;
mod stub;
mod tls_report;
mod txt_lookup;
mod unreachable;
mod unsaved;

pub use dns::{Addresses, Dns, DnsFailure, MxAnswer, MxHost};
pub use engine::{admin_request, recover, run};
pub use nexthop::{parse_nameserver, NextHop};
pub use scheduler::{now_ms, Scheduler};
pub use unreachable::Unreachable;
