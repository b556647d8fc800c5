//! Which I/O back end a thread runs, how it is chosen at start, and how its runtime
//! is started. A shard thread runs exactly one back end for its whole life.

use std::cell::Cell;
use std::future::Future;
use std::io;

use crate::config::IoChoice;

/// The back end that drives sockets (and spill files) on a thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// tokio-uring: io_uring submissions and completions.
    Uring,
    /// A tokio current-thread runtime: epoll readiness and non-blocking syscalls.
    Epoll,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Uring => "io_uring",
            Backend::Epoll => "epoll",
        }
    }
}

thread_local! {
    static CURRENT: Cell<Backend> = const { Cell::new(Backend::Epoll) };
}

/// The back end of this thread's runtime (epoll outside [`run`]: a tokio socket
/// works in both runtimes, since tokio-uring runs on a tokio runtime with I/O on).
pub fn current() -> Backend {
    CURRENT.with(|c| c.get())
}

/// Run `fut` to completion on a new runtime of `backend` on this thread, with a
/// LocalSet, so `tokio::task::spawn_local` works on both.
pub fn run<F: Future>(backend: Backend, fut: F) -> io::Result<F::Output> {
    CURRENT.with(|c| c.set(backend));
    match backend {
        Backend::Uring => {
            let rt = tokio_uring::Runtime::new(&tokio_uring::builder())?;
            Ok(rt.block_on(fut))
        }
        Backend::Epoll => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let local = tokio::task::LocalSet::new();
            Ok(local.block_on(&rt, fut))
        }
    }
}

/// Can this process use io_uring? Sets up a small ring and runs one no-op through
/// it, which is what a seccomp filter, `kernel.io_uring_disabled` or an old kernel
/// refuses. The error says which step failed and the kernel's reason.
pub fn probe_uring() -> Result<(), String> {
    let mut ring =
        io_uring::IoUring::new(2).map_err(|e| format!("setting up an io_uring failed: {e}"))?;
    let nop = io_uring::opcode::Nop::new().build().user_data(1);
    // SAFETY: a no-op refers to no memory.
    unsafe { ring.submission().push(&nop) }
        .map_err(|_| "the io_uring submission queue is full".to_string())?;
    ring.submit_and_wait(1)
        .map_err(|e| format!("submitting to an io_uring failed: {e}"))?;
    let cqe = ring
        .completion()
        .next()
        .ok_or_else(|| "an io_uring no-op did not complete".to_string())?;
    if cqe.result() < 0 {
        let e = io::Error::from_raw_os_error(-cqe.result());
        return Err(format!("an io_uring no-op failed: {e}"));
    }
    Ok(())
}

/// The environment variable that overrides `[server] io` (for tests and CI).
pub const ENV: &str = "MXRING_IO";

/// Decide the back end from `[server] io`, or `MXRING_IO` when set. `auto` probes
/// io_uring and falls back to epoll with one warning; `uring` refuses to start when
/// io_uring is unavailable.
pub fn choose(configured: IoChoice) -> Result<Backend, String> {
    let (choice, source) = match std::env::var(ENV) {
        Ok(v) if !v.is_empty() => match IoChoice::parse(&v) {
            Some(c) => (c, format!("{ENV}={v}")),
            None => {
                return Err(format!(
                    "{ENV} is \"{v}\"; it must be \"auto\", \"uring\" or \"epoll\""
                ))
            }
        },
        _ => (
            configured,
            format!("[server] io = \"{}\"", configured.name()),
        ),
    };
    match choice {
        IoChoice::Epoll => Ok(Backend::Epoll),
        IoChoice::Uring => match probe_uring() {
            Ok(()) => Ok(Backend::Uring),
            Err(why) => Err(format!(
                "io_uring is unavailable ({why}), and {source} asks for it; \
                 allow io_uring (for Docker: a seccomp profile that permits io_uring_setup, \
                 io_uring_enter and io_uring_register) or set io = \"auto\" or \"epoll\""
            )),
        },
        IoChoice::Auto => match probe_uring() {
            Ok(()) => Ok(Backend::Uring),
            Err(why) => {
                tracing::warn!(
                    reason = %why,
                    "io_uring is unavailable, so mxring runs on epoll ({source}); \
                     set io = \"epoll\" to silence this, or allow io_uring to use it"
                );
                Ok(Backend::Epoll)
            }
        },
    }
}
