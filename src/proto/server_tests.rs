//! Whole-transcript tests of the server session, each also fed one byte at a time
//! and split at every position: the replies must not depend on how input arrives.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::server::*;
use super::TlsFacts;
use crate::config::{self, ListenerTls, TlsVersion};
use crate::policy::Policy;
use crate::queue::IdSource;

fn config_with(listener_tls: ListenerTls, toml_extra: &str) -> Arc<SessionConfig> {
    let text = format!("[[listener]]\naddress = \"127.0.0.1:0\"\n[relay]\nnetworks = []\ndomains = [\"local.example\"]\n{toml_extra}");
    let c = config::load_str(&text, "test").unwrap();
    Arc::new(SessionConfig {
        hostname: "mx.test".into(),
        max_message_size: 10_000,
        max_recipients: 3,
        max_errors: 50,
        listener: "mx".into(),
        listener_tls,
        policy: Arc::new(Policy::from_config(&c, "test")),
        auth: Default::default(),
        postmaster: "postmaster@mx.test".into(),
    })
}

struct Run {
    output: String,
    messages: Vec<(crate::proto::Envelope, Vec<u8>)>,
    closed: bool,
}

/// Feed `chunks` in order, acting as a driver would: keep unconsumed bytes,
/// "complete" STARTTLS and store messages.
fn drive(cfg: &Arc<SessionConfig>, ip: &str, chunks: &[&[u8]]) -> Run {
    let ip: IpAddr = ip.parse().unwrap();
    let mut s = ServerSession::new(cfg.clone(), ip, IdSource::new(1, SystemTime::UNIX_EPOCH, 0));
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let mut out = Vec::new();
    s.greeting(&mut out);
    let mut pending: Vec<u8> = Vec::new();
    let mut messages = Vec::new();
    let mut closed = false;
    for chunk in chunks {
        pending.extend_from_slice(chunk);
        loop {
            let fed = s.feed(&pending, now, &mut out);
            pending.drain(..fed.consumed);
            match fed.event {
                None => break,
                Some(Event::StartTls) => {
                    pending.clear();
                    s.tls_established(
                        TlsVersion::Tls13,
                        TlsFacts {
                            version: "TLSv1.3".into(),
                            cipher: "TLS_AES_128_GCM_SHA256".into(),
                            dane: None,
                        },
                    );
                }
                Some(Event::Message(m)) => {
                    let (id, env, body) = (m.id, m.envelope, m.body);
                    s.message_stored(Ok(id), &mut out);
                    messages.push((env, body));
                }
                // These listeners offer no AUTH (see auth_tests.rs for those that do).
                Some(Event::Authenticate) => {
                    s.take_credentials().unwrap();
                    s.auth_checked(super::auth::AuthOutcome::Rejected, &mut out);
                }
                Some(Event::Close) => {
                    closed = true;
                    break;
                }
            }
        }
        if closed {
            break;
        }
    }
    Run {
        output: String::from_utf8(out).unwrap(),
        messages,
        closed,
    }
}

/// Feed whole, byte by byte, and split at every position; all must agree.
fn transcript(cfg: &Arc<SessionConfig>, ip: &str, input: &[u8]) -> Run {
    let whole = drive(cfg, ip, &[input]);
    let bytes: Vec<&[u8]> = input.chunks(1).collect();
    let one = drive(cfg, ip, &bytes);
    assert_eq!(one.output, whole.output, "byte-at-a-time differs");
    for cut in 0..input.len() {
        let split = drive(cfg, ip, &[&input[..cut], &input[cut..]]);
        assert_eq!(split.output, whole.output, "split at {cut} differs");
        assert_eq!(split.messages.len(), whole.messages.len());
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

#[test]
fn plain_transaction_queues_one_message_with_received_header() {
    let cfg = config_with(ListenerTls::Starttls, "");
    let input = b"EHLO client.example\r\nMAIL FROM:<a@sender.example> SIZE=100 RET=HDRS ENVID=e1\r\nRCPT TO:<bob@local.example> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob@local.example\r\nDATA\r\nSubject: hi\r\n\r\n..dot\r\n.\r\nQUIT\r\n";
    let run = transcript(&cfg, "192.0.2.1", input);
    assert_eq!(
        codes(&run.output),
        ["220", "250", "250", "250", "354", "250", "221"]
    );
    assert!(
        run.output.contains("250-STARTTLS\r\n")
            || run.output.contains("250 STARTTLS\r\n")
            || run.output.contains("STARTTLS")
    );
    assert!(run.output.contains("250 2.0.0 Ok: queued as "));
    assert!(run.closed);
    let (env, body) = &run.messages[0];
    assert_eq!(env.sender, "a@sender.example");
    assert_eq!(
        env.recipients[0].notify.map(|n| n.to_string()).as_deref(),
        Some("SUCCESS,FAILURE")
    );
    assert_eq!(
        env.recipients[0].orcpt.as_deref(),
        Some("rfc822;bob@local.example")
    );
    assert_eq!(env.envid.as_deref(), Some("e1"));
    assert_eq!(env.helo, "client.example");
    let body = String::from_utf8(body.clone()).unwrap();
    assert!(body.starts_with(
        "Received: from client.example ([192.0.2.1])\r\n\tby mx.test (mxring) with ESMTP id "
    ));
    assert!(body.ends_with("Subject: hi\r\n\r\n.dot\r\n"), "{body}");
}

#[test]
fn pipelined_group_gets_all_replies_in_order() {
    let cfg = config_with(ListenerTls::None, "");
    let input = b"EHLO c\r\nMAIL FROM:<>\r\nRCPT TO:<a@local.example>\r\nRCPT TO:<b@elsewhere.example>\r\nRCPT TO:<c@local.example>\r\nDATA\r\nx\r\n.\r\nMAIL FROM:<a@b.example>\r\nRSET\r\nNOOP\r\nVRFY x\r\nHELP\r\nQUIT\r\n";
    let run = transcript(&cfg, "192.0.2.1", input);
    assert_eq!(
        codes(&run.output),
        [
            "220", "250", "250", "250", "554", "250", "354", "250", "250", "250", "250", "252",
            "214", "221"
        ]
    );
    assert!(run
        .output
        .contains("554 5.7.1 <b@elsewhere.example>: Relay access denied"));
    assert_eq!(run.messages[0].0.recipients.len(), 2);
    assert!(!run.output.contains("250-STARTTLS") && !run.output.contains("250 STARTTLS"));
}

#[test]
fn bdat_chunks_are_kept_as_sent() {
    let cfg = config_with(ListenerTls::None, "");
    // A CR at the end of one chunk and its LF at the start of the next is one CRLF.
    let input = b"EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<x@local.example>\r\nBDAT 4\r\nabc\rBDAT 4 LAST\r\n\n.\r\nQUIT\r\n";
    let run = transcript(&cfg, "192.0.2.1", input);
    assert_eq!(
        codes(&run.output),
        ["220", "250", "250", "250", "250", "250", "221"]
    );
    assert!(run.output.contains("250 2.0.0 4 octets received"));
    assert!(run.messages[0].1.ends_with(b"\r\nabc\r\n.\r\n"));
}

/// The audit's BDAT smuggling inputs (issue 11): BDAT content follows DATA's rules,
/// so a bare CR or LF, or a NUL, is refused with 550 5.6.0 and nothing is stored.
#[test]
fn bdat_refuses_bare_line_endings_and_nul_like_data() {
    let cfg = config_with(ListenerTls::None, "");
    for (content, text) in [
        (
            &b"Subject: x\r\n\r\nT\r.\r\nMAIL FROM:<smuggled@evil.test>\r\n"[..],
            "bare <CR> or <LF>",
        ),
        (
            b"T\r.\nMAIL FROM:<smuggled@evil.test>\r\n",
            "bare <CR> or <LF>",
        ),
        (
            b"T\r.\rMAIL FROM:<smuggled@evil.test>\r\n",
            "bare <CR> or <LF>",
        ),
        (b"T\n.\nX\r\n", "bare <CR> or <LF>"),
        (b"ends in a bare CR\r", "bare <CR> or <LF>"),
        (
            b"T\r\n\x00.\r\nMAIL FROM:<smuggled@evil.test>\r\n",
            "NUL character",
        ),
    ] {
        let mut input = format!(
            "EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<x@local.example>\r\nBDAT {} LAST\r\n",
            content.len()
        )
        .into_bytes();
        input.extend_from_slice(content);
        input.extend_from_slice(b"NOOP\r\n");
        let run = transcript(&cfg, "192.0.2.1", &input);
        let shown = String::from_utf8_lossy(content);
        assert_eq!(
            codes(&run.output),
            ["220", "250", "250", "250", "550", "250"],
            "{shown:?}: {}",
            run.output
        );
        assert!(
            run.output.contains(&format!("550 5.6.0 Error: {text}")),
            "{shown:?}: {}",
            run.output
        );
        assert!(run.messages.is_empty(), "{shown:?} was stored");
    }
}

#[test]
fn data_refuses_nul() {
    let cfg = config_with(ListenerTls::None, "");
    let input = b"EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<x@local.example>\r\nDATA\r\nT\r\n\x00.\r\nMAIL FROM:<smuggled@evil.test>\r\n.\r\nNOOP\r\n";
    let run = transcript(&cfg, "192.0.2.1", input);
    assert_eq!(
        codes(&run.output),
        ["220", "250", "250", "250", "354", "550", "250"]
    );
    assert!(run
        .output
        .contains("550 5.6.0 Error: NUL character in message content"));
    assert!(run.messages.is_empty());
}

#[test]
fn bdat_without_transaction_reads_and_drops_the_chunk() {
    let cfg = config_with(ListenerTls::None, "");
    let input = b"EHLO c\r\nBDAT 12 LAST\r\nQUIT\r\nQUIT\r\nNOOP\r\n";
    let run = transcript(&cfg, "192.0.2.1", input);
    assert_eq!(codes(&run.output), ["220", "250", "503", "250"]);
}

#[test]
fn out_of_sequence_unknown_and_bad_addresses() {
    let cfg = config_with(ListenerTls::None, "");
    let input = b"MAIL FROM:<a@b.example>\r\nEHLO c\r\nRCPT TO:<x@local.example>\r\nDATA\r\nFOO\r\nMAIL FROM:<a@b.>\r\nMAIL FROM:<a@b.example>\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<x@local.example.>\r\nRCPT TO:x@local.example\r\nRCPT TO:<@a.example:x@local.example>\r\nSTARTTLS\r\n";
    let run = transcript(&cfg, "192.0.2.1", input);
    assert_eq!(
        codes(&run.output),
        [
            "220", "503", "250", "503", "503", "500", "501", "250", "503", "501", "501", "250",
            "502"
        ]
    );
    assert!(run
        .output
        .contains("501 5.1.3 Bad recipient address syntax"));
    assert!(run
        .output
        .contains("500 5.5.2 Error: command not recognized"));
}

#[test]
fn too_many_recipients_and_size_limits() {
    let cfg = config_with(ListenerTls::None, "");
    let mut input =
        b"EHLO c\r\nMAIL FROM:<a@b.example> SIZE=20000\r\nMAIL FROM:<a@b.example>\r\n".to_vec();
    for i in 0..4 {
        input.extend_from_slice(format!("RCPT TO:<u{i}@local.example>\r\n").as_bytes());
    }
    input.extend_from_slice(b"DATA\r\n");
    input.extend_from_slice(&[&[b'x'; 500][..]; 30].join(&b"\r\n"[..]));
    input.extend_from_slice(b"\r\n.\r\nNOOP\r\n");
    let run = transcript(&cfg, "192.0.2.1", &input);
    assert_eq!(
        codes(&run.output),
        ["220", "250", "552", "250", "250", "250", "250", "452", "354", "552", "250"]
    );
    assert!(run.output.contains("452 4.5.3 Error: too many recipients"));
    assert!(run
        .output
        .contains("552 5.3.4 Message size exceeds fixed limit"));
    assert!(run.messages.is_empty());
}

#[test]
fn overlong_command_and_text_lines() {
    let cfg = config_with(ListenerTls::None, "");
    let mut input = b"EHLO c\r\nNOOP ".to_vec();
    input.extend_from_slice(&[b'a'; 600]);
    input
        .extend_from_slice(b"\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<x@local.example>\r\nDATA\r\n");
    input.extend_from_slice(&[b'y'; 1200]);
    input.extend_from_slice(b"\r\n.\r\nNOOP\r\n");
    let run = transcript(&cfg, "192.0.2.1", &input);
    assert_eq!(
        codes(&run.output),
        ["220", "250", "500", "250", "250", "354", "500", "250"]
    );
    assert!(run.output.contains("500 5.5.2 Error: line too long"));
    assert!(run
        .output
        .contains("500 5.5.6 Error: message line too long"));
    assert!(run.messages.is_empty());
}

#[test]
fn smuggling_inputs_do_not_end_data_and_the_message_is_refused() {
    let cfg = config_with(ListenerTls::None, "");
    for evil in [&b"\n.\r\n"[..], b"\r.\r\n", b"\n.\n"] {
        let mut input =
            b"EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<x@local.example>\r\nDATA\r\nhello"
                .to_vec();
        input.extend_from_slice(evil);
        input.extend_from_slice(b"MAIL FROM:<evil@b.example>\r\nRCPT TO:<y@local.example>\r\nDATA\r\nsmuggled\r\n.\r\nNOOP\r\n");
        let run = transcript(&cfg, "192.0.2.1", &input);
        // One DATA, ended only by the real CRLF.CRLF, and refused: nothing smuggled in.
        assert_eq!(
            codes(&run.output),
            ["220", "250", "250", "250", "354", "550", "250"],
            "{evil:?}"
        );
        assert!(run.messages.is_empty());
    }
}

#[test]
fn bare_lf_and_cr_in_commands_are_refused() {
    let cfg = config_with(ListenerTls::None, "");
    let run = transcript(&cfg, "192.0.2.1", b"EHLO c\nNOOP\r\nNO\rOP\r\nQUIT\r\n");
    assert_eq!(codes(&run.output), ["220", "500", "250", "500", "221"]);
}

#[test]
fn starttls_discards_injected_commands_and_resets_state() {
    let cfg = config_with(ListenerTls::Starttls, "");
    let run = drive(
        &cfg,
        "192.0.2.1",
        &[
            b"EHLO c\r\nMAIL FROM:<a@b.example>\r\nSTARTTLS\r\nRCPT TO:<x@local.example>\r\n",
            b"MAIL FROM:<a@b.example>\r\nEHLO c\r\nSTARTTLS\r\nQUIT\r\n",
        ],
    );
    // The injected RCPT is never executed; after TLS, MAIL needs a new EHLO;
    // EHLO no longer offers STARTTLS, and a second STARTTLS is refused.
    assert_eq!(
        codes(&run.output),
        ["220", "250", "250", "220", "503", "250", "503", "221"]
    );
    let after_tls = run.output.split("Ready to start TLS").nth(1).unwrap();
    assert!(!after_tls.contains("STARTTLS\r\n250"), "{after_tls}");
}

#[test]
fn required_listener_refuses_mail_before_tls() {
    let cfg = config_with(ListenerTls::Required, "");
    let run = drive(
        &cfg,
        "192.0.2.1",
        &[b"EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<x@local.example>\r\nDATA\r\nBDAT 0 LAST\r\nSTARTTLS\r\n", b"EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<x@local.example>\r\nDATA\r\nhi\r\n.\r\n"],
    );
    assert_eq!(
        codes(&run.output),
        ["220", "250", "530", "530", "530", "530", "220", "250", "250", "250", "354", "250"]
    );
    assert!(run
        .output
        .contains("530 5.7.0 Must issue a STARTTLS command first"));
    assert_eq!(run.messages[0].0.tls.as_ref().unwrap().version, "TLSv1.3");
    assert!(String::from_utf8_lossy(&run.messages[0].1)
        .contains("(using TLSv1.3 with cipher TLS_AES_128_GCM_SHA256)"));
}

#[test]
fn recipient_rule_refuses_one_recipient_and_keeps_the_others() {
    let cfg = config_with(
        ListenerTls::Starttls,
        "[[inbound_tls]]\nrecipients = [\"secret@local.example\"]\nrequire = true\n",
    );
    let run = transcript(&cfg, "127.0.0.1", b"EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<secret@local.example>\r\nRCPT TO:<y@local.example>\r\nDATA\r\nhi\r\n.\r\n");
    assert_eq!(
        codes(&run.output),
        ["220", "250", "250", "530", "250", "354", "250"]
    );
    assert_eq!(run.messages[0].0.recipients.len(), 1);
    assert_eq!(run.messages[0].0.recipients[0].address, "y@local.example");
    assert!(run
        .output
        .contains("530 5.7.0 Must issue a STARTTLS command first"));
}

#[test]
fn a_rule_with_require_false_cannot_exempt_a_plaintext_session_on_a_required_listener() {
    let cfg = config_with(
        ListenerTls::Required,
        "[[inbound_tls]]\nrecipients = [\"plain@local.example\"]\nrequire = false\n",
    );
    let run = transcript(
        &cfg,
        "192.0.2.1",
        b"EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<plain@local.example>\r\nDATA\r\n",
    );
    assert_eq!(codes(&run.output), ["220", "250", "530", "530", "530"]);
    assert!(run.messages.is_empty());
}

#[test]
fn non_ascii_address_needs_smtputf8() {
    let cfg = config_with(ListenerTls::None, "");
    let run = transcript(&cfg, "192.0.2.1", "EHLO c\r\nMAIL FROM:<jö@b.example>\r\nMAIL FROM:<jö@b.example> SMTPUTF8\r\nRCPT TO:<ü@local.example>\r\n".as_bytes());
    assert_eq!(codes(&run.output), ["220", "250", "553", "250", "250"]);
}

#[test]
fn too_many_errors_close_the_session() {
    let cfg = config_with(ListenerTls::None, "");
    let input = b"FOO\r\n".repeat(60);
    let run = drive(&cfg, "192.0.2.1", &[&input]);
    assert!(run.closed);
    assert!(run
        .output
        .ends_with("421 4.7.0 mx.test Error: too many errors\r\n"));
}

#[test]
fn storage_failure_is_not_acknowledged() {
    let cfg = config_with(ListenerTls::None, "");
    let mut s = ServerSession::new(
        cfg,
        "192.0.2.1".parse().unwrap(),
        IdSource::new(0, SystemTime::UNIX_EPOCH, 0),
    );
    let mut out = Vec::new();
    let fed = s.feed(b"HELO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<x@local.example>\r\nDATA\r\nx\r\n.\r\nNOOP\r\n", SystemTime::now(), &mut out);
    assert!(matches!(fed.event, Some(Event::Message(_))));
    out.clear();
    s.message_stored(Err(StoreFailure::Io), &mut out);
    assert_eq!(out, b"451 4.3.0 Error: queue file write error\r\n");
    out.clear();
    s.message_stored(Err(StoreFailure::NoSpace), &mut out);
    assert_eq!(out, b"452 4.3.1 Insufficient system storage\r\n");
}

/// Issue 11, item 7 (RFC 5321 4.5.1): the bare `<postmaster>`, any case, is accepted
/// from anyone and stands for the configured postmaster address.
#[test]
fn bare_postmaster_is_accepted_for_the_configured_address() {
    let cfg = config_with(ListenerTls::None, "");
    let input = b"EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<postmaster>\r\nRCPT TO:<PostMaster>\r\nRCPT TO:<postmaster@elsewhere.example>\r\nDATA\r\nx\r\n.\r\n";
    let run = transcript(&cfg, "192.0.2.1", input);
    assert_eq!(
        codes(&run.output),
        ["220", "250", "250", "250", "250", "554", "354", "250"],
        "{}",
        run.output
    );
    let rcpts: Vec<&str> = run.messages[0]
        .0
        .recipients
        .iter()
        .map(|r| r.address.as_str())
        .collect();
    assert_eq!(rcpts, ["postmaster@mx.test", "postmaster@mx.test"]);
}
