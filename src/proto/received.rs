//! The `Received:` trace header (RFC 5321 4.4) mxring prepends to each message,
//! with the TLS protocol and cipher when the message came over TLS (RFC 3848 names).

use std::io::Write;
use std::net::IpAddr;
use std::time::SystemTime;

use super::envelope::TlsFacts;

pub struct ReceivedFacts<'a> {
    pub helo: &'a str,
    pub client_ip: IpAddr,
    pub hostname: &'a str,
    pub esmtp: bool,
    pub tls: Option<&'a TlsFacts>,
    /// The client authenticated (SMTP AUTH): "ESMTPSA" (RFC 3848).
    pub authenticated: bool,
    /// The login, when `[auth] show_login_in_received` asks for it.
    pub shown_login: Option<&'a str>,
    /// The queue id, as the queue writes it.
    pub id: &'a str,
    /// The recipient, named only when there is exactly one (privacy of the others).
    pub single_recipient: Option<&'a str>,
    pub now: SystemTime,
}

/// RFC 5322 date-time, e.g. `Mon, 23 Nov 2026 18:42:36 +0000`.
pub fn rfc5322_date(t: SystemTime) -> String {
    let dt: chrono::DateTime<chrono::Utc> = t.into();
    dt.format("%a, %d %b %Y %H:%M:%S +0000").to_string()
}

pub fn write_received(out: &mut Vec<u8>, f: &ReceivedFacts) {
    let protocol = match (f.esmtp, f.tls.is_some(), f.authenticated) {
        (false, false, _) => "SMTP",
        (false, true, _) => "SMTPS",
        (true, false, false) => "ESMTP",
        (true, true, false) => "ESMTPS",
        (true, false, true) => "ESMTPA",
        (true, true, true) => "ESMTPSA",
    };
    let ip = crate::config::canonical_ip(f.client_ip);
    let helo: String = f
        .helo
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(255)
        .collect();
    let _ = write!(
        out,
        "Received: from {helo} ([{ip}])\r\n\tby {} (mxring) with {protocol} id {}",
        f.hostname, f.id
    );
    if let Some(tls) = f.tls {
        let _ = write!(
            out,
            "\r\n\t(using {} with cipher {})",
            tls.version, tls.cipher
        );
    }
    if let Some(login) = f.shown_login {
        let login: String = login.chars().filter(|c| c.is_ascii_graphic()).collect();
        let _ = write!(out, "\r\n\t(Authenticated sender: {login})");
    }
    if let Some(rcpt) = f.single_recipient {
        let _ = write!(out, "\r\n\tfor <{rcpt}>");
    }
    let _ = write!(out, ";\r\n\t{}\r\n", rfc5322_date(f.now));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn received_names_tls_and_single_recipient() {
        let tls = TlsFacts {
            version: "TLSv1.3".into(),
            cipher: "TLS_AES_128_GCM_SHA256".into(),
            dane: None,
        };
        let mut out = Vec::new();
        write_received(
            &mut out,
            &ReceivedFacts {
                helo: "client.example",
                client_ip: "::ffff:192.0.2.7".parse().unwrap(),
                hostname: "mx.example.net",
                esmtp: true,
                tls: Some(&tls),
                authenticated: false,
                shown_login: None,
                id: "0000000000ABCDEF",
                single_recipient: Some("a@b.example"),
                now: SystemTime::UNIX_EPOCH,
            },
        );
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "Received: from client.example ([192.0.2.7])\r\n\tby mx.example.net (mxring) with ESMTPS id 0000000000ABCDEF\r\n\t(using TLSv1.3 with cipher TLS_AES_128_GCM_SHA256)\r\n\tfor <a@b.example>;\r\n\tThu, 01 Jan 1970 00:00:00 +0000\r\n"
        );
    }

    #[test]
    fn authenticated_sessions_say_esmtpsa_and_name_the_login_only_when_asked() {
        let tls = TlsFacts {
            version: "TLSv1.3".into(),
            cipher: "TLS_AES_128_GCM_SHA256".into(),
            dane: None,
        };
        let run = |shown: Option<&str>| {
            let mut out = Vec::new();
            write_received(
                &mut out,
                &ReceivedFacts {
                    helo: "laptop",
                    client_ip: "192.0.2.7".parse().unwrap(),
                    hostname: "mx.example.net",
                    esmtp: true,
                    tls: Some(&tls),
                    authenticated: true,
                    shown_login: shown,
                    id: "0000000000000001",
                    single_recipient: None,
                    now: SystemTime::UNIX_EPOCH,
                },
            );
            String::from_utf8(out).unwrap()
        };
        let hidden = run(None);
        assert!(hidden.contains("with ESMTPSA id"), "{hidden}");
        assert!(!hidden.contains("Authenticated"), "{hidden}");
        let shown = run(Some("alice@a.test"));
        assert!(
            shown.contains("\r\n\t(Authenticated sender: alice@a.test)"),
            "{shown}"
        );
    }
}
