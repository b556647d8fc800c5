//! `mxring auth hash`: read a password on stdin, print its argon2id PHC string for
//! the users file. On a terminal the password is not echoed.

use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;

use clap::Subcommand;

#[derive(Subcommand)]
pub enum AuthAction {
    /// Read a password on stdin (one line) and print its argon2id hash for the users file.
    Hash,
}

pub fn run(action: AuthAction) -> anyhow::Result<ExitCode> {
    match action {
        AuthAction::Hash => {
            let password = read_password()?;
            if password.is_empty() {
                anyhow::bail!("no password on stdin (an empty password is not accepted)");
            }
            let hash =
                mxring::auth::hash_password(password.as_bytes()).map_err(anyhow::Error::msg)?;
            outln!("{hash}");
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn read_password() -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    let _echo = if stdin.is_terminal() {
        eprint!("Password: ");
        EchoOff::new()
    } else {
        None
    };
    let mut line = String::new();
    stdin.lock().read_line(&mut line)?;
    if stdin.is_terminal() {
        eprintln!();
    }
    let trimmed = line.strip_suffix('\n').unwrap_or(&line);
    Ok(trimmed.strip_suffix('\r').unwrap_or(trimmed).to_string())
}

/// Turns terminal echo off for as long as it lives.
struct EchoOff(libc::termios);

impl EchoOff {
    fn new() -> Option<EchoOff> {
        // SAFETY: tcgetattr/tcsetattr on fd 0 with a zeroed termios that
        // tcgetattr fills; failure leaves echo as it was.
        unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(0, &mut t) != 0 {
                return None;
            }
            let saved = t;
            t.c_lflag &= !libc::ECHO;
            if libc::tcsetattr(0, libc::TCSANOW, &t) != 0 {
                return None;
            }
            Some(EchoOff(saved))
        }
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        // SAFETY: restores the attributes read in `new` on the same fd.
        unsafe {
            libc::tcsetattr(0, libc::TCSANOW, &self.0);
        }
    }
}
