//! Free space on the spool's file system. mxring refuses new mail (452 4.3.1) while
//! less than `queue.min_free_space` is left, so the store itself never runs into a
//! full disk: sled 0.34 does not recover from ENOSPC without a restart.

use std::cell::Cell;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, Instant};

/// Bytes available to unprivileged writers on the file system holding `path`.
pub fn available_bytes(path: &Path) -> std::io::Result<u64> {
    let c = CString::new(path.as_os_str().as_bytes()).map_err(std::io::Error::other)?;
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `s` a writable statvfs.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut s) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(s.f_bavail as u64 * s.f_frsize as u64)
}

/// A shard's view of free space, so a busy shard does not statvfs for every message.
/// A reading is reused for a short while, less what the shard accepted since, but
/// only while the free space is far above the reserve: near it, every message looks.
pub struct SpaceGauge {
    last: Cell<Option<(Instant, u64)>>,
}

/// How long a reading is trusted, and how far above the reserve it must be.
const READING_TTL: Duration = Duration::from_millis(50);
const TRUST_MARGIN: u64 = 256 << 20;

impl Default for SpaceGauge {
    fn default() -> Self {
        SpaceGauge {
            last: Cell::new(None),
        }
    }
}

impl SpaceGauge {
    /// Whether `incoming` more bytes fit while keeping `reserve` free.
    pub fn has_room(&self, path: &Path, reserve: u64, incoming: u64) -> std::io::Result<bool> {
        let needed = reserve.saturating_add(incoming);
        if let Some((at, free)) = self.last.get() {
            if at.elapsed() < READING_TTL && free >= needed.saturating_add(TRUST_MARGIN) {
                self.last.set(Some((at, free - incoming)));
                return Ok(true);
            }
        }
        let free = available_bytes(path)?;
        self.last
            .set(Some((Instant::now(), free.saturating_sub(incoming))));
        Ok(free >= needed)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn reports_some_space_for_the_temp_dir() {
        let d = tempfile::tempdir().unwrap();
        assert!(super::available_bytes(d.path()).unwrap() > 0);
        assert!(super::available_bytes(std::path::Path::new("/no/such/dir")).is_err());
    }

    #[test]
    fn gauge_refuses_what_would_eat_into_the_reserve() {
        let d = tempfile::tempdir().unwrap();
        let free = super::available_bytes(d.path()).unwrap();
        let gauge = super::SpaceGauge::default();
        assert!(gauge.has_room(d.path(), 0, 1024).unwrap());
        // Close to the reserve the gauge looks again rather than trust its reading.
        assert!(!gauge.has_room(d.path(), free, 1 << 30).unwrap());
        assert!(!gauge.has_room(d.path(), free + (1 << 30), 0).unwrap());
        assert!(gauge.has_room(d.path(), 0, 0).unwrap());
    }
}
