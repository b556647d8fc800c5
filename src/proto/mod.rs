//! Sans-IO SMTP: command parser, replies, addresses, DATA decoding, and the server
//! and client session state machines. No runtime, no sockets, no clock.

// Everything here reads bytes a remote host chose: it must not be able to panic,
// so indexing and slicing (of bytes or of text), unwraps and panics are refused
// outright (tests excepted).
#![cfg_attr(
    not(test),
    deny(
        clippy::indexing_slicing,
        clippy::string_slice,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::unreachable
    )
)]

pub mod address;
pub mod auth;
pub mod client;
pub mod command;
pub mod content;
pub mod data;
pub mod encode;
pub mod enhanced;
pub mod envelope;
pub mod notify;
pub mod params;
pub mod proxy;
pub mod received;
pub mod reply;
pub mod requiretls;
pub mod server;

pub use enhanced::Enhanced;
pub use envelope::{Envelope, Recipient, TlsFacts};
pub use notify::NotifyFlags;
pub use server::{
    Event, Fed, Message, MessageIds, ServerSession, SessionConfig, StoreFailure, Waiting,
};
#[cfg(test)]
mod auth_tests;
#[cfg(test)]
mod client_tests;
#[cfg(test)]
mod server_tests;
