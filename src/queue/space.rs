//! Free space on the spool's file system. mxring refuses new mail (452 4.3.1) while
//! less than `queue.min_free_space` is left, so the store itself never runs into a
//! full disk: sled 0.34 does not recover from ENOSPC without a restart.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

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

#[cfg(test)]
mod tests {
    #[test]
    fn reports_some_space_for_the_temp_dir() {
        let d = tempfile::tempdir().unwrap();
        assert!(super::available_bytes(d.path()).unwrap() > 0);
        assert!(super::available_bytes(std::path::Path::new("/no/such/dir")).is_err());
    }
}
