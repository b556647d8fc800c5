//! Accounts for SMTP AUTH: the users file, argon2id password checks on worker
//! threads, and the per-address brute-force lockout.

mod lockout;
mod password;
mod users;
mod worker;

pub use lockout::Lockout;
pub use password::{hash_password, verify_password};
pub use users::{Account, Accounts, UsersFileError};
pub use worker::{load_accounts, Authenticator, ANSWER_TIMEOUT};
