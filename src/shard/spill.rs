//! Where a message body goes while it arrives, once it is more than a little: a file
//! of its own in the spool's `incoming/` directory, so a session holds at most
//! `SPILL_AT` octets of body in memory whatever the client sends (a DATA of any
//! size, ten at once, costs a few MiB, not the size limit each). The file lives
//! until the message is in the queue or refused; dropping the spill removes it.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Body octets a session keeps in memory before it writes them out.
pub const SPILL_AT: usize = 256 * 1024;

/// The directory of spill files inside the spool.
pub fn dir(spool: &Path) -> PathBuf {
    spool.join("incoming")
}

/// Empty (and create) the spill directory: files left there by a crash hold
/// messages that never got a 250, so nobody is owed them.
pub fn reset_dir(spool: &Path) -> io::Result<()> {
    let dir = dir(spool);
    match std::fs::remove_dir_all(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    std::fs::create_dir_all(&dir)
}

static NEXT: AtomicU64 = AtomicU64::new(0);

/// The spill file on this thread's back end: written through the ring on io_uring;
/// on epoll (which has no async files) with plain positioned writes, which land in
/// the page cache (the spill is never fsynced; the queue is the durable copy).
enum SpillFile {
    Uring(tokio_uring::fs::File),
    Std(std::fs::File),
}

pub struct Spill {
    path: PathBuf,
    file: Option<SpillFile>,
    len: u64,
}

impl Spill {
    pub async fn create(spool: &Path, shard: usize) -> io::Result<Spill> {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = dir(spool).join(format!("{shard}-{n}"));
        let file = match crate::net::current() {
            crate::net::Backend::Uring => {
                SpillFile::Uring(tokio_uring::fs::File::create(&path).await?)
            }
            crate::net::Backend::Epoll => SpillFile::Std(std::fs::File::create(&path)?),
        };
        Ok(Spill {
            path,
            file: Some(file),
            len: 0,
        })
    }

    /// Append `buf`, handing it back (emptied) for reuse.
    pub async fn append(&mut self, buf: Vec<u8>) -> io::Result<Vec<u8>> {
        let file = self.file.as_ref().expect("open until dropped");
        let n = buf.len() as u64;
        let mut buf = match file {
            SpillFile::Uring(f) => {
                let (res, buf) = f.write_all_at(buf, self.len).await;
                res?;
                buf
            }
            SpillFile::Std(f) => {
                std::os::unix::fs::FileExt::write_all_at(f, &buf, self.len)?;
                buf
            }
        };
        self.len += n;
        buf.clear();
        Ok(buf)
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    /// The spilled octets, for reading back in order.
    pub fn reader(&self) -> io::Result<std::fs::File> {
        std::fs::File::open(&self.path)
    }
}

impl Drop for Spill {
    fn drop(&mut self) {
        drop(self.file.take());
        let _ = std::fs::remove_file(&self.path);
    }
}
