//! Config for who is talking: submission (SMTP AUTH) on listeners, the `[auth]`
//! table, and server certificates chosen by SNI. Checked here, apart from the
//! rest of the validation, so the identity rules read in one place.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{Config, Dur, ListenerTls};

/// `[[listener]] auth`: whether SMTP AUTH is offered there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ListenerAuth {
    /// `false`: no AUTH (an MX listener).
    #[default]
    Off,
    /// `true`: AUTH PLAIN LOGIN offered once TLS is up; unauthenticated mail is
    /// still taken under the usual relay rules.
    Offered,
    /// `"required"`: MAIL before AUTH gets 530 5.7.0 Authentication required.
    Required,
}

impl ListenerAuth {
    pub fn enabled(self) -> bool {
        self != ListenerAuth::Off
    }
}

impl<'de> Deserialize<'de> for ListenerAuth {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Flag(bool),
            Word(String),
        }
        match Raw::deserialize(d)? {
            Raw::Flag(false) => Ok(ListenerAuth::Off),
            Raw::Flag(true) => Ok(ListenerAuth::Offered),
            Raw::Word(w) if w == "required" => Ok(ListenerAuth::Required),
            Raw::Word(w) => Err(serde::de::Error::custom(format!(
                "auth is true, false or \"required\", not \"{w}\""
            ))),
        }
    }
}

impl Serialize for ListenerAuth {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            ListenerAuth::Off => s.serialize_bool(false),
            ListenerAuth::Offered => s.serialize_bool(true),
            ListenerAuth::Required => s.serialize_str("required"),
        }
    }
}

/// `[auth]`: accounts for SMTP AUTH and the brute-force limit.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// One account per line, `login:argon2id-PHC-hash[:address,address,...]`;
    /// reloaded on SIGHUP. Needed by any listener with `auth`. Default none.
    pub users_file: Option<PathBuf>,
    /// Failed AUTHs from one client address within `failure_window` after which
    /// that address gets 454 4.7.0 without a password check, for one more
    /// `failure_window` from the failure that locked it. 0 = no limit. Default 5.
    pub max_failures: u32,
    /// See `max_failures`. Default 10m.
    pub failure_window: Dur,
    /// Name the login in the Received header (`Authenticated sender:`). Default
    /// false: the login is stored with the message but not shown.
    pub show_login_in_received: bool,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            users_file: None,
            max_failures: 5,
            failure_window: Dur(std::time::Duration::from_secs(600)),
            show_login_in_received: false,
        }
    }
}

/// `[[tls.certificates]]`: one certificate served for some SNI names.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CertificateEntry {
    /// PEM certificate chain.
    pub certificate: PathBuf,
    /// PEM private key.
    pub private_key: PathBuf,
    /// Names (exact, or `*.domain` for one level of subdomains) this certificate
    /// is chosen for. Default: the DNS names (SANs) of the certificate.
    #[serde(default)]
    pub names: Vec<String>,
}

pub(super) type Problem = (&'static str, Option<usize>, &'static str, String);

pub(super) fn validate(c: &Config) -> Result<(), Problem> {
    for (i, l) in c.listeners.iter().enumerate() {
        if !l.auth.enabled() {
            continue;
        }
        if matches!(l.tls, ListenerTls::None | ListenerTls::Starttls) {
            return Err((
                "listener",
                Some(i),
                "auth",
                format!(
                    "auth needs tls = \"required\" or \"implicit\" (listener {} has tls = \"{}\"): passwords never travel in plaintext",
                    l.name,
                    match l.tls {
                        ListenerTls::None => "none",
                        _ => "starttls",
                    }
                ),
            ));
        }
        if c.auth.users_file.is_none() {
            return Err((
                "listener",
                Some(i),
                "auth",
                format!(
                    "listener {} offers AUTH, but [auth] users_file is not set",
                    l.name
                ),
            ));
        }
    }
    if c.auth.failure_window.0.is_zero() && c.auth.max_failures > 0 {
        return Err(("auth", None, "failure_window", "must be above zero".into()));
    }
    for (i, e) in c.tls.certificates.iter().enumerate() {
        for n in &e.names {
            let bare = n.strip_prefix("*.").unwrap_or(n);
            if bare.is_empty() || bare.contains(['*', ' ', '/']) || n.ends_with('.') {
                return Err((
                    "tls.certificates",
                    Some(i),
                    "names",
                    format!("`{n}` is not a host name or *.domain"),
                ));
            }
        }
    }
    for (i, r) in c.outbound_tls.iter().enumerate() {
        for a in &r.accounts {
            if !a.contains('@') || a.contains(char::is_whitespace) {
                return Err((
                    "outbound_tls",
                    Some(i),
                    "accounts",
                    format!("`{a}`: an account matcher is user@domain or *@domain"),
                ));
            }
        }
        if r.client_certificate.is_some() != r.client_private_key.is_some() {
            return Err((
                "outbound_tls",
                Some(i),
                "client_private_key",
                "client_certificate and client_private_key go together".into(),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::config::{load_str, ListenerAuth};

    const USERS: &str = "[auth]\nusers_file = \"users\"\n";

    #[test]
    fn auth_needs_a_tls_listener_and_a_users_file() {
        let ok = load_str(
            &format!("[[listener]]\naddress = \"127.0.0.1:587\"\ntls = \"required\"\nauth = \"required\"\n[[listener]]\nname = \"smtps\"\naddress = \"127.0.0.1:465\"\ntls = \"implicit\"\nauth = true\n{USERS}"),
            "t",
        )
        .unwrap();
        assert_eq!(ok.listeners[0].auth, ListenerAuth::Required);
        assert_eq!(ok.listeners[1].auth, ListenerAuth::Offered);
        assert_eq!(ok.auth.max_failures, 5);
        let err = load_str(
            &format!("[[listener]]\naddress = \"127.0.0.1:25\"\ntls = \"starttls\"\nauth = true\n{USERS}"),
            "t",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("line 4") && err.contains("listener[0].auth") && err.contains("plaintext"),
            "{err}"
        );
        let err = load_str(
            "[[listener]]\naddress = \"127.0.0.1:25\"\ntls = \"none\"\nauth = true\n",
            "t",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("tls = \"none\""), "{err}");
        let err = load_str(
            "[[listener]]\naddress = \"127.0.0.1:25\"\ntls = \"implicit\"\nauth = true\n",
            "t",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("users_file"), "{err}");
        let err = load_str(
            "[[listener]]\naddress = \"127.0.0.1:25\"\nauth = \"maybe\"\n",
            "t",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("maybe"), "{err}");
    }

    #[test]
    fn certificates_and_accounts_parse_beside_tls_certificate() {
        let c = load_str(
            "[[listener]]\naddress = \"127.0.0.1:25\"\n[tls]\ncertificate = \"c.pem\"\nprivate_key = \"k.pem\"\ncertificate_dir = \"certs\"\nself_signed_names = [\"mx2.test\"]\n[[tls.certificates]]\ncertificate = \"a.pem\"\nprivate_key = \"a.key\"\nnames = [\"a.test\", \"*.a.test\"]\n[[outbound_tls]]\naccounts = [\"alice@customer-a.test\", \"*@customer-b.test\"]\nlevel = \"encrypt\"\nclient_certificate = \"cc.pem\"\nclient_private_key = \"ck.pem\"\n",
            "t",
        )
        .unwrap();
        assert_eq!(c.tls.certificates.len(), 1);
        assert_eq!(c.tls.certificates[0].names, ["a.test", "*.a.test"]);
        assert_eq!(c.outbound_tls[0].accounts.len(), 2);
        let err = load_str(
            "[[listener]]\naddress = \"127.0.0.1:25\"\n[[tls.certificates]]\ncertificate = \"a.pem\"\nprivate_key = \"a.key\"\nnames = [\"a.*.test\"]\n",
            "t",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("tls.certificates[0].names"), "{err}");
    }
}
