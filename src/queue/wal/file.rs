//! A segment file open for appending, on the shard's own back end: on io_uring the
//! writes and the fdatasync are submissions on the shard's ring; on epoll (no
//! async files) they run on tokio's blocking pool, one call per batch.

use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

pub enum WalFile {
    Uring(tokio_uring::fs::File),
    Std(Arc<std::fs::File>),
}

impl WalFile {
    pub fn open(path: &Path) -> io::Result<WalFile> {
        let std = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)?;
        Ok(match crate::net::current() {
            crate::net::Backend::Uring => WalFile::Uring(tokio_uring::fs::File::from_std(std)),
            crate::net::Backend::Epoll => WalFile::Std(Arc::new(std)),
        })
    }

    /// Write `buf[range]` at `pos`; the buffer comes back for reuse.
    pub async fn write_at(
        &self,
        buf: Vec<u8>,
        range: std::ops::Range<usize>,
        pos: u64,
    ) -> (io::Result<()>, Vec<u8>) {
        match self {
            WalFile::Uring(f) => {
                use tokio_uring::buf::BoundedBuf;
                let (r, slice) = f.write_all_at(buf.slice(range), pos).await;
                (r, slice.into_inner())
            }
            WalFile::Std(f) => {
                let f = f.clone();
                let joined = tokio::task::spawn_blocking(move || {
                    let r = f.write_all_at(&buf[range], pos);
                    (r, buf)
                })
                .await;
                match joined {
                    Ok(done) => done,
                    Err(e) => (Err(io::Error::other(e.to_string())), Vec::new()),
                }
            }
        }
    }

    pub async fn sync_data(&self) -> io::Result<()> {
        match self {
            WalFile::Uring(f) => f.sync_data().await,
            WalFile::Std(f) => {
                let f = f.clone();
                tokio::task::spawn_blocking(move || f.sync_data())
                    .await
                    .map_err(|e| io::Error::other(e.to_string()))?
            }
        }
    }
}
