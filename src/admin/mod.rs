//! The admin HTTP API on loopback: queue listing and operations for `mxring queue`.
//! Reads go straight to the shards' sled trees (sled is safe to read from any
//! thread); operations are sent to the owning shard, which alone mutates its slice.

mod client;
mod metrics;
mod server;
mod views;

pub use client::AdminClient;
pub use server::{AdminServer, ShardHandle};
pub use views::{MessageView, RecipientView};
