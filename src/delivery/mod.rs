//! Delivery: routing, MX resolution, connection reuse, outbound sessions, outcome
//! classification, retries and DSNs.

mod attempt;
mod ctx;
mod engine;
mod notify;
pub mod observe;
pub mod operator;
pub mod outbound;
pub mod outcome;
mod pool;
mod scheduler;
mod tls_plan;
mod tls_report;
mod tls_report_send;
mod transaction;
mod unreachable;
mod unsaved;

pub use ctx::{DeliveryCtx, DeliverySettings};
pub use engine::{recover, run};
pub use operator::operator_request;
pub use outbound::forget_client_configs;
pub use scheduler::Scheduler;
pub use unreachable::Unreachable;
