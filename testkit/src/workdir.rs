//! A temp dir for a test's spool and logs, kept when the test fails.

use std::path::{Path, PathBuf};

/// A temp dir for the spool and mxring's logs. Removed when the test passes, kept
/// (and its path printed) when it fails, so the logs can be read afterwards.
pub struct Workdir {
    dir: Option<tempfile::TempDir>,
    label: String,
}

impl Workdir {
    pub fn new(label: &str) -> Workdir {
        let dir = tempfile::Builder::new()
            .prefix(&format!("mxring-{label}-"))
            .tempdir()
            .unwrap();
        Workdir {
            dir: Some(dir),
            label: label.to_string(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.as_ref().unwrap().path()
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.path().join(name)
    }
}

impl Drop for Workdir {
    /// Also kept when `MXRING_CRASH_KEEP` is set, to read the logs of a good run.
    fn drop(&mut self) {
        let failed = std::thread::panicking();
        if failed || std::env::var_os("MXRING_CRASH_KEEP").is_some() {
            if let Some(d) = self.dir.take() {
                let kept = d.keep();
                eprintln!(
                    "{}: {}; spool and mxring logs kept in {}",
                    self.label,
                    if failed {
                        "test failed"
                    } else {
                        "MXRING_CRASH_KEEP set"
                    },
                    kept.display()
                );
            }
        }
    }
}
