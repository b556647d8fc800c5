//! check-tls's reading of what delivery's connection saw: every command and reply
//! as a transcript line, each followed by the finding it shows (allowed to connect,
//! hello, TLS on offer, the handshake with each certificate checked, the envelope),
//! and the host's verdict built on the way.

use std::collections::VecDeque;
use std::path::Path;
use std::time::Instant;

use super::{certs, Check, Dir, Verdict};
use crate::dane::DaneState;
use crate::delivery::observe::{Observed, Seen};
use crate::proto::client::Capabilities;
use crate::proto::reply::ParsedReply;
use crate::proto::TlsFacts;
use crate::queue::status::Failure;

/// What check-tls knows of the host besides the conversation.
pub(super) struct HostFacts<'a> {
    pub host: &'a str,
    pub dane: &'a DaneState,
    pub ca_file: Option<&'a Path>,
}

/// The transcript lines of one host's conversation, and its verdict. `ended` is
/// delivery's failure when the session stopped early.
pub(super) fn render(
    c: &mut Check,
    host: &HostFacts,
    seen: &[Observed],
    ended: Option<&Failure>,
) -> Verdict {
    let mut r = Reading {
        c,
        host,
        at: Instant::now(),
        verdict: Verdict::default(),
        greeted: false,
        asked: VecDeque::new(),
        certificate_verified: false,
        handshake_failed: false,
    };
    for o in seen {
        r.step(o);
    }
    if let Some(f) = ended {
        r.ended(f);
    }
    r.verdict
}

struct Reading<'c, 'h> {
    c: &'c mut Check,
    host: &'h HostFacts<'h>,
    /// When the event being read happened; its findings carry the same time.
    at: Instant,
    verdict: Verdict,
    greeted: bool,
    /// Verbs sent and not yet answered, oldest first.
    asked: VecDeque<String>,
    /// The chain and the host name both verified.
    certificate_verified: bool,
    handshake_failed: bool,
}

impl Reading<'_, '_> {
    fn info(&mut self, text: impl Into<String>) {
        self.c.note_at(self.at, Dir::Info, text);
    }

    fn step(&mut self, o: &Observed) {
        self.at = o.at;
        match &o.seen {
            Seen::Connected => self.info("Connected to server"),
            Seen::Sent { line, tls } => {
                let verb = line.split(' ').next().unwrap_or("").to_ascii_uppercase();
                self.asked.push_back(verb);
                let dir = if *tls { Dir::SendTls } else { Dir::Send };
                self.c.note_at(o.at, dir, line.as_str());
            }
            Seen::Received { reply, tls } => {
                let dir = if *tls { Dir::RecvTls } else { Dir::Recv };
                self.c.note_at(o.at, dir, reply_line(reply));
                self.answered(reply, *tls);
            }
            Seen::TlsUp { facts, chain } => self.tls_up(facts, chain),
            Seen::TlsFailed { reason } => {
                self.handshake_failed = true;
                self.info(format!("TLS handshake failed: {reason}"));
                self.info("At level may, delivery would retry this host without TLS");
            }
        }
    }

    /// The finding a reply shows, by the command it answers.
    fn answered(&mut self, reply: &ParsedReply, tls: bool) {
        if !std::mem::replace(&mut self.greeted, true) {
            return self.info(if reply.code == 220 {
                "We are allowed to connect"
            } else {
                "Server refused the connection"
            });
        }
        let verb = self.asked.pop_front().unwrap_or_default();
        let positive = reply.is_positive();
        match verb.as_str() {
            "EHLO" | "HELO" => self.hello(&verb, reply, tls),
            "STARTTLS" if reply.code == 220 => self.info("STARTTLS command works on this server"),
            "STARTTLS" => self.info("STARTTLS command refused"),
            "MAIL" => self.info(if positive {
                "Sender is OK"
            } else {
                "Sender refused"
            }),
            "RCPT" => self.info(if positive {
                "Recipient OK"
            } else {
                "Recipient refused"
            }),
            _ => {}
        }
    }

    fn hello(&mut self, verb: &str, reply: &ParsedReply, tls: bool) {
        if reply.code != 250 {
            // ClientSession answers a permanent refusal of EHLO with HELO.
            return self.info(if verb == "EHLO" && reply.is_permanent() {
                "EHLO refused: trying HELO, as delivery does"
            } else if verb == "EHLO" {
                "EHLO refused"
            } else {
                "HELO refused"
            });
        }
        if tls {
            self.info("TLS successfully started on this server");
            self.verdict.encrypt = true;
            self.verdict.verify = self.certificate_verified;
            return;
        }
        self.info("We can use this server");
        self.verdict.may = true;
        self.verdict.dane_state = Some(self.host.dane.clone());
        self.info(if verb == "HELO" {
            "TLS is not an option on this server: it answered HELO, which announces no extensions"
        } else if Capabilities::parse(reply).starttls {
            "TLS is an option on this server"
        } else {
            "TLS is not an option on this server"
        });
    }

    /// What was negotiated, each certificate, and whether chain, name and DANE verify.
    fn tls_up(&mut self, facts: &TlsFacts, chain: &[Vec<u8>]) {
        self.info(format!("Protocol: {}", facts.version));
        self.info(format!("Cipher in use: {}", facts.cipher));
        self.c.report.tls = Some(facts.clone());
        self.info("Connection converted to TLS");
        for (i, der) in chain.iter().enumerate() {
            let n = chain.len();
            self.info(format!(
                "Certificate {} of {n} in chain: {}",
                i + 1,
                certs::describe(der)
            ));
        }
        let host = self.host.host;
        let check = certs::verify(chain, host, self.host.ca_file);
        match &check.chain {
            Ok(()) => self.info("Cert VALIDATED: the chain ends at a trusted root"),
            Err(e) => {
                self.info(format!("Cert NOT VALIDATED: {e}"));
                self.info("So email is encrypted but the domain is not verified");
            }
        }
        match &check.host {
            Ok(()) => self.info(format!("Cert Hostname VERIFIED ({host})")),
            Err(names) => {
                self.info(format!("Cert Hostname DOES NOT VERIFY ({host} != {names})"));
                self.info("So email is encrypted but the host is not verified");
            }
        }
        self.certificate_verified = check.chain.is_ok() && check.host.is_ok();
        self.verdict.dane_matched = self.dane_check(chain);
    }

    /// Which certificate matches which TLSA record, and the RFC 7672 verdict.
    fn dane_check(&mut self, chain: &[Vec<u8>]) -> bool {
        let DaneState::Usable(set) = self.host.dane else {
            return false;
        };
        for r in &set.records {
            let hits: Vec<String> = chain
                .iter()
                .enumerate()
                .filter(|(_, c)| crate::dane::matches(r, c))
                .map(|(i, _)| format!("certificate {}", i + 1))
                .collect();
            self.info(if hits.is_empty() {
                format!(
                    "TLSA {r} ({}) matches no certificate in the chain",
                    r.usage_name()
                )
            } else {
                format!("TLSA {r} ({}) matches {}", r.usage_name(), hits.join(", "))
            });
        }
        let ders: Vec<rustls::pki_types::CertificateDer> = chain
            .iter()
            .map(|c| rustls::pki_types::CertificateDer::from(c.clone()))
            .collect();
        match crate::tls::verify_dane_chain(set, &ders, rustls::pki_types::UnixTime::now()) {
            Ok(m) => {
                self.info(format!("DANE VERIFIED: {m}"));
                true
            }
            Err(e) => {
                self.info(format!("DANE NOT VERIFIED: {e}"));
                self.info("So delivery at level dane or dane-only would be deferred (4.7.5)");
                false
            }
        }
    }

    /// Delivery's own words for why the session stopped, unless a line said it.
    fn ended(&mut self, f: &Failure) {
        if self.handshake_failed && matches!(f, Failure::Tls { .. }) {
            return;
        }
        self.at = Instant::now();
        self.info(format!("Delivery would stop here: {}", f.text()));
    }
}

/// A reply on one line: `250-first 250-second 250 last`.
fn reply_line(r: &ParsedReply) -> String {
    let last = r.lines.len().saturating_sub(1);
    let lines = r.lines.iter().enumerate().map(|(i, l)| {
        let sep = if i == last { ' ' } else { '-' };
        format!("{}{sep}{l}", r.code)
    });
    lines.collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checktls::Report;

    fn reply(code: u16, lines: &[&str]) -> Seen {
        Seen::Received {
            reply: ParsedReply {
                code,
                lines: lines.iter().map(|l| l.to_string()).collect(),
            },
            tls: false,
        }
    }

    fn sent(line: &str) -> Seen {
        Seen::Sent {
            line: line.into(),
            tls: false,
        }
    }

    fn read(seen: Vec<Seen>, ended: Option<Failure>) -> (String, Verdict) {
        let start = Instant::now();
        let mut c = Check {
            report: Report::default(),
            start,
            sts: None,
        };
        let dane = DaneState::NotApplicable("the target is an address".into());
        let host = HostFacts {
            host: "192.0.2.1",
            dane: &dane,
            ca_file: None,
        };
        let seen: Vec<Observed> = seen
            .into_iter()
            .map(|seen| Observed { at: start, seen })
            .collect();
        let verdict = render(&mut c, &host, &seen, ended.as_ref());
        (c.report.text(), verdict)
    }

    #[test]
    fn a_helo_session_satisfies_may_and_says_why_there_is_no_tls() {
        let (text, v) = read(
            vec![
                Seen::Connected,
                reply(220, &["old.test"]),
                sent("EHLO me.test"),
                reply(500, &["5.5.1 what?"]),
                sent("HELO me.test"),
                reply(250, &["old.test"]),
                sent("QUIT"),
                reply(221, &["bye"]),
            ],
            None,
        );
        assert_eq!(
            text,
            "[000.000]     Connected to server
[000.000] <-- 220 old.test
[000.000]     We are allowed to connect
[000.000] --> EHLO me.test
[000.000] <-- 500 5.5.1 what?
[000.000]     EHLO refused: trying HELO, as delivery does
[000.000] --> HELO me.test
[000.000] <-- 250 old.test
[000.000]     We can use this server
[000.000]     TLS is not an option on this server: it answered HELO, which announces no extensions
[000.000] --> QUIT
[000.000] <-- 221 bye
"
        );
        assert!(v.may && !v.encrypt && v.dane_state.is_some());
    }

    #[test]
    fn a_failed_handshake_is_told_once_and_other_failures_in_delivery_words() {
        let handshake = Failure::Tls {
            problem: crate::queue::status::TlsProblem::Handshake,
            text: "Cannot start TLS with x: handshake failure: no".into(),
            required_by: None,
        };
        let (text, v) = read(
            vec![
                reply(220, &["mx"]),
                sent("EHLO me"),
                reply(250, &["mx", "STARTTLS"]),
                sent("STARTTLS"),
                reply(220, &["go"]),
                Seen::TlsFailed {
                    reason: "the server refused our TLS versions".into(),
                },
            ],
            Some(handshake),
        );
        assert!(text.contains("TLS is an option on this server"), "{text}");
        assert!(
            text.contains("STARTTLS command works on this server"),
            "{text}"
        );
        assert!(
            text.ends_with("TLS handshake failed: the server refused our TLS versions\n[000.000]     At level may, delivery would retry this host without TLS\n"),
            "{text}"
        );
        assert!(v.may && !v.encrypt);
        let refused = Failure::Connect {
            text: "connect to x[192.0.2.1]:25: Connection refused".into(),
        };
        let (text, v) = read(vec![], Some(refused));
        assert!(
            text.ends_with(
                "Delivery would stop here: 4.4.1 connect to x[192.0.2.1]:25: Connection refused\n"
            ),
            "{text}"
        );
        assert!(!v.may);
    }
}
