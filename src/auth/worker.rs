//! The auth workers: a few threads that check passwords, fed by a bounded
//! crossbeam channel. A shard hands over (client address, login, password) and
//! awaits the answer on a oneshot channel, so its event loop keeps serving other
//! sessions while argon2 runs. Accounts and limits are replaced on SIGHUP; the
//! lockout counts survive a reload.

use std::net::IpAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use crossbeam_channel::{Sender, TrySendError};

use super::lockout::Lockout;
use super::password::{decoy_hash, verify_password};
use super::users::{Accounts, UsersFileError};
use crate::config::AuthConfig;
use crate::proto::auth::AuthOutcome;

/// Checks waiting for a worker at most; more are answered 454 at once, so a flood of
/// AUTH attempts costs a bounded amount of memory and never queues for minutes.
const QUEUE_LIMIT: usize = 1024;

struct Job {
    ip: IpAddr,
    login: String,
    password: Vec<u8>,
    answer: tokio::sync::oneshot::Sender<AuthOutcome>,
}

struct Shared {
    accounts: RwLock<Arc<Accounts>>,
    lockout: Mutex<Lockout>,
    /// Where the accounts came from, for log lines.
    users_file: RwLock<String>,
}

pub struct Authenticator {
    jobs: Sender<Job>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Authenticator")
    }
}

/// Read the users file `[auth]` names (no file: no accounts).
pub fn load_accounts(cfg: &AuthConfig) -> Result<Accounts, UsersFileError> {
    match &cfg.users_file {
        Some(path) => Accounts::load(path),
        None => Ok(Accounts::default()),
    }
}

impl Authenticator {
    /// Start `workers` threads checking against `accounts`.
    pub fn start(cfg: &AuthConfig, accounts: Accounts, workers: usize) -> Arc<Authenticator> {
        let (tx, rx) = crossbeam_channel::bounded::<Job>(QUEUE_LIMIT);
        let shared = Arc::new(Shared {
            accounts: RwLock::new(Arc::new(accounts)),
            lockout: Mutex::new(Lockout::new(cfg.max_failures, cfg.failure_window.0)),
            users_file: RwLock::new(users_file_name(cfg)),
        });
        for n in 0..workers.max(1) {
            let rx = rx.clone();
            let shared = shared.clone();
            // The threads end when the last Authenticator (the sender) is dropped.
            let _ = std::thread::Builder::new()
                .name(format!("mxring-auth{n}"))
                .spawn(move || {
                    for job in rx.iter() {
                        shared.check(job);
                    }
                });
        }
        Arc::new(Authenticator { jobs: tx, shared })
    }

    /// The default pool size: password checks are CPU-bound; leave cores to the shards.
    pub fn default_workers() -> usize {
        std::thread::available_parallelism()
            .map(|n| n.get().div_ceil(2))
            .unwrap_or(1)
            .clamp(1, 4)
    }

    /// New accounts and limits from a reloaded config.
    pub fn replace(&self, cfg: &AuthConfig, accounts: Accounts) {
        *self
            .shared
            .accounts
            .write()
            .unwrap_or_else(|e| e.into_inner()) = Arc::new(accounts);
        *self
            .shared
            .users_file
            .write()
            .unwrap_or_else(|e| e.into_inner()) = users_file_name(cfg);
        self.shared
            .lockout
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .set_limits(cfg.max_failures, cfg.failure_window.0);
    }

    /// Number of accounts loaded.
    pub fn accounts(&self) -> usize {
        self.shared.accounts.read().map(|a| a.len()).unwrap_or(0)
    }

    /// Ask for a check; the answer arrives on the returned channel. A locked-out
    /// address is answered at once, without a password check.
    pub fn check(
        &self,
        ip: IpAddr,
        login: String,
        mut password: Vec<u8>,
    ) -> tokio::sync::oneshot::Receiver<AuthOutcome> {
        let (answer, rx) = tokio::sync::oneshot::channel();
        if self.shared.locked(ip, &login) {
            wipe(&mut password);
            let _ = answer.send(AuthOutcome::LockedOut);
            return rx;
        }
        match self.jobs.try_send(Job {
            ip,
            login,
            password,
            answer,
        }) {
            Ok(()) => {}
            Err(TrySendError::Full(mut job)) | Err(TrySendError::Disconnected(mut job)) => {
                tracing::warn!(client = %job.ip, login = %job.login, "authentication refused: too many password checks waiting");
                wipe(&mut job.password);
                let _ = job.answer.send(AuthOutcome::Unavailable);
            }
        }
        rx
    }
}

impl Shared {
    fn locked(&self, ip: IpAddr, login: &str) -> bool {
        let locked = self
            .lockout
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_locked(ip, Instant::now());
        if locked {
            tracing::warn!(client = %ip, %login, "authentication refused without a password check: too many failures from this address (our policy, [auth] max_failures)");
        }
        locked
    }

    fn check(&self, mut job: Job) {
        // A lockout may have begun while the job waited.
        if self.locked(job.ip, &job.login) {
            wipe(&mut job.password);
            let _ = job.answer.send(AuthOutcome::LockedOut);
            return;
        }
        let accounts = self
            .accounts
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let account = accounts.get(&job.login);
        let started = Instant::now();
        let hash = account
            .map(|a| a.hash.as_str())
            .unwrap_or_else(|| decoy_hash());
        let good = verify_password(hash, &job.password) && account.is_some();
        wipe(&mut job.password);
        let outcome = match account {
            Some(a) if good => {
                self.lockout
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .succeeded(job.ip);
                tracing::info!(client = %job.ip, login = %a.login, "authenticated");
                AuthOutcome::Accepted {
                    login: a.login.clone(),
                    addresses: a.addresses.clone(),
                }
            }
            _ => {
                self.lockout
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .failed(job.ip, Instant::now());
                let why = if account.is_some() {
                    "wrong password"
                } else {
                    "no such login"
                };
                let file = self
                    .users_file
                    .read()
                    .map(|f| f.clone())
                    .unwrap_or_default();
                tracing::warn!(client = %job.ip, login = %job.login, reason = why, users_file = %file, ms = started.elapsed().as_millis() as u64, "authentication failed");
                AuthOutcome::Rejected
            }
        };
        let _ = job.answer.send(outcome);
    }
}

fn users_file_name(cfg: &AuthConfig) -> String {
    cfg.users_file
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "(none)".into())
}

/// Overwrite a password before its buffer is freed.
fn wipe(buf: &mut [u8]) {
    for b in buf.iter_mut() {
        // SAFETY: `b` is a valid, aligned, exclusive reference into `buf`; the
        // volatile write only keeps the compiler from dropping the store.
        unsafe { std::ptr::write_volatile(b, 0) };
    }
}

/// How long to wait for a worker's answer before giving up with 454.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Dur;

    fn cfg(max: u32, window: Duration) -> AuthConfig {
        AuthConfig {
            max_failures: max,
            failure_window: Dur(window),
            ..AuthConfig::default()
        }
    }

    fn answer(a: &Authenticator, ip: &str, login: &str, pw: &str) -> AuthOutcome {
        a.check(ip.parse().unwrap(), login.into(), pw.as_bytes().to_vec())
            .blocking_recv()
            .unwrap()
    }

    #[test]
    fn checks_run_on_workers_and_the_lockout_counts_per_address() {
        let hash = super::super::password::hash_password(b"pw").unwrap();
        let accounts =
            Accounts::parse(&format!("alice@a.test:{hash}:*@alice.test\n"), "t").unwrap();
        let a = Authenticator::start(&cfg(2, Duration::from_secs(600)), accounts, 2);
        match answer(&a, "192.0.2.1", "ALICE@a.test", "pw") {
            AuthOutcome::Accepted { login, addresses } => {
                assert_eq!(login, "alice@a.test");
                assert_eq!(addresses.len(), 1);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            answer(&a, "192.0.2.1", "alice@a.test", "bad"),
            AuthOutcome::Rejected
        );
        assert_eq!(
            answer(&a, "192.0.2.1", "nobody@a.test", "pw"),
            AuthOutcome::Rejected
        );
        // Two failures from .1: locked, even with the right password.
        assert_eq!(
            answer(&a, "192.0.2.1", "alice@a.test", "pw"),
            AuthOutcome::LockedOut
        );
        // Another address is not.
        assert!(matches!(
            answer(&a, "192.0.2.2", "alice@a.test", "pw"),
            AuthOutcome::Accepted { .. }
        ));
        // A reload replaces the accounts and keeps the lockouts so far.
        a.replace(&cfg(5, Duration::from_secs(600)), Accounts::default());
        assert_eq!(a.accounts(), 0);
        assert_eq!(
            answer(&a, "192.0.2.1", "alice@a.test", "pw"),
            AuthOutcome::LockedOut
        );
        assert_eq!(
            answer(&a, "192.0.2.2", "alice@a.test", "pw"),
            AuthOutcome::Rejected
        );
    }
}
