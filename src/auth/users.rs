//! The users file: one account per line, `login:PHC-hash[:address,address,...]`.
//! The login is an email address; the hash is an argon2id PHC string (never a
//! plaintext password); the addresses are the other senders the login may use
//! (`user@domain` or `*@domain`). Blank lines and lines starting with `#` are skipped.

use std::collections::HashMap;
use std::path::Path;

use crate::policy::AddressMatcher;

/// One account of the users file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    /// The login as written in the file.
    pub login: String,
    /// The argon2id PHC string.
    pub hash: String,
    /// Sender addresses besides the login itself.
    pub addresses: Vec<AddressMatcher>,
}

impl Account {
    /// Whether this account may use `sender` as MAIL FROM (`""` is the null sender).
    pub fn owns(&self, sender: &str) -> bool {
        sender.is_empty()
            || sender.eq_ignore_ascii_case(&self.login)
            || self.addresses.iter().any(|m| m.matches(sender))
    }
}

/// Every account of a users file, by lower-cased login.
#[derive(Clone, Debug, Default)]
pub struct Accounts {
    by_login: HashMap<String, Account>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UsersFileError {
    #[error("cannot read users file {path}: {message}")]
    Read { path: String, message: String },
    #[error("{origin}: line {line}: {message}")]
    Line {
        origin: String,
        line: usize,
        message: String,
    },
}

impl Accounts {
    pub fn load(path: &Path) -> Result<Accounts, UsersFileError> {
        let text = std::fs::read_to_string(path).map_err(|e| UsersFileError::Read {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        Accounts::parse(&text, &path.display().to_string())
    }

    /// Parse the text of a users file; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Accounts, UsersFileError> {
        let mut by_login = HashMap::new();
        for (n, raw) in text.lines().enumerate() {
            let bad = |message: String| UsersFileError::Line {
                origin: origin.to_string(),
                line: n + 1,
                message,
            };
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut fields = line.splitn(3, ':');
            let login = fields.next().unwrap_or("").trim();
            let hash = fields.next().unwrap_or("").trim();
            let addresses = fields.next().unwrap_or("").trim();
            if !is_address(login) {
                return Err(bad(format!(
                    "the login `{login}` is not an email address (login:hash[:addresses])"
                )));
            }
            check_hash(hash).map_err(|m| bad(format!("{login}: {m}")))?;
            let mut matchers = Vec::new();
            for a in addresses
                .split(',')
                .map(str::trim)
                .filter(|a| !a.is_empty())
            {
                let wildcard = a
                    .strip_prefix("*@")
                    .is_some_and(|d| !d.is_empty() && !d.contains('@'));
                if !wildcard && !is_address(a) {
                    return Err(bad(format!(
                        "{login}: `{a}` is not an address (user@domain or *@domain)"
                    )));
                }
                matchers.push(AddressMatcher::parse(a));
            }
            let account = Account {
                login: login.to_string(),
                hash: hash.to_string(),
                addresses: matchers,
            };
            if by_login
                .insert(login.to_ascii_lowercase(), account)
                .is_some()
            {
                return Err(bad(format!("{login} is listed twice")));
            }
        }
        Ok(Accounts { by_login })
    }

    /// The account of `login`, compared without regard to case.
    pub fn get(&self, login: &str) -> Option<&Account> {
        self.by_login.get(&login.to_ascii_lowercase())
    }

    pub fn len(&self) -> usize {
        self.by_login.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_login.is_empty()
    }
}

fn is_address(s: &str) -> bool {
    match s.rsplit_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !local.contains('@')
                && !s.contains(|c: char| {
                    c.is_whitespace() || c == ',' || c == ':' || c == '<' || c == '>'
                })
                && local != "*"
        }
        None => false,
    }
}

/// Only argon2id PHC strings are taken: a plaintext password or a weaker scheme in
/// the file is an operator error, said so at load time rather than at first login.
fn check_hash(hash: &str) -> Result<(), String> {
    if hash.is_empty() {
        return Err("no password hash (make one with `mxring auth hash`)".into());
    }
    let parsed = argon2::PasswordHash::new(hash).map_err(|_| {
        "the password field is not a PHC string; store hashes from `mxring auth hash`, never passwords"
            .to_string()
    })?;
    if parsed.algorithm.as_str() != "argon2id" {
        return Err(format!(
            "the hash uses {}; only argon2id is accepted (`mxring auth hash`)",
            parsed.algorithm
        ));
    }
    if parsed.hash.is_none() || parsed.salt.is_none() {
        return Err("the argon2id string has no salt or no hash".into());
    }
    argon2::Params::try_from(&parsed).map_err(|e| format!("bad argon2id parameters: {e}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    // "secret" with m=19456,t=2,p=1 (`mxring auth hash`).
    const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$9n7NCfn+0FqgPEJbW5TB6ljLWfUBvbQzcFl3Hf0Z1Hk";

    #[test]
    fn parses_logins_hashes_and_addresses() {
        let text = format!(
            "# accounts\n\nalice@customer-a.test:{HASH}:sales@customer-a.test, *@alice.test\nBob@Customer-B.test:{HASH}\n"
        );
        let a = Accounts::parse(&text, "users").unwrap();
        assert_eq!(a.len(), 2);
        let alice = a.get("ALICE@customer-a.test").unwrap();
        assert_eq!(alice.login, "alice@customer-a.test");
        assert_eq!(alice.hash, HASH);
        assert!(alice.owns("alice@customer-a.test"));
        assert!(alice.owns("Sales@customer-a.test"));
        assert!(alice.owns("anything@alice.test"));
        assert!(alice.owns(""));
        assert!(!alice.owns("bob@customer-b.test"));
        assert!(!alice.owns("x@sub.alice.test"));
        let bob = a.get("bob@customer-b.test").unwrap();
        assert!(bob.addresses.is_empty());
        assert!(bob.owns("BOB@customer-b.test"));
    }

    #[test]
    fn refuses_plaintext_weak_hashes_and_bad_logins_with_the_line() {
        let err = |text: &str| Accounts::parse(text, "users.txt").unwrap_err().to_string();
        let e = err("# c\nalice@a.test:hunter2\n");
        assert!(
            e.starts_with(
                "users.txt: line 2: alice@a.test: the password field is not a PHC string"
            ),
            "{e}"
        );
        let e = err("alice@a.test:$argon2i$v=19$m=16,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo\n");
        assert!(e.contains("only argon2id"), "{e}");
        let e = err("alice@a.test:\n");
        assert!(e.contains("no password hash"), "{e}");
        let e = err(&format!("alice:{HASH}\n"));
        assert!(
            e.contains("line 1") && e.contains("not an email address"),
            "{e}"
        );
        let e = err(&format!("alice@a.test:{HASH}:not an address\n"));
        assert!(e.contains("not an address"), "{e}");
        let e = err(&format!("alice@a.test:{HASH}\nALICE@a.test:{HASH}\n"));
        assert!(e.contains("line 2") && e.contains("twice"), "{e}");
    }
}
