//! Process limits: enough file descriptors for the connections asked for, and the
//! process's own thread count (reported, so the thread budget can be checked).

/// Raises the open-files limit (RLIMIT_NOFILE) so `wanted` descriptors fit, up to the
/// hard limit (and past it when allowed to raise that, e.g. as root). Returns the soft
/// limit now in force.
pub fn raise_nofile(wanted: u64) -> Result<u64, String> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(format!(
            "reading the open-files limit: {}",
            std::io::Error::last_os_error()
        ));
    }
    if lim.rlim_cur >= wanted {
        return Ok(lim.rlim_cur);
    }
    let raised = libc::rlimit {
        rlim_cur: wanted,
        rlim_max: lim.rlim_max.max(wanted),
    };
    // SAFETY: setrlimit reads a struct we own.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
        return Ok(wanted);
    }
    // Not allowed past the hard limit: take all of it, and say so if it is too little.
    let capped = libc::rlimit {
        rlim_cur: lim.rlim_max,
        rlim_max: lim.rlim_max,
    };
    // SAFETY: as above.
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &capped) };
    Err(format!(
        "{wanted} open files are needed, but the hard limit is {} and this process may \
         not raise it (that takes CAP_SYS_RESOURCE); raise it with `ulimit -Hn` before \
         the run, or ask for fewer connections",
        lim.rlim_max
    ))
}

/// Raises the soft open-files limit to the hard one; returns the limit now in force.
pub fn nofile_to_hard() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write a struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
            return lim.rlim_max;
        }
    }
    lim.rlim_cur
}

/// Descriptors needed beyond one per connection: std streams, listeners, the runtime's
/// event and wake-up descriptors per thread, TLS key files.
pub fn headroom(threads: u32) -> u64 {
    64 + 4 * u64::from(threads)
}

/// Threads of this process right now (Linux: /proc/self/status).
pub fn thread_count() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
}

/// One thread per CPU core, the default for --threads.
pub fn default_threads() -> u32 {
    std::thread::available_parallelism()
        .map(|n| n.get() as u32)
        .unwrap_or(1)
}
