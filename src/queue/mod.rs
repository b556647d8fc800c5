//! The durable queue: message records with per-recipient status, a write-ahead
//! log per shard with sled as its index, behind a narrow interface.

mod aux;
pub mod clock;
mod commit;
mod compact;
pub mod id;
mod index;
mod migrate;
pub mod record;
mod recover;
pub mod space;
pub mod stats;
pub mod status;
mod status_dsn;
mod status_labels;
mod store;
pub mod v1;
pub mod wal;

#[cfg(test)]
mod v1_tests;

pub use aux::AuxTree;
pub use id::{format_id, parse_id, IdSource};
pub use record::{QueuedMessage, QueuedRcpt};
pub use status::{Failure, Status};
pub use store::{QueueView, ShardQueue, Spool, StoreOptions};
pub use wal::Durable;

/// Storage failures. `NoSpace` is told apart so clients get 452 4.3.1.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("no space left on the spool device")]
    NoSpace,
    #[error("spool I/O error: {0}")]
    Io(String),
    #[error("spool {0} is in use by another mxring (the server holds its lock)")]
    Locked(String),
    #[error("corrupt queue record: {0}")]
    Corrupt(String),
    #[error("the spool is closed")]
    Closed,
    /// The spool's format is not one this build reads.
    #[error("{0}")]
    Format(String),
}

impl From<std::io::Error> for StoreError {
    fn from(e: std::io::Error) -> Self {
        if e.raw_os_error() == Some(libc::ENOSPC) || e.kind() == std::io::ErrorKind::StorageFull {
            StoreError::NoSpace
        } else {
            StoreError::Io(e.to_string())
        }
    }
}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        match e {
            sled::Error::Io(io) => io.into(),
            other => StoreError::Io(other.to_string()),
        }
    }
}

impl StoreError {
    pub fn to_failure(&self) -> crate::proto::StoreFailure {
        match self {
            StoreError::NoSpace => crate::proto::StoreFailure::NoSpace,
            _ => crate::proto::StoreFailure::Io,
        }
    }
}
