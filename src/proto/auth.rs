//! SMTP AUTH (RFC 4954) exchanges, sans-IO: the PLAIN (RFC 4616) and LOGIN
//! mechanisms, base64 decoding, `=` for an empty initial response and `*` to cancel.
//! The session hands the credentials to its driver, which checks them off the event
//! loop and answers with an [`AuthOutcome`].

use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;

use crate::policy::AddressMatcher;

/// Longest AUTH command or response line taken, CRLF included: RFC 4954 4 raises the
/// command line limit to 12288 octets for AUTH.
pub const MAX_AUTH_LINE: usize = 12288;

/// "Username:" and "Password:", base64: the LOGIN mechanism's prompts.
const LOGIN_USER_PROMPT: &str = "VXNlcm5hbWU6";
const LOGIN_PASSWORD_PROMPT: &str = "UGFzc3dvcmQ6";

/// The driver's answer to a credential check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthOutcome {
    /// The password matched: the login as the users file writes it, and the other
    /// sender addresses it owns.
    Accepted {
        login: String,
        addresses: Vec<AddressMatcher>,
    },
    /// Wrong password or no such login (one answer for both).
    Rejected,
    /// Too many failures from this client address: not checked.
    LockedOut,
    /// No worker could check it (overloaded or stopping).
    Unavailable,
}

/// A login and password to check. The password is never logged or shown.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub login: String,
    pub password: Vec<u8>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Credentials {{ login: {:?}, password: (hidden) }}",
            self.login
        )
    }
}

/// Why an AUTH exchange was refused before any password check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("unknown mechanism")]
    UnknownMechanism,
    #[error("AUTH syntax")]
    Syntax,
    #[error("not base64")]
    BadBase64,
    #[error("malformed credentials")]
    Malformed,
    #[error("cancelled by the client")]
    Cancelled,
    #[error("authorization identity differs from the login")]
    AuthzidMismatch,
}

impl AuthError {
    /// The reply: code, enhanced status, text.
    pub fn reply(self) -> (u16, &'static str, &'static str) {
        match self {
            AuthError::UnknownMechanism => (504, "5.5.4", "Unrecognized authentication type"),
            AuthError::Syntax => (501, "5.5.4", "Syntax: AUTH mechanism [initial-response]"),
            AuthError::BadBase64 => (501, "5.5.2", "Cannot decode response"),
            AuthError::Malformed => (501, "5.5.2", "Invalid authentication message"),
            AuthError::Cancelled => (501, "5.0.0", "Authentication aborted"),
            AuthError::AuthzidMismatch => (
                535,
                "5.7.8",
                "Authentication credentials invalid (authorization identity differs from login)",
            ),
        }
    }
}

/// Where an exchange waits for the client's next line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pending {
    /// `AUTH PLAIN` without an initial response: the response comes next.
    PlainResponse,
    /// `AUTH LOGIN`: the user name comes next.
    LoginUser,
    /// `AUTH LOGIN`, user name known: the password comes next.
    LoginPassword { login: String },
}

/// What the session does next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Next {
    /// Send `334 CHALLENGE` and wait for the client's line.
    Ask(Pending, &'static str),
    /// Hand these to the driver.
    Check(Credentials),
}

/// Standard base64, padding optional (some clients leave it off).
const B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Decode a client response; `=` is the empty response (RFC 4954 4).
fn decode(text: &str) -> Result<Vec<u8>, AuthError> {
    if text == "=" {
        return Ok(Vec::new());
    }
    if text.is_empty() {
        return Err(AuthError::BadBase64);
    }
    B64.decode(text).map_err(|_| AuthError::BadBase64)
}

/// The arguments of an AUTH command: `mechanism [initial-response]`.
pub fn begin(args: &str) -> Result<Next, AuthError> {
    let mut words = args.split(' ').filter(|w| !w.is_empty());
    let mechanism = words.next().ok_or(AuthError::Syntax)?;
    let initial = words.next();
    if words.next().is_some() {
        return Err(AuthError::Syntax);
    }
    if mechanism.eq_ignore_ascii_case("PLAIN") {
        match initial {
            Some(ir) => plain(&decode(ir)?).map(Next::Check),
            // RFC 4954: an empty challenge, "334 ".
            None => Ok(Next::Ask(Pending::PlainResponse, "")),
        }
    } else if mechanism.eq_ignore_ascii_case("LOGIN") {
        match initial {
            // Some clients send the user name with the command.
            Some(ir) => Ok(Next::Ask(
                Pending::LoginPassword {
                    login: login_name(&decode(ir)?)?,
                },
                LOGIN_PASSWORD_PROMPT,
            )),
            None => Ok(Next::Ask(Pending::LoginUser, LOGIN_USER_PROMPT)),
        }
    } else {
        Err(AuthError::UnknownMechanism)
    }
}

/// The client's line answering a 334 challenge.
pub fn respond(pending: Pending, line: &str) -> Result<Next, AuthError> {
    if line == "*" {
        return Err(AuthError::Cancelled);
    }
    let bytes = decode(line)?;
    match pending {
        Pending::PlainResponse => plain(&bytes).map(Next::Check),
        Pending::LoginUser => Ok(Next::Ask(
            Pending::LoginPassword {
                login: login_name(&bytes)?,
            },
            LOGIN_PASSWORD_PROMPT,
        )),
        Pending::LoginPassword { login } => Ok(Next::Check(Credentials {
            login,
            password: bytes,
        })),
    }
}

fn login_name(bytes: &[u8]) -> Result<String, AuthError> {
    let s = std::str::from_utf8(bytes).map_err(|_| AuthError::Malformed)?;
    if s.is_empty() || s.len() > 320 || s.chars().any(|c| c.is_control()) {
        return Err(AuthError::Malformed);
    }
    Ok(s.to_string())
}

/// RFC 4616: `[authzid] NUL authcid NUL passwd`. An authorization identity other
/// than the login itself (acting for another user) is not supported.
fn plain(bytes: &[u8]) -> Result<Credentials, AuthError> {
    let mut parts = bytes.splitn(3, |&b| b == 0);
    let (Some(authzid), Some(authcid), Some(password)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthError::Malformed);
    };
    if password.contains(&0) {
        return Err(AuthError::Malformed);
    }
    let login = login_name(authcid)?;
    if !authzid.is_empty() && !authzid.eq_ignore_ascii_case(authcid) {
        return Err(AuthError::AuthzidMismatch);
    }
    Ok(Credentials {
        login,
        password: password.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(b: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(b)
    }

    fn creds(login: &str, pw: &str) -> Next {
        Next::Check(Credentials {
            login: login.into(),
            password: pw.as_bytes().to_vec(),
        })
    }

    #[test]
    fn plain_with_and_without_initial_response() {
        let ir = b64(b"\0alice@a.test\0s3cret");
        assert_eq!(
            begin(&format!("PLAIN {ir}")),
            Ok(creds("alice@a.test", "s3cret"))
        );
        assert_eq!(
            begin(&format!("plain  {ir} ")),
            Ok(creds("alice@a.test", "s3cret"))
        );
        // authzid equal to the login is fine; another one is not.
        let ir = b64(b"alice@a.test\0alice@a.test\0pw");
        assert_eq!(
            begin(&format!("PLAIN {ir}")),
            Ok(creds("alice@a.test", "pw"))
        );
        let ir = b64(b"bob@a.test\0alice@a.test\0pw");
        assert_eq!(
            begin(&format!("PLAIN {ir}")),
            Err(AuthError::AuthzidMismatch)
        );
        // No initial response: an empty challenge, then the response.
        assert_eq!(begin("PLAIN"), Ok(Next::Ask(Pending::PlainResponse, "")));
        let line = b64(b"\0bob@b.test\0pw with spaces");
        assert_eq!(
            respond(Pending::PlainResponse, &line),
            Ok(creds("bob@b.test", "pw with spaces"))
        );
        // Padding may be left off.
        let unpadded = b64(b"\0u@d\0p1").trim_end_matches('=').to_string();
        assert_eq!(begin(&format!("PLAIN {unpadded}")), Ok(creds("u@d", "p1")));
    }

    #[test]
    fn plain_refuses_bad_base64_missing_fields_and_empty() {
        assert_eq!(begin("PLAIN AGFsaWNl!!"), Err(AuthError::BadBase64));
        assert_eq!(begin("PLAIN a b"), Err(AuthError::Syntax));
        assert_eq!(begin(""), Err(AuthError::Syntax));
        assert_eq!(
            respond(Pending::PlainResponse, "%%%"),
            Err(AuthError::BadBase64)
        );
        assert_eq!(
            respond(Pending::PlainResponse, ""),
            Err(AuthError::BadBase64)
        );
        // "=" is the empty response: decodes, but holds no credentials.
        assert_eq!(begin("PLAIN ="), Err(AuthError::Malformed));
        assert_eq!(
            respond(Pending::PlainResponse, "="),
            Err(AuthError::Malformed)
        );
        // One NUL only; an empty login.
        assert_eq!(
            begin(&format!("PLAIN {}", b64(b"alice\0pw"))),
            Err(AuthError::Malformed)
        );
        assert_eq!(
            begin(&format!("PLAIN {}", b64(b"\0\0pw"))),
            Err(AuthError::Malformed)
        );
        assert_eq!(
            begin(&format!("PLAIN {}", b64(b"\0a@b\0p\0w"))),
            Err(AuthError::Malformed)
        );
        // An empty password is a password (it will not match), not a syntax error.
        assert_eq!(
            begin(&format!("PLAIN {}", b64(b"\0a@b\0"))),
            Ok(creds("a@b", ""))
        );
        assert_eq!(begin("CRAM-MD5"), Err(AuthError::UnknownMechanism));
        assert_eq!(
            respond(Pending::PlainResponse, "*"),
            Err(AuthError::Cancelled)
        );
    }

    #[test]
    fn login_prompts_for_user_then_password() {
        assert_eq!(
            begin("LOGIN"),
            Ok(Next::Ask(Pending::LoginUser, "VXNlcm5hbWU6"))
        );
        let next = respond(Pending::LoginUser, &b64(b"alice@a.test")).unwrap();
        let Next::Ask(pending, prompt) = next else {
            panic!("{next:?}")
        };
        assert_eq!(prompt, "UGFzc3dvcmQ6");
        assert_eq!(
            respond(pending.clone(), &b64(b"pw")),
            Ok(creds("alice@a.test", "pw"))
        );
        // "=" is an empty password.
        assert_eq!(respond(pending.clone(), "="), Ok(creds("alice@a.test", "")));
        assert_eq!(respond(pending, "*"), Err(AuthError::Cancelled));
        // The user name may come with the command.
        assert_eq!(
            begin(&format!("LOGIN {}", b64(b"bob@b.test"))),
            Ok(Next::Ask(
                Pending::LoginPassword {
                    login: "bob@b.test".into()
                },
                "UGFzc3dvcmQ6"
            ))
        );
        assert_eq!(respond(Pending::LoginUser, "="), Err(AuthError::Malformed));
        assert_eq!(
            respond(Pending::LoginUser, &b64(b"ab\xff")),
            Err(AuthError::Malformed)
        );
        assert_eq!(
            respond(Pending::LoginUser, "not base64!"),
            Err(AuthError::BadBase64)
        );
    }

    #[test]
    fn a_long_initial_response_decodes() {
        // A 9000-octet password: well inside the 12 KiB AUTH line.
        let pw = "p".repeat(9000);
        let ir = b64(format!("\0a@b\0{pw}").as_bytes());
        assert!(ir.len() + "AUTH PLAIN \r\n".len() < MAX_AUTH_LINE);
        assert_eq!(begin(&format!("PLAIN {ir}")), Ok(creds("a@b", &pw)));
    }

    #[test]
    fn the_password_is_not_in_debug_output() {
        let c = Credentials {
            login: "a@b".into(),
            password: b"hunter2".to_vec(),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
