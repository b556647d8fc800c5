//! Transcripts of submission sessions: AUTH offered only under TLS, 538 before it,
//! 530 for MAIL before AUTH where required, sender ownership, relaying as an
//! authenticated user, ESMTPSA, and the 12 KiB AUTH line. Each transcript is also
//! fed byte by byte and split at every position.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine;

use super::auth::AuthOutcome;
use super::server::*;
use super::TlsFacts;
use crate::config::{self, ListenerAuth, ListenerTls, TlsVersion};
use crate::policy::{AddressMatcher, Policy};
use crate::queue::IdSource;

fn config(listener_tls: ListenerTls, mode: ListenerAuth, show_login: bool) -> Arc<SessionConfig> {
    let text = "[[listener]]\naddress = \"127.0.0.1:0\"\n[relay]\nnetworks = []\ndomains = [\"local.example\"]\n";
    let c = config::load_str(text, "test").unwrap();
    Arc::new(SessionConfig {
        hostname: "mx.test".into(),
        max_message_size: 100_000,
        max_recipients: 3,
        max_errors: 50,
        listener: "submission".into(),
        listener_tls,
        policy: Arc::new(Policy::from_config(&c, "test")),
        postmaster: "postmaster@mx.test".into(),
        auth: SubmissionConfig {
            mode,
            show_login_in_received: show_login,
        },
    })
}

/// The driver's stand-in check: one account, alice@a.test with password "right",
/// who also owns *@alice.example.
fn check(login: &str, password: &[u8]) -> AuthOutcome {
    if login.eq_ignore_ascii_case("alice@a.test") && password == b"right" {
        AuthOutcome::Accepted {
            login: "alice@a.test".into(),
            addresses: vec![AddressMatcher::parse("*@alice.example")],
        }
    } else {
        AuthOutcome::Rejected
    }
}

struct Run {
    output: String,
    logins: Vec<String>,
    messages: Vec<(Option<String>, Vec<u8>)>,
}

fn drive(cfg: &Arc<SessionConfig>, chunks: &[&[u8]]) -> Run {
    let ip: IpAddr = "198.51.100.7".parse().unwrap();
    let mut s = ServerSession::new(cfg.clone(), ip, IdSource::new(1, SystemTime::UNIX_EPOCH, 0));
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let mut out = Vec::new();
    s.greeting(&mut out);
    if cfg.listener_tls == ListenerTls::Implicit {
        s.tls_established(TlsVersion::Tls13, facts());
    }
    let mut pending = Vec::new();
    let mut run = Run {
        output: String::new(),
        logins: vec![],
        messages: vec![],
    };
    'chunks: for chunk in chunks {
        pending.extend_from_slice(chunk);
        loop {
            let fed = s.feed(&pending, now, &mut out);
            pending.drain(..fed.consumed);
            match fed.event {
                None => break,
                Some(Event::StartTls) => {
                    pending.clear();
                    s.tls_established(TlsVersion::Tls13, facts());
                }
                Some(Event::Authenticate) => {
                    let c = s.take_credentials().unwrap();
                    run.logins.push(c.login.clone());
                    s.auth_checked(check(&c.login, &c.password), &mut out);
                }
                Some(Event::Message(m)) => {
                    let (id, body) = (m.id, m.body);
                    run.messages.push((s.login().map(str::to_string), body));
                    s.message_stored(Ok(id), &mut out);
                }
                Some(Event::Close) => break 'chunks,
            }
        }
    }
    run.output = String::from_utf8(out).unwrap();
    run
}

fn facts() -> TlsFacts {
    TlsFacts {
        version: "TLSv1.3".into(),
        cipher: "TLS_AES_128_GCM_SHA256".into(),
        dane: None,
    }
}

fn transcript(cfg: &Arc<SessionConfig>, input: &[u8]) -> Run {
    let whole = drive(cfg, &[input]);
    let bytes: Vec<&[u8]> = input.chunks(1).collect();
    assert_eq!(
        drive(cfg, &bytes).output,
        whole.output,
        "byte-at-a-time differs"
    );
    for cut in 0..input.len() {
        let split = drive(cfg, &[&input[..cut], &input[cut..]]);
        assert_eq!(split.output, whole.output, "split at {cut} differs");
    }
    whole
}

fn codes(output: &str) -> Vec<&str> {
    output
        .lines()
        .filter(|l| l.as_bytes().get(3) == Some(&b' '))
        .map(|l| &l[..3])
        .collect()
}

fn plain(login: &str, password: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("\0{login}\0{password}"))
}

#[test]
fn auth_is_offered_only_under_tls_and_refused_before_it() {
    let cfg = config(ListenerTls::Required, ListenerAuth::Offered, false);
    // What follows STARTTLS in the same flight is dropped, so it comes apart.
    let before = format!(
        "EHLO laptop\r\nAUTH PLAIN {}\r\nSTARTTLS\r\n",
        plain("alice@a.test", "right")
    );
    transcript(&cfg, before.as_bytes());
    let run = drive(&cfg, &[before.as_bytes(), b"EHLO laptop\r\nQUIT\r\n"]);
    assert_eq!(
        codes(&run.output),
        ["220", "250", "538", "220", "250", "221"]
    );
    assert!(run
        .output
        .contains("538 5.7.11 Encryption required for requested authentication mechanism\r\n"));
    let (before, after) = run
        .output
        .split_once("220 2.0.0 Ready to start TLS")
        .unwrap();
    assert!(!before.contains("AUTH PLAIN"), "{before}");
    assert!(
        after.contains("250-AUTH PLAIN LOGIN\r\n") || after.contains("250 AUTH PLAIN LOGIN\r\n"),
        "{after}"
    );
    assert!(run.logins.is_empty(), "no password was checked before TLS");
}

#[test]
fn plain_and_login_succeed_or_fail_with_535() {
    let cfg = config(ListenerTls::Implicit, ListenerAuth::Offered, false);
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let input = format!(
        "EHLO laptop\r\nAUTH PLAIN {}\r\nAUTH LOGIN\r\n{}\r\n{}\r\nAUTH PLAIN\r\n{}\r\nAUTH PLAIN {}\r\n",
        plain("alice@a.test", "wrong"),
        b64("alice@a.test"),
        b64("wrong too"),
        plain("bob@a.test", "right"),
        plain("Alice@A.test", "right"),
    );
    let run = transcript(&cfg, input.as_bytes());
    assert_eq!(
        codes(&run.output),
        ["220", "250", "535", "334", "334", "535", "334", "535", "235"]
    );
    assert!(run
        .output
        .contains("334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n"));
    assert!(run
        .output
        .contains("535 5.7.8 Authentication credentials invalid\r\n"));
    assert!(
        run.output.contains("334 \r\n"),
        "PLAIN without initial response: empty challenge"
    );
    assert!(run
        .output
        .ends_with("235 2.7.0 Authentication successful\r\n"));
    assert_eq!(run.logins.len(), 4);
}

#[test]
fn a_second_auth_a_cancel_and_a_bad_mechanism() {
    let cfg = config(ListenerTls::Implicit, ListenerAuth::Offered, false);
    let input = format!(
        "EHLO laptop\r\nAUTH CRAM-MD5\r\nAUTH LOGIN\r\n*\r\nAUTH PLAIN !!!\r\nAUTH PLAIN {}\r\nAUTH PLAIN {}\r\n",
        plain("alice@a.test", "right"),
        plain("alice@a.test", "right"),
    );
    let run = transcript(&cfg, input.as_bytes());
    assert_eq!(
        codes(&run.output),
        ["220", "250", "504", "334", "501", "501", "235", "503"]
    );
    assert!(run.output.contains("501 5.0.0 Authentication aborted"));
    assert!(run.output.contains("501 5.5.2 Cannot decode response"));
    assert!(run
        .output
        .contains("503 5.5.1 Error: already authenticated"));
}

#[test]
fn auth_on_a_listener_without_it_is_not_enabled() {
    let cfg = config(ListenerTls::Implicit, ListenerAuth::Off, false);
    let input = format!(
        "EHLO c\r\nAUTH PLAIN {}\r\n",
        plain("alice@a.test", "right")
    );
    let run = transcript(&cfg, input.as_bytes());
    assert!(!run.output.contains("AUTH PLAIN LOGIN"));
    assert!(run
        .output
        .contains("503 5.5.1 Error: authentication not enabled"));
    assert!(run.logins.is_empty());
}

#[test]
fn required_auth_refuses_mail_before_it_then_relays_as_the_user() {
    let cfg = config(ListenerTls::Implicit, ListenerAuth::Required, false);
    let input = format!(
        "EHLO laptop\r\nMAIL FROM:<alice@a.test>\r\nAUTH PLAIN {}\r\n\
         MAIL FROM:<mallory@bank.example>\r\nMAIL FROM:<ceo@alice.example>\r\nRCPT TO:<x@far.example>\r\nDATA\r\nSubject: hi\r\n\r\nbody\r\n.\r\n\
         MAIL FROM:<>\r\nRSET\r\nMAIL FROM:<ALICE@a.test> AUTH=<>\r\nQUIT\r\n",
        plain("alice@a.test", "right")
    );
    let run = transcript(&cfg, input.as_bytes());
    assert_eq!(
        codes(&run.output),
        [
            "220", "250", "530", "235", "553", "250", "250", "354", "250", "250", "250", "250",
            "221"
        ]
    );
    assert!(run.output.contains("530 5.7.0 Authentication required\r\n"));
    assert!(run.output.contains(
        "553 5.7.1 <mallory@bank.example>: Sender address rejected: not owned by user alice@a.test\r\n"
    ));
    let (login, body) = &run.messages[0];
    assert_eq!(login.as_deref(), Some("alice@a.test"));
    let body = String::from_utf8_lossy(body);
    assert!(body.contains("(mxring) with ESMTPSA id "), "{body}");
    assert!(
        !body.contains("alice@a.test"),
        "the login is not shown: {body}"
    );
}

#[test]
fn without_auth_the_relay_rules_still_hold_and_received_can_name_the_login() {
    let cfg = config(ListenerTls::Implicit, ListenerAuth::Offered, true);
    let input = format!(
        "EHLO laptop\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<x@far.example>\r\nRSET\r\n\
         AUTH PLAIN {}\r\nMAIL FROM:<alice@a.test>\r\nRCPT TO:<x@far.example>\r\nDATA\r\nhi\r\n.\r\n",
        plain("alice@a.test", "right")
    );
    let run = transcript(&cfg, input.as_bytes());
    assert_eq!(
        codes(&run.output),
        ["220", "250", "250", "554", "250", "235", "250", "250", "354", "250"]
    );
    let body = String::from_utf8_lossy(&run.messages[0].1);
    assert!(
        body.contains("\r\n\t(Authenticated sender: alice@a.test)\r\n"),
        "{body}"
    );
}

#[test]
fn an_auth_line_may_be_12_kib_and_not_more() {
    let cfg = config(ListenerTls::Implicit, ListenerAuth::Offered, false);
    // A long password: the line is well over the 512 octets of a command.
    let long = plain("alice@a.test", &"x".repeat(8000));
    let input = format!("EHLO laptop\r\nAUTH PLAIN {long}\r\nNOOP\r\n");
    assert!(input.len() > 10_000);
    let run = drive(&cfg, &[input.as_bytes()]);
    assert_eq!(codes(&run.output), ["220", "250", "535", "250"]);
    // The same as a response line after the 334.
    let input = format!("EHLO laptop\r\nAUTH PLAIN\r\n{long}\r\nNOOP\r\n");
    let run = drive(&cfg, &[input.as_bytes()]);
    assert_eq!(codes(&run.output), ["220", "250", "334", "535", "250"]);
    // Past 12288 octets the line is refused, and what follows is read as commands.
    let huge = plain("alice@a.test", &"x".repeat(12_000));
    let input = format!("EHLO laptop\r\nAUTH PLAIN {huge}\r\nNOOP\r\n");
    let run = drive(&cfg, &[input.as_bytes()]);
    assert_eq!(codes(&run.output), ["220", "250", "500", "250"]);
    assert!(run.logins.is_empty());
    // Other commands keep the 512-octet limit on an AUTH listener.
    let input = format!("NOOP {}\r\nNOOP\r\n", "a".repeat(600));
    let run = drive(&cfg, &[input.as_bytes()]);
    assert_eq!(codes(&run.output), ["220", "500", "250"]);
}

#[test]
fn commands_pipelined_behind_auth_wait_for_its_answer() {
    let cfg = config(ListenerTls::Implicit, ListenerAuth::Required, false);
    let input = format!(
        "EHLO laptop\r\nAUTH PLAIN {}\r\nMAIL FROM:<alice@a.test>\r\nRCPT TO:<x@far.example>\r\n",
        plain("alice@a.test", "right")
    );
    let run = transcript(&cfg, input.as_bytes());
    assert_eq!(codes(&run.output), ["220", "250", "235", "250", "250"]);
}
