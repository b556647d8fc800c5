//! mxring: an edge mail transfer agent. Thread-per-core shards on io_uring, a
//! sans-IO SMTP core, mandatory-TLS policy, and a durable sled queue.

pub mod admin;
pub mod auth;
pub mod checktls;
pub mod config;
pub mod dane;
pub mod delivery;
pub mod dns;
pub mod dsn;
pub mod metrics;
pub mod mta_sts;
pub mod net;
pub mod policy;
pub mod proto;
pub mod queue;
pub mod shard;
pub mod timer;
pub mod tls;
pub mod tlsrpt;
