//! Every reply the server session sends, in one place: what a client reads, and
//! what the tests and other MTAs' logs quote.

use std::borrow::Cow;

use super::super::auth::AuthError;
use super::super::data::DataError;
use super::super::reply::{reply, reply_lines};
use crate::policy::TlsShortfall;

/// One reply line: code, enhanced status code (empty for none) and text.
pub(super) struct Reply {
    pub code: u16,
    pub enhanced: &'static str,
    pub text: Cow<'static, str>,
}

impl Reply {
    const fn fixed(code: u16, enhanced: &'static str, text: &'static str) -> Reply {
        Reply {
            code,
            enhanced,
            text: Cow::Borrowed(text),
        }
    }

    fn formatted(code: u16, enhanced: &'static str, text: String) -> Reply {
        Reply {
            code,
            enhanced,
            text: Cow::Owned(text),
        }
    }

    pub fn write(&self, out: &mut Vec<u8>) {
        reply(out, self.code, self.enhanced, &self.text);
    }
}

// Session
pub(super) fn greeting(host: &str) -> Reply {
    Reply::formatted(220, "", format!("{host} ESMTP mxring"))
}
pub(super) fn too_many_errors(host: &str) -> Reply {
    Reply::formatted(421, "4.7.0", format!("{host} Error: too many errors"))
}
pub(super) fn timed_out(host: &str) -> Reply {
    Reply::formatted(421, "4.4.2", format!("{host} Error: timeout exceeded"))
}
pub(super) fn body_too_slow(host: &str) -> Reply {
    Reply::formatted(
        421,
        "4.4.2",
        format!("{host} Error: message not received within the time allowed, closing"),
    )
}
pub(super) fn shutting_down(host: &str) -> Reply {
    Reply::formatted(
        421,
        "4.3.2",
        format!("{host} Service shutting down, try again later"),
    )
}

// Reading command lines
pub(super) const LINE_TOO_LONG: Reply = Reply::fixed(500, "5.5.2", "Error: line too long");
pub(super) const BARE_LF: Reply = Reply::fixed(500, "5.5.2", "Error: bare <LF> received");
pub(super) const BARE_CR: Reply = Reply::fixed(500, "5.5.2", "Error: bare <CR> received");
pub(super) const NUL_IN_COMMAND: Reply =
    Reply::fixed(500, "5.5.2", "Error: NUL character in command");
pub(super) const UNKNOWN_COMMAND: Reply =
    Reply::fixed(500, "5.5.2", "Error: command not recognized");
pub(super) const COMMAND_NOT_UTF8: Reply =
    Reply::fixed(500, "5.5.2", "Error: command is not valid UTF-8");
pub(super) fn syntax(usage: &str) -> Reply {
    Reply::formatted(501, "5.5.4", format!("Syntax: {usage}"))
}

// Commands outside a transaction
pub(super) const OK: Reply = Reply::fixed(250, "2.0.0", "Ok");
pub(super) fn helo(host: &str) -> Reply {
    Reply::formatted(250, "", host.to_string())
}
pub(super) const VRFY: Reply = Reply::fixed(
    252,
    "2.0.0",
    "Cannot VRFY user, but will accept message and attempt delivery",
);
pub(super) const HELP: Reply = Reply::fixed(
    214,
    "2.0.0",
    "See RFC 5321; commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP STARTTLS",
);
pub(super) const BYE: Reply = Reply::fixed(221, "2.0.0", "Bye");
pub(super) const TLS_ALREADY_ACTIVE: Reply =
    Reply::fixed(503, "5.5.1", "Error: TLS already active");
pub(super) const NOT_IMPLEMENTED: Reply =
    Reply::fixed(502, "5.5.1", "Error: command not implemented");
pub(super) const START_TLS: Reply = Reply::fixed(220, "2.0.0", "Ready to start TLS");

/// The EHLO reply: our name, then the extensions this session offers.
pub(super) fn ehlo(out: &mut Vec<u8>, host: &str, max_size: u64, extra: &[&str]) {
    let size = format!("SIZE {max_size}");
    let mut lines = vec![
        host,
        "PIPELINING",
        size.as_str(),
        "8BITMIME",
        "SMTPUTF8",
        "ENHANCEDSTATUSCODES",
        "DSN",
        "CHUNKING",
    ];
    lines.extend_from_slice(extra);
    reply_lines(out, 250, &lines);
}

// AUTH
pub(super) const AUTH_NOT_ENABLED: Reply =
    Reply::fixed(503, "5.5.1", "Error: authentication not enabled");
pub(super) const AUTH_NEEDS_TLS: Reply = Reply::fixed(
    538,
    "5.7.11",
    "Encryption required for requested authentication mechanism",
);
pub(super) const EHLO_FIRST: Reply = Reply::fixed(503, "5.5.1", "Error: send EHLO first");
pub(super) const ALREADY_AUTHENTICATED: Reply =
    Reply::fixed(503, "5.5.1", "Error: already authenticated");
pub(super) const AUTH_IN_TRANSACTION: Reply =
    Reply::fixed(503, "5.5.1", "Error: MAIL transaction in progress");
pub(super) fn auth_challenge(challenge: &'static str) -> Reply {
    Reply::fixed(334, "", challenge)
}
pub(super) fn auth_refused(e: AuthError) -> Reply {
    let (code, enhanced, text) = e.reply();
    Reply::fixed(code, enhanced, text)
}
pub(super) const AUTH_ACCEPTED: Reply = Reply::fixed(235, "2.7.0", "Authentication successful");
pub(super) const AUTH_REJECTED: Reply =
    Reply::fixed(535, "5.7.8", "Authentication credentials invalid");
pub(super) const AUTH_UNAVAILABLE: Reply =
    Reply::fixed(454, "4.7.0", "Temporary authentication failure");

// MAIL and RCPT
pub(super) const HELO_FIRST: Reply = Reply::fixed(503, "5.5.1", "Error: send HELO/EHLO first");
pub(super) const STARTTLS_FIRST: Reply =
    Reply::fixed(530, "5.7.0", "Must issue a STARTTLS command first");
pub(super) const AUTH_REQUIRED: Reply = Reply::fixed(530, "5.7.0", "Authentication required");
pub(super) const NESTED_MAIL: Reply = Reply::fixed(503, "5.5.1", "Error: nested MAIL command");
pub(super) const BAD_SENDER: Reply = Reply::fixed(501, "5.1.7", "Bad sender address syntax");
pub(super) fn bad_parameters(why: String) -> Reply {
    Reply::formatted(555, "5.5.4", why)
}
pub(super) const NEEDS_SMTPUTF8: Reply =
    Reply::fixed(553, "5.6.7", "Non-ASCII address requires SMTPUTF8");
pub(super) fn sender_not_owned(sender: &str, login: &str) -> Reply {
    Reply::formatted(
        553,
        "5.7.1",
        format!("<{sender}>: Sender address rejected: not owned by user {login}"),
    )
}
pub(super) const REQUIRETLS_WITHOUT_TLS: Reply = Reply::fixed(
    530,
    "5.7.10",
    "REQUIRETLS needs a TLS session: issue STARTTLS first",
);
pub(super) const TOO_BIG: Reply = Reply::fixed(552, "5.3.4", "Message size exceeds fixed limit");
/// A policy rule asks for TLS (or a newer version) than this session has;
/// `subject` names the recipient when a RCPT rule decided.
pub(super) fn tls_shortfall(
    s: TlsShortfall,
    have: Option<crate::config::TlsVersion>,
    subject: &str,
) -> Reply {
    let text = match s {
        TlsShortfall::NoTls => s.reply_text(None),
        TlsShortfall::TooOld { .. } => format!("{subject}{}", s.reply_text(have)),
    };
    Reply::formatted(530, "5.7.0", text)
}
pub(super) const SENDER_OK: Reply = Reply::fixed(250, "2.1.0", "Ok");
pub(super) const NEED_MAIL: Reply = Reply::fixed(503, "5.5.1", "Error: need MAIL command");
pub(super) const RCPT_AFTER_BDAT: Reply = Reply::fixed(503, "5.5.1", "Error: RCPT after BDAT");
pub(super) const BAD_RECIPIENT: Reply = Reply::fixed(501, "5.1.3", "Bad recipient address syntax");
pub(super) const TOO_MANY_RECIPIENTS: Reply =
    Reply::fixed(452, "4.5.3", "Error: too many recipients");
pub(super) fn relay_denied(address: &str) -> Reply {
    Reply::formatted(554, "5.7.1", format!("<{address}>: Relay access denied"))
}
pub(super) const RECIPIENT_OK: Reply = Reply::fixed(250, "2.1.5", "Ok");

// DATA and BDAT
pub(super) const NO_RECIPIENTS: Reply = Reply::fixed(554, "5.5.1", "Error: no valid recipients");
pub(super) const DATA_AFTER_BDAT: Reply = Reply::fixed(503, "5.5.1", "Error: DATA after BDAT");
pub(super) const DATA_GO_AHEAD: Reply = Reply::fixed(354, "", "End data with <CR><LF>.<CR><LF>");
pub(super) fn chunk_received(size: u64) -> Reply {
    Reply::formatted(250, "2.0.0", format!("{size} octets received"))
}
/// Why a complete body is refused.
pub(super) fn content_refused(e: DataError) -> Reply {
    match e {
        DataError::TooBig => TOO_BIG,
        DataError::LineTooLong => Reply::fixed(500, "5.5.6", "Error: message line too long"),
        DataError::BareLineEnding => {
            Reply::fixed(550, "5.6.0", "Error: bare <CR> or <LF> in message content")
        }
        DataError::Nul => Reply::fixed(550, "5.6.0", "Error: NUL character in message content"),
    }
}

// Storing
pub(super) fn queued_as(id: &str) -> Reply {
    Reply::formatted(250, "2.0.0", format!("Ok: queued as {id}"))
}
pub(super) const NO_SPACE: Reply = Reply::fixed(452, "4.3.1", "Insufficient system storage");
pub(super) const WRITE_ERROR: Reply = Reply::fixed(451, "4.3.0", "Error: queue file write error");
