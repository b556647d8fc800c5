//! Test support shared by mxring's integration tests (tests/), the bench harness's
//! tests and the fuzz targets: real loopback servers and clients, no mocks.
//!
//! - [`server::TestServer`]: mxring in-process on loopback with a temp spool;
//!   [`process::Mx`]: the real binary as a child, started when its log says so.
//! - [`sink::Sink`]: the receiving SMTP server (the next hop); [`lenient`]: one
//!   that splits lines the lenient way, for smuggling tests.
//! - [`client::Client`]: a blocking SMTP client with rustls, panicking or
//!   fallible (where a broken connection is an outcome).
//! - [`dns_server`], [`ca`], [`https`]: the DNS, PKI and HTTPS around delivery.
//! - [`config::Toml`]: the one config template; [`poll`]: bounded waits;
//!   [`ports`], [`rng`], [`workdir`]: free ports, a seeded PRNG, a temp dir kept
//!   when a test fails.

pub mod bench;
pub mod ca;
pub mod client;
pub mod config;
pub mod dns_server;
pub mod https;
pub mod lenient;
pub mod poll;
pub mod ports;
pub mod process;
pub mod rng;
pub mod seccomp;
pub mod server;
pub mod sink;
pub mod workdir;

pub use client::fnv1a;
pub use config::{loopback, Toml};
pub use poll::{settle, wait_for, wait_until};
pub use ports::{closed_port, free_port};
pub use process::grep_logs;
pub use rng::Rng;
pub use server::{route_all, TestServer};
pub use workdir::Workdir;
