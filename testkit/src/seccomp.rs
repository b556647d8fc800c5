//! Block io_uring for a child process the way Docker's default seccomp profile does:
//! `io_uring_setup`, `io_uring_enter` and `io_uring_register` fail with EPERM. The
//! filter is installed in the forked child just before it execs (`pre_exec`), so
//! the test process itself keeps io_uring, and no helper binary is needed.

use std::os::unix::process::CommandExt;
use std::process::Command;

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xC000_003E; // AUDIT_ARCH_X86_64
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xC000_00B7; // AUDIT_ARCH_AARCH64

// Classic BPF opcodes (linux/filter.h) and seccomp return values (linux/seccomp.h).
const LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const JGT_K: u16 = 0x25; // BPF_JMP | BPF_JGT | BPF_K
const RET_K: u16 = 0x06; // BPF_RET | BPF_K
const RET_ALLOW: u32 = 0x7fff_0000;
const RET_ERRNO: u32 = 0x0005_0000;
/// Offsets in `struct seccomp_data`.
const NR: u32 = 0;
const ARCH: u32 = 4;
/// The low 32 bits of the first argument (little-endian).
#[cfg(target_endian = "little")]
const ARG0_LOW: u32 = 16;

fn op(code: u16, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// The filter: io_uring's three system calls get EPERM, everything else runs.
fn program() -> Vec<libc::sock_filter> {
    vec![
        op(LD_W_ABS, 0, 0, ARCH),
        op(JEQ_K, 0, 4, AUDIT_ARCH), // another ABI: allow (jump to 6)
        op(LD_W_ABS, 0, 0, NR),
        op(JEQ_K, 3, 0, libc::SYS_io_uring_setup as u32),
        op(JEQ_K, 2, 0, libc::SYS_io_uring_enter as u32),
        op(JEQ_K, 1, 0, libc::SYS_io_uring_register as u32),
        op(RET_K, 0, 0, RET_ALLOW),
        op(RET_K, 0, 0, RET_ERRNO | libc::EPERM as u32),
    ]
}

/// A narrower filter: only rings of more than two entries are refused, so a small
/// probe ring works but a real runtime's ring (tokio-uring asks for 256) does not.
fn program_large_rings() -> Vec<libc::sock_filter> {
    vec![
        op(LD_W_ABS, 0, 0, ARCH),
        op(JEQ_K, 0, 4, AUDIT_ARCH), // another ABI: allow (jump to 6)
        op(LD_W_ABS, 0, 0, NR),
        op(JEQ_K, 0, 2, libc::SYS_io_uring_setup as u32),
        op(LD_W_ABS, 0, 0, ARG0_LOW),
        op(JGT_K, 1, 0, 2),
        op(RET_K, 0, 0, RET_ALLOW),
        op(RET_K, 0, 0, RET_ERRNO | libc::EPERM as u32),
    ]
}

/// Make `cmd`'s process run with io_uring blocked.
pub fn block_io_uring(cmd: &mut Command) -> &mut Command {
    install(cmd, program())
}

/// Make `cmd`'s process able to set up only tiny io_urings (see `program_large_rings`).
pub fn block_large_io_urings(cmd: &mut Command) -> &mut Command {
    install(cmd, program_large_rings())
}

fn install(cmd: &mut Command, program: Vec<libc::sock_filter>) -> &mut Command {
    // Built before the fork: the child only makes two system calls.
    let filter = Box::leak(program.into_boxed_slice());
    let prog = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_mut_ptr(),
    };
    let prog = Box::leak(Box::new(prog)) as *const libc::sock_fprog as usize;
    // SAFETY: the closure runs in the forked child before exec and only calls
    // prctl(2), which is async-signal-safe; `prog` points to leaked, immutable memory.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::prctl(
                libc::PR_SET_SECCOMP,
                libc::SECCOMP_MODE_FILTER,
                prog as *const libc::sock_fprog,
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    }
}
