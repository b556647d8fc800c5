//! The I/O boundary. Everything above this module (the inbound driver, the outbound
//! client, check-tls) talks to a [`Transport`] over a [`Stream`] it got from a
//! [`Listener`] or from [`Stream::connect`], and never learns which back end runs:
//!
//! - io_uring (tokio-uring): completion-based, owned buffers handed to the kernel;
//! - epoll (a tokio current-thread runtime): readiness-based, for hosts where io_uring
//!   is blocked (Docker's default seccomp profile, RHEL 9, `kernel.io_uring_disabled`).
//!
//! Both are two variants of the same enums, side by side in `stream.rs` and
//! `listener.rs`; `backend.rs` decides which one a thread runs and starts its runtime.

mod backend;
mod listener;
mod stream;
mod transport;

pub use backend::{choose, current, probe_uring, run, Backend};
pub use listener::{bind_all, Listener};
pub use stream::Stream;
pub use transport::{Transport, WriteOutcome};
