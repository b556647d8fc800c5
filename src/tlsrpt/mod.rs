//! SMTP TLS reporting (RFC 8460), the sending side: each TLS session delivery
//! makes (or fails to make) is counted per policy domain and report period in
//! the shard's store (`counters`), and after each period the domains that ask
//! for reports in their `_smtp._tls` TXT record get one by mail or HTTPS
//! (`delivery::tls_report_send`, which queues the mail), as the RFC's JSON,
//! gzipped (`report`).

pub mod counters;
pub mod https;
pub mod report;

pub use counters::{Counters, PeriodCounts, SessionRecord};
pub use report::{classify, parse_rua, Rua};
