use std::time::{Duration, SystemTime, UNIX_EPOCH};

use proptest::prelude::*;

use super::*;

/// Mon, 01 Jan 2024 00:00:00 +0000
const T0: u64 = 1_704_067_200;
const ORIGINAL: &[u8] = b"From: Alice <alice@example.org>\r\n\
To: bob@example.net\r\n\
Subject: lunch\r\n\
Message-ID: <1@example.org>\r\n\
\r\n\
Shall we meet at noon?\r\n\
-- \r\n\
Alice\r\n";

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn recipient(action: DsnKind) -> DsnRecipient {
    let (status, diag) = match action {
        DsnKind::Failed => (
            "5.1.1",
            "550 5.1.1 <bob@example.net>: Recipient address rejected",
        ),
        DsnKind::Delayed => (
            "4.7.4",
            "TLS is required, but was not offered by host mx.example.net",
        ),
        DsnKind::Relayed => ("2.0.0", "250 2.0.0 Ok: queued as 4XyZ"),
    };
    DsnRecipient {
        final_recipient: "bob@example.net".into(),
        original_recipient: Some("rfc822;Bob+2Bx@example.net".into()),
        action,
        status: status.into(),
        remote_mta: Some("mx.example.net (TLSv1.3 TLS_AES_256_GCM_SHA384)".into()),
        diagnostic: Some(diag.into()),
        last_attempt: Some(at(T0 + 3600)),
        will_retry_until: Some(at(T0 + 5 * 86400)),
        decided_by: Decider::RemoteHost,
        expired_after: None,
    }
}

fn report<'a>(
    recipients: &'a [DsnRecipient],
    ret: ReturnContent,
    original: &'a [u8],
) -> DsnReport<'a> {
    DsnReport {
        reporting_mta: "mx1.example.org",
        original_sender: "alice@example.org",
        original_envid: Some("QQ314159"),
        arrival: at(T0),
        recipients,
        ret,
        original_message: original,
        now: at(T0 + 3601),
        message_id_seed: 0xDEADBEEF,
    }
}

/// Every line ends in CRLF and none is longer than 998 octets.
fn assert_clean_lines(msg: &[u8]) {
    assert!(msg.ends_with(b"\r\n"));
    for (i, &b) in msg.iter().enumerate() {
        if b == b'\n' {
            assert!(i > 0 && msg[i - 1] == b'\r', "bare LF at {i}");
        }
        if b == b'\r' {
            assert_eq!(msg.get(i + 1), Some(&b'\n'), "bare CR at {i}");
        }
    }
    for line in msg.split(|&b| b == b'\n') {
        assert!(line.len() <= 999, "line of {} octets", line.len() - 1);
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

fn boundary_of(parsed: &ParsedDsn) -> String {
    let ct = parsed.headers.field("Content-Type").unwrap();
    let start = ct.find("boundary=\"").unwrap() + 10;
    let end = ct[start..].find('"').unwrap();
    ct[start..start + end].to_string()
}

#[test]
fn failed_report_has_every_field() {
    let rcpts = [recipient(DsnKind::Failed)];
    let dsn = build_dsn(&report(&rcpts, ReturnContent::Headers, ORIGINAL));
    assert_clean_lines(&dsn);
    let p = parse_delivery_status(&dsn).unwrap();

    let h = &p.headers;
    assert_eq!(
        h.field("From"),
        Some("Mail Delivery System <MAILER-DAEMON@mx1.example.org>")
    );
    assert_eq!(h.field("To"), Some("alice@example.org"));
    assert_eq!(
        h.field("Subject"),
        Some("Undelivered Mail Returned to Sender")
    );
    assert_eq!(h.field("Date"), Some("Mon, 01 Jan 2024 01:00:01 +0000"));
    assert_eq!(
        h.field("Message-ID"),
        Some("<20240101010001.00000000DEADBEEF@mx1.example.org>")
    );
    assert_eq!(h.field("Auto-Submitted"), Some("auto-replied"));
    assert_eq!(h.field("MIME-Version"), Some("1.0"));
    let ct = h.field("content-type").unwrap();
    assert!(
        ct.starts_with("multipart/report; report-type=delivery-status; boundary=\""),
        "{ct}"
    );
    assert_eq!(h.field("Content-Transfer-Encoding"), None);

    let m = &p.per_message;
    assert_eq!(
        m.fields,
        vec![
            (
                "Reporting-MTA".to_string(),
                "dns; mx1.example.org".to_string()
            ),
            ("Original-Envelope-Id".to_string(), "QQ314159".to_string()),
            (
                "Arrival-Date".to_string(),
                "Mon, 01 Jan 2024 00:00:00 +0000".to_string()
            ),
        ]
    );
    assert_eq!(p.recipients.len(), 1);
    let r = &p.recipients[0];
    let want = [
        ("Final-Recipient", "rfc822; bob@example.net"),
        ("Original-Recipient", "rfc822;Bob+2Bx@example.net"),
        ("Action", "failed"),
        ("Status", "5.1.1"),
        (
            "Remote-MTA",
            "dns; mx.example.net (TLSv1.3 TLS_AES_256_GCM_SHA384)",
        ),
        (
            "Diagnostic-Code",
            "smtp; 550 5.1.1 <bob@example.net>: Recipient address rejected",
        ),
        ("Last-Attempt-Date", "Mon, 01 Jan 2024 01:00:00 +0000"),
    ];
    let got: Vec<(&str, &str)> = r
        .fields
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    assert_eq!(got, want);

    let text = p.notification.unwrap();
    assert!(text.contains("This is the mail system at host mx1.example.org."));
    assert!(text.contains("<bob@example.net>: host mx.example.net"));
    assert!(text.contains("Recipient address rejected"));
}

#[test]
fn delayed_report_says_until_when() {
    let rcpts = [recipient(DsnKind::Delayed)];
    let dsn = build_dsn(&report(&rcpts, ReturnContent::Headers, ORIGINAL));
    assert_clean_lines(&dsn);
    let p = parse_delivery_status(&dsn).unwrap();
    assert_eq!(
        p.headers.field("Subject"),
        Some("Delayed Mail (still being retried)")
    );
    let r = &p.recipients[0];
    assert_eq!(r.field("Action"), Some("delayed"));
    assert_eq!(r.field("Status"), Some("4.7.4"));
    assert_eq!(
        r.field("Will-Retry-Until"),
        Some("Sat, 06 Jan 2024 00:00:00 +0000")
    );
    assert_eq!(
        r.field("Diagnostic-Code"),
        Some("smtp; TLS is required, but was not offered by host mx.example.net")
    );
    let text = p.notification.unwrap();
    assert!(text.contains("WARNING ONLY"));
    assert!(text.contains("could not be delivered for 1.0 hours"));
    assert!(text.contains("until Sat, 06 Jan 2024 00:00:00 +0000"));
}

#[test]
fn relayed_report_has_no_retry_field() {
    let rcpts = [recipient(DsnKind::Relayed)];
    let dsn = build_dsn(&report(&rcpts, ReturnContent::Headers, ORIGINAL));
    let p = parse_delivery_status(&dsn).unwrap();
    assert_eq!(
        p.headers.field("Subject"),
        Some("Successful Mail Delivery Report")
    );
    let r = &p.recipients[0];
    assert_eq!(r.field("Action"), Some("relayed"));
    assert_eq!(r.field("Status"), Some("2.0.0"));
    assert_eq!(r.field("Will-Retry-Until"), None);
    assert!(p
        .notification
        .unwrap()
        .contains("delivered via mx.example.net"));
}

#[test]
fn mixed_recipients_make_a_failure_report_with_all_groups() {
    let mut later = recipient(DsnKind::Delayed);
    later.final_recipient = "carol@example.net".into();
    later.original_recipient = Some("carol@example.net".into());
    later.remote_mta = None;
    later.diagnostic = None;
    later.last_attempt = None;
    let rcpts = [recipient(DsnKind::Failed), later];
    let rep = report(&rcpts, ReturnContent::Headers, ORIGINAL);
    assert_eq!(rep.kind(), DsnKind::Failed);
    let p = parse_delivery_status(&build_dsn(&rep)).unwrap();
    assert_eq!(
        p.headers.field("Subject"),
        Some("Undelivered Mail Returned to Sender")
    );
    assert_eq!(p.recipients.len(), 2);
    let r = &p.recipients[1];
    assert_eq!(
        r.field("Final-Recipient"),
        Some("rfc822; carol@example.net")
    );
    assert_eq!(
        r.field("Original-Recipient"),
        Some("rfc822; carol@example.net")
    );
    assert_eq!(r.field("Remote-MTA"), None);
    assert_eq!(r.field("Diagnostic-Code"), None);
    assert_eq!(r.field("Last-Attempt-Date"), None);
    assert!(r.field("Will-Retry-Until").is_some());
}

#[test]
fn ret_headers_returns_only_the_header_section() {
    let rcpts = [recipient(DsnKind::Failed)];
    let dsn = build_dsn(&report(&rcpts, ReturnContent::Headers, ORIGINAL));
    assert!(!contains(&dsn, "Shall we meet"));
    let p = parse_delivery_status(&dsn).unwrap();
    assert_eq!(
        p.returned_content_type.as_deref(),
        Some("text/rfc822-headers")
    );
    let end = ORIGINAL.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 2;
    assert_eq!(p.returned.unwrap(), &ORIGINAL[..end]);
}

#[test]
fn ret_full_returns_the_message_byte_for_byte() {
    let rcpts = [recipient(DsnKind::Failed)];
    let dsn = build_dsn(&report(&rcpts, ReturnContent::Full, ORIGINAL));
    assert_clean_lines(&dsn);
    let p = parse_delivery_status(&dsn).unwrap();
    assert_eq!(p.returned_content_type.as_deref(), Some("message/rfc822"));
    assert_eq!(p.returned.unwrap(), ORIGINAL);

    // Without a final CRLF it still comes back unchanged.
    let short = b"Subject: x\r\n\r\nno newline";
    let p = parse_delivery_status(&build_dsn(&report(&rcpts, ReturnContent::Full, short))).unwrap();
    assert_eq!(p.returned.unwrap(), short);
}

#[test]
fn ret_full_with_overlong_line_falls_back_to_headers() {
    let mut original = b"Subject: big\r\n\r\n".to_vec();
    original.extend(std::iter::repeat_n(b'x', 5000));
    original.extend_from_slice(b"\r\n");
    let rcpts = [recipient(DsnKind::Failed)];
    let dsn = build_dsn(&report(&rcpts, ReturnContent::Full, &original));
    assert_clean_lines(&dsn);
    let p = parse_delivery_status(&dsn).unwrap();
    assert_eq!(
        p.returned_content_type.as_deref(),
        Some("text/rfc822-headers")
    );
    assert_eq!(p.returned.unwrap(), b"Subject: big\r\n");
}

#[test]
fn header_section_is_repaired_into_clean_lines() {
    let mut original = b"Subject: a\nX-Long: ".to_vec();
    original.extend(std::iter::repeat_n(b'y', 2000));
    original.extend_from_slice(b"\r\nX-Bad: a\rb\r\n\r\nbody\r\n");
    let rcpts = [recipient(DsnKind::Failed)];
    let dsn = build_dsn(&report(&rcpts, ReturnContent::Full, &original));
    assert_clean_lines(&dsn);
    let p = parse_delivery_status(&dsn).unwrap();
    let returned = p.returned.unwrap();
    assert!(returned.starts_with(b"Subject: a\r\nX-Long: yyy"));
    assert!(returned.ends_with(b"X-Bad: a b\r\n"));
}

#[test]
fn boundary_avoids_collisions_with_the_original() {
    let rcpts = [recipient(DsnKind::Failed)];
    let first = build_dsn(&report(&rcpts, ReturnContent::Full, ORIGINAL));
    let planted = boundary_of(&parse_delivery_status(&first).unwrap());

    let mut hostile = b"Subject: trap\r\n\r\n".to_vec();
    hostile.extend_from_slice(format!("--{planted}\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; evil\r\n").as_bytes());
    let dsn = build_dsn(&report(&rcpts, ReturnContent::Full, &hostile));
    let p = parse_delivery_status(&dsn).unwrap();
    let chosen = boundary_of(&p);
    assert_ne!(chosen, planted);
    assert!(chosen.len() <= 70);
    assert_eq!(
        p.per_message.field("Reporting-MTA"),
        Some("dns; mx1.example.org")
    );
    assert_eq!(p.returned.unwrap(), hostile);
    // The chosen boundary occurs only as delimiters: three parts and a close.
    let delimiters = dsn
        .split(|&b| b == b'\n')
        .filter(|l| contains(l, &chosen))
        .count();
    assert_eq!(delimiters, 4 + 1); // plus the Content-Type header line
}

#[test]
fn long_diagnostics_are_folded_and_capped() {
    let words: Vec<String> = (0..300).map(|i| format!("word{i}")).collect();
    let mut r = recipient(DsnKind::Failed);
    r.diagnostic = Some(format!("550-5.7.1 {}\r\n550 5.7.1 end", words.join(" ")));
    let rcpts = [r];
    let dsn = build_dsn(&report(&rcpts, ReturnContent::Headers, ORIGINAL));
    assert_clean_lines(&dsn);
    let p = parse_delivery_status(&dsn).unwrap();
    // Unfolding restores the one-line text exactly.
    let want = format!("smtp; 550-5.7.1 {} 550 5.7.1 end", words.join(" "));
    assert_eq!(
        p.recipients[0].field("Diagnostic-Code"),
        Some(want.as_str())
    );

    // One huge token, and far more text than anyone reads.
    let mut r = recipient(DsnKind::Failed);
    r.diagnostic = Some(format!("550 {} {}", "z".repeat(3000), "w ".repeat(5000)));
    let rcpts = [r];
    let dsn = build_dsn(&report(&rcpts, ReturnContent::Headers, ORIGINAL));
    assert_clean_lines(&dsn);
    let p = parse_delivery_status(&dsn).unwrap();
    let diag = p.recipients[0].field("Diagnostic-Code").unwrap();
    assert!(diag.starts_with("smtp; 550 zzz"));
    assert!(diag.ends_with("[truncated]"));
    assert!(diag.len() < 4100);
}

#[test]
fn injected_line_breaks_stay_inside_their_field() {
    let mut r = recipient(DsnKind::Failed);
    r.final_recipient = "bob@example.net\r\nAction: relayed".into();
    let rcpts = [r];
    let mut rep = report(&rcpts, ReturnContent::Headers, ORIGINAL);
    rep.original_sender = "alice@example.org\r\nBcc: victim@example.com";
    let dsn = build_dsn(&rep);
    assert_clean_lines(&dsn);
    assert!(!dsn.split(|&b| b == b'\n').any(|l| l.starts_with(b"Bcc:")));
    let p = parse_delivery_status(&dsn).unwrap();
    let actions: Vec<_> = p.recipients[0]
        .fields
        .iter()
        .filter(|(n, _)| n == "Action")
        .collect();
    assert_eq!(actions.len(), 1);
    assert_eq!(p.recipients[0].field("Action"), Some("failed"));
}

#[test]
fn international_addresses_are_escaped_in_the_status_part() {
    let mut r = recipient(DsnKind::Failed);
    r.final_recipient = "jürgen@bücher.example".into();
    let rcpts = [r];
    let dsn = build_dsn(&report(&rcpts, ReturnContent::Headers, ORIGINAL));
    assert_clean_lines(&dsn);
    let p = parse_delivery_status(&dsn).unwrap();
    assert_eq!(
        p.recipients[0].field("Final-Recipient"),
        Some("utf-8; j\\x{FC}rgen@b\\x{FC}cher.example")
    );
    assert_eq!(p.headers.field("Content-Transfer-Encoding"), Some("8bit"));
    assert!(p.notification.unwrap().contains("<jürgen@bücher.example>"));
}

#[test]
fn malformed_status_falls_back_to_the_action_class() {
    let mut r = recipient(DsnKind::Delayed);
    r.status = "soon".into();
    let rcpts = [r];
    let p = parse_delivery_status(&build_dsn(&report(
        &rcpts,
        ReturnContent::Headers,
        ORIGINAL,
    )))
    .unwrap();
    assert_eq!(p.recipients[0].field("Status"), Some("4.0.0"));
}

#[test]
fn parser_rejects_what_is_not_a_report() {
    assert_eq!(
        parse_delivery_status(b"Content-Type: text/plain\r\n\r\nhi\r\n"),
        Err(DsnParseError::NotMultipartReport("text/plain".into()))
    );
    assert_eq!(
        parse_delivery_status(b"Content-Type: multipart/report\r\n\r\n"),
        Err(DsnParseError::MissingBoundary)
    );
    let no_status = b"Content-Type: multipart/report; boundary=b\r\n\r\n--b\r\n\
Content-Type: text/plain\r\n\r\nhi\r\n--b--\r\n";
    assert_eq!(
        parse_delivery_status(no_status),
        Err(DsnParseError::NoDeliveryStatusPart)
    );
}

#[test]
fn parser_reads_lf_and_unquoted_boundaries() {
    let other = b"Content-Type: Multipart/Report; report-type=delivery-status; boundary=XYZ\n\n\
--XYZ\nContent-Type: text/plain\n\nsorry\n--XYZ\ncontent-type: message/delivery-status\n\n\
reporting-mta: dns; other.example\n\nfinal-recipient: rfc822;x@y\naction: failed\n\
status: 5.0.0\n\n--XYZ--\n";
    let p = parse_delivery_status(other).unwrap();
    assert_eq!(
        p.per_message.field("Reporting-MTA"),
        Some("dns; other.example")
    );
    assert_eq!(p.recipients.len(), 1);
    assert_eq!(p.recipients[0].field("STATUS"), Some("5.0.0"));
    assert_eq!(p.notification.as_deref(), Some("sorry"));
    assert_eq!(p.returned_content_type, None);
}

#[test]
fn notify_parse() {
    let f = NotifyFlags::parse("SUCCESS,DELAY").unwrap();
    assert!(f.success && f.delay && !f.failure && !f.never);
    let f = NotifyFlags::parse("failure").unwrap();
    assert!(f.failure && !f.success);
    assert!(NotifyFlags::parse("NEVER").unwrap().never);
    assert_eq!(
        NotifyFlags::parse("NEVER,DELAY"),
        Err(NotifyParseError::NeverNotAlone)
    );
    assert_eq!(NotifyFlags::parse(""), Err(NotifyParseError::Empty));
    assert_eq!(NotifyFlags::parse("SUCCESS,"), Err(NotifyParseError::Empty));
    assert_eq!(
        NotifyFlags::parse("SUCCESS,LATER"),
        Err(NotifyParseError::Unknown("LATER".into()))
    );
    assert_eq!(
        NotifyFlags::parse("delay,success").unwrap().to_string(),
        "SUCCESS,DELAY"
    );
    assert_eq!(NotifyFlags::parse("never").unwrap().to_string(), "NEVER");
}

#[test]
fn who_is_notified() {
    let absent = NotifyFlags::default_when_absent();
    assert!(should_notify(&absent, DsnKind::Failed, false));
    assert!(should_notify(&absent, DsnKind::Delayed, false));
    assert!(!should_notify(&absent, DsnKind::Relayed, false));
    for kind in [DsnKind::Failed, DsnKind::Delayed, DsnKind::Relayed] {
        let all = NotifyFlags::parse("SUCCESS,FAILURE,DELAY").unwrap();
        assert!(should_notify(&all, kind, false));
        assert!(
            !should_notify(&all, kind, true),
            "null sender never notified"
        );
        let never = NotifyFlags::parse("NEVER").unwrap();
        assert!(!should_notify(&never, kind, false));
    }
    let success = NotifyFlags::parse("SUCCESS").unwrap();
    assert!(should_notify(&success, DsnKind::Relayed, false));
    assert!(!should_notify(&success, DsnKind::Failed, false));
}

#[test]
fn ret_parse_and_default() {
    assert_eq!(ReturnContent::default(), ReturnContent::Headers);
    assert_eq!(ReturnContent::parse("full"), Some(ReturnContent::Full));
    assert_eq!(ReturnContent::parse("HDRS"), Some(ReturnContent::Headers));
    assert_eq!(ReturnContent::parse("ALL"), None);
}

proptest! {
    #[test]
    fn any_input_gives_clean_lines(
        addr in "\\PC{0,300}",
        diag in proptest::collection::vec(any::<char>(), 0..3000),
        remote in "[a-z.]{1,40}( [ -~]{0,200})?",
        body in proptest::collection::vec(any::<u8>(), 0..3000),
        full in any::<bool>(),
    ) {
        let diag: String = diag.into_iter().collect();
        let r = DsnRecipient {
            final_recipient: addr,
            original_recipient: None,
            action: DsnKind::Failed,
            status: "5.0.0".into(),
            remote_mta: Some(remote),
            diagnostic: Some(diag),
            last_attempt: None,
            will_retry_until: None,
            decided_by: Decider::RemoteHost,
            expired_after: None,
        };
        let rcpts = [r.clone(), r];
        let ret = if full { ReturnContent::Full } else { ReturnContent::Headers };
        let dsn = build_dsn(&report(&rcpts, ret, &body));
        assert_clean_lines(&dsn);
        let p = parse_delivery_status(&dsn).unwrap();
        prop_assert_eq!(p.recipients.len(), 2);
        prop_assert_eq!(p.recipients[1].field("Action"), Some("failed"));
    }
}

/// The first part of a report, lines unfolded, for assertions on its sentences.
fn first_part(dsn: &[u8]) -> String {
    let text = String::from_utf8_lossy(dsn);
    let start = text.find("This is the mail system").unwrap();
    let end = text[start..].find("\r\n--").map(|e| start + e).unwrap();
    text[start..end]
        .replace("\r\n    ", " ")
        .replace("\r\n", " ")
}

#[test]
fn policy_failure_names_the_rule_not_the_remote_host_and_says_what_to_do() {
    let mut r = recipient(DsnKind::Failed);
    r.status = "5.7.4".into();
    r.diagnostic = Some("4.7.4 TLS is required, but was not offered by host mx.example.net".into());
    r.decided_by = Decider::TlsPolicy {
        rule: "[[outbound_tls]] #2".into(),
        domain: "example.net".into(),
    };
    let text = first_part(&build_dsn(&report(&[r], ReturnContent::Headers, ORIGINAL)));
    assert!(!text.contains("said:"), "{text}");
    assert!(
        text.contains(
            "this mail system's policy requires TLS for example.net ([[outbound_tls]] #2)"
        ),
        "{text}"
    );
    assert!(
        text.contains("switch off mandatory TLS for example.net"),
        "{text}"
    );
    assert!(
        text.contains("or reach the recipient another way"),
        "{text}"
    );
}

#[test]
fn expiry_says_this_system_gave_up_and_quotes_the_remote_reply_as_the_last_attempt() {
    let mut r = recipient(DsnKind::Failed);
    r.diagnostic = Some("451 4.3.0 try again later".into());
    r.expired_after = Some("24h".into());
    let text = first_part(&build_dsn(&report(&[r], ReturnContent::Headers, ORIGINAL)));
    assert!(
        text.contains("this mail system gave up after 24h; the last attempt: host mx.example.net"),
        "{text}"
    );
    assert!(text.contains("said: 451 4.3.0 try again later"), "{text}");
}

#[test]
fn operator_bounce_says_the_administrator_decided() {
    let mut r = recipient(DsnKind::Failed);
    r.diagnostic = Some("bounced with mxring queue bounce".into());
    r.decided_by = Decider::Operator;
    let text = first_part(&build_dsn(&report(&[r], ReturnContent::Headers, ORIGINAL)));
    assert!(!text.contains("said:"), "{text}");
    assert!(
        text.contains("returned by the administrator of this mail system"),
        "{text}"
    );
}

#[test]
fn failure_report_says_what_is_attached() {
    let rcpts = [recipient(DsnKind::Failed)];
    let headers = first_part(&build_dsn(&report(
        &rcpts,
        ReturnContent::Headers,
        ORIGINAL,
    )));
    assert!(
        headers.contains("the headers of the message are attached"),
        "{headers}"
    );
    let full = first_part(&build_dsn(&report(&rcpts, ReturnContent::Full, ORIGINAL)));
    assert!(full.contains("and the message is attached"), "{full}");
}
