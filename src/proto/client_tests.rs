//! Client session transcripts: the server's side is scripted, the session's
//! commands are checked, and each server transcript is also fed byte by byte.

use super::client::*;
use super::envelope::BodyType;
use std::time::Duration;

fn tx(rcpts: &[&str]) -> OutboundTx {
    OutboundTx {
        sender: "a@s.example".into(),
        rcpts: rcpts
            .iter()
            .map(|r| OutboundRcpt {
                address: r.to_string(),
                notify: Some(crate::proto::NotifyFlags::parse("FAILURE").unwrap()),
                orcpt: Some(format!("rfc822;{r}")),
            })
            .collect(),
        size: 42,
        body_type: BodyType::EightBitMime,
        smtputf8: false,
        ret: None,
        envid: Some("env 1".into()),
        requiretls: false,
    }
}

/// Feed `server` in pieces of `step` bytes; collect actions (NeedMore skipped).
fn run(s: &mut ClientSession, server: &[u8], step: usize, out: &mut Vec<u8>) -> Vec<ClientAction> {
    let mut actions = Vec::new();
    let mut pending = Vec::new();
    for chunk in server.chunks(step.max(1)) {
        pending.extend_from_slice(chunk);
        loop {
            let (n, a) = s.feed(&pending, out);
            pending.drain(..n);
            if a == ClientAction::NeedMore {
                break;
            }
            let stop = matches!(a, ClientAction::Failed(_) | ClientAction::StartTls);
            actions.push(a);
            if stop {
                return actions;
            }
        }
    }
    actions
}

const EHLO_FULL: &[u8] = b"220 mx ESMTP\r\n250-mx\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250-8BITMIME\r\n250-DSN\r\n250 ENHANCEDSTATUSCODES\r\n";

#[test]
fn pipelined_transaction_with_dsn_parameters_and_multiline_replies() {
    for step in [1, 3, 1000] {
        let mut s = ClientSession::new("me.example", TlsWant::Opportunistic);
        let mut out = Vec::new();
        assert_eq!(
            run(&mut s, EHLO_FULL, step, &mut out),
            [ClientAction::Ready]
        );
        assert_eq!(out, b"EHLO me.example\r\n");
        assert!(s.capabilities().pipelining && s.capabilities().dsn);
        out.clear();
        assert_eq!(
            s.start_transaction(&tx(&["x@r.example", "y@r.example"]), &mut out)
                .unwrap(),
            ClientAction::NeedMore
        );
        assert_eq!(
            String::from_utf8(out.clone()).unwrap(),
            "MAIL FROM:<a@s.example> SIZE=42 BODY=8BITMIME ENVID=env+201\r\nRCPT TO:<x@r.example> NOTIFY=FAILURE ORCPT=rfc822;x@r.example\r\nRCPT TO:<y@r.example> NOTIFY=FAILURE ORCPT=rfc822;y@r.example\r\nDATA\r\n"
        );
        out.clear();
        let actions = run(
            &mut s,
            b"250 2.1.0 ok\r\n250 2.1.5 ok\r\n550-5.1.1 no\r\n550 5.1.1 such user\r\n354 go\r\n",
            step,
            &mut out,
        );
        assert_eq!(actions, [ClientAction::SendData]);
        let actions = run(&mut s, b"250 2.0.0 queued\r\n", step, &mut out);
        let ClientAction::Done(o) = &actions[0] else {
            panic!("{actions:?}")
        };
        assert_eq!(
            o.rcpts[1].as_ref().unwrap().lines,
            ["5.1.1 no", "5.1.1 such user"]
        );
        assert!(o.rcpts[0].as_ref().unwrap().is_positive());
        assert_eq!(o.data.as_ref().unwrap().code, 250);
    }
}

/// check-tls's envelope probe: MAIL, then RCPT after its reply (never pipelined,
/// never DATA), `Done` after the last RCPT; no RCPT after a refused MAIL.
#[test]
fn probe_sends_mail_and_rcpt_one_at_a_time_and_never_data() {
    for step in [1, 1000] {
        let mut s = ClientSession::new("me.example", TlsWant::Never);
        let mut out = Vec::new();
        run(&mut s, EHLO_FULL, step, &mut out);
        out.clear();
        let probe = tx(&["x@r.example"]);
        assert_eq!(
            s.start_probe(&probe, &mut out).unwrap(),
            ClientAction::NeedMore
        );
        assert_eq!(
            String::from_utf8(out.clone()).unwrap(),
            "MAIL FROM:<a@s.example> SIZE=42 BODY=8BITMIME ENVID=env+201\r\n",
            "one command although the peer pipelines"
        );
        out.clear();
        assert!(run(&mut s, b"250 2.1.0 ok\r\n", step, &mut out).is_empty());
        assert!(String::from_utf8(out.clone())
            .unwrap()
            .starts_with("RCPT TO:<x@r.example>"));
        out.clear();
        let actions = run(&mut s, b"250 2.1.5 ok\r\n", step, &mut out);
        let [ClientAction::Done(outcome)] = &actions[..] else {
            panic!("{actions:?}")
        };
        assert!(out.is_empty(), "no DATA: {out:?}");
        assert_eq!(outcome.rcpts[0].as_ref().map(|r| r.code), Some(250));
        assert_eq!(outcome.data, None);
        // The session is ready for another probe; a refused MAIL ends it at once.
        s.start_probe(&probe, &mut out).unwrap();
        out.clear();
        let actions = run(&mut s, b"550 5.7.1 not you\r\n", step, &mut out);
        assert!(
            matches!(&actions[..], [ClientAction::Done(o)] if o.mail.code == 550 && o.rcpts == [None])
        );
        assert!(out.is_empty(), "no RCPT after a refused MAIL: {out:?}");
    }
}

#[test]
fn without_pipelining_commands_go_one_at_a_time_and_no_rcpt_means_rset() {
    let mut s = ClientSession::new("me", TlsWant::Never);
    let mut out = Vec::new();
    assert_eq!(
        run(
            &mut s,
            b"220 mx\r\n250-mx\r\n250 STARTTLS\r\n",
            100,
            &mut out
        ),
        [ClientAction::Ready]
    );
    assert_eq!(out, b"EHLO me\r\n", "level none never sends STARTTLS");
    out.clear();
    s.start_transaction(&tx(&["x@r.example"]), &mut out)
        .unwrap();
    assert_eq!(out, b"MAIL FROM:<a@s.example>\r\n");
    out.clear();
    assert!(run(&mut s, b"250 ok\r\n", 100, &mut out).is_empty());
    assert_eq!(out, b"RCPT TO:<x@r.example>\r\n");
    out.clear();
    assert!(run(&mut s, b"450 4.2.0 busy\r\n", 100, &mut out).is_empty());
    assert_eq!(out, b"RSET\r\n");
    let actions = run(&mut s, b"250 ok\r\n", 100, &mut out);
    let ClientAction::Done(o) = &actions[0] else {
        panic!("{actions:?}")
    };
    assert_eq!(o.rcpts[0].as_ref().unwrap().code, 450);
    assert!(o.data.is_none());
}

#[test]
fn bdat_is_used_when_chunking_is_offered() {
    let mut s = ClientSession::new("me", TlsWant::Opportunistic);
    let mut out = Vec::new();
    run(
        &mut s,
        b"220 mx\r\n250-mx\r\n250-PIPELINING\r\n250 CHUNKING\r\n",
        100,
        &mut out,
    );
    out.clear();
    assert_eq!(
        s.start_transaction(&tx(&["x@r"]), &mut out).unwrap(),
        ClientAction::SendChunk
    );
    assert!(out.ends_with(b"RCPT TO:<x@r>\r\nBDAT 42 LAST\r\n"));
    let actions = run(
        &mut s,
        b"250 ok\r\n250 ok\r\n250 2.0.0 42 octets\r\n",
        100,
        &mut out,
    );
    assert!(matches!(&actions[0], ClientAction::Done(o) if o.data.as_ref().unwrap().code == 250));
}

#[test]
fn failures_at_each_step() {
    let greet = run(
        &mut ClientSession::new("me", TlsWant::Opportunistic),
        b"554 go away\r\n",
        1,
        &mut Vec::new(),
    );
    assert!(matches!(&greet[0], ClientAction::Failed(f) if f.stage == Stage::Greeting));
    // EHLO refused permanently falls back to HELO.
    let mut s = ClientSession::new("me", TlsWant::Opportunistic);
    let mut out = Vec::new();
    let a = run(&mut s, b"220 mx\r\n502 no ehlo\r\n250 mx\r\n", 1, &mut out);
    assert_eq!(a, [ClientAction::Ready]);
    assert_eq!(out, b"EHLO me\r\nHELO me\r\n");
    // EHLO 4xx fails the session.
    let a = run(
        &mut ClientSession::new("me", TlsWant::Opportunistic),
        b"220 mx\r\n421 busy\r\n",
        1,
        &mut Vec::new(),
    );
    assert!(matches!(&a[0], ClientAction::Failed(f) if f.stage == Stage::Hello));
    // MAIL refused (pipelined): the RCPT and DATA replies are drained, then Done.
    let mut s = ClientSession::new("me", TlsWant::Opportunistic);
    let mut out = Vec::new();
    run(&mut s, EHLO_FULL, 1, &mut out);
    s.start_transaction(&tx(&["x@r"]), &mut out).unwrap();
    let a = run(
        &mut s,
        b"451 4.3.0 later\r\n503 5.5.1 no\r\n503 5.5.1 no\r\n",
        1,
        &mut out,
    );
    assert!(matches!(&a[0], ClientAction::Done(o) if o.mail.code == 451 && o.data.is_none()));
    // 354 although every recipient failed: end the empty data, report the refusals.
    let mut s = ClientSession::new("me", TlsWant::Opportunistic);
    let mut out = Vec::new();
    run(&mut s, EHLO_FULL, 1, &mut out);
    s.start_transaction(&tx(&["x@r"]), &mut out).unwrap();
    out.clear();
    let a = run(
        &mut s,
        b"250 ok\r\n550 no\r\n354 go\r\n554 no valid recipients\r\n",
        1,
        &mut out,
    );
    assert_eq!(out, b".\r\n");
    assert!(
        matches!(&a[0], ClientAction::Done(o) if o.data.is_none() && o.rcpts[0].as_ref().unwrap().code == 550)
    );
    // Size over the peer's limit is refused before anything is sent.
    let mut big = tx(&["x@r"]);
    big.size = 5000;
    let refused = s.start_transaction(&big, &mut Vec::new()).unwrap_err();
    assert_eq!(
        refused.stage,
        Stage::PeerLimit(crate::proto::client::PeerLimit::MessageTooBig)
    );
    assert!(refused.reason.contains("exceeds the peer's limit"));
    // Garbage instead of a reply.
    let a = run(
        &mut ClientSession::new("me", TlsWant::Opportunistic),
        b"hello there\r\n",
        1,
        &mut Vec::new(),
    );
    assert!(matches!(&a[0], ClientAction::Failed(f) if f.stage == Stage::Protocol));
}

#[test]
fn starttls_offered_refused_and_missing() {
    // Offered: STARTTLS, then a fresh EHLO after the handshake.
    let mut s = ClientSession::new("me", TlsWant::Opportunistic);
    let mut out = Vec::new();
    let a = run(
        &mut s,
        b"220 mx\r\n250-mx\r\n250 STARTTLS\r\n220 go ahead\r\nINJECTED\r\n",
        1000,
        &mut out,
    );
    assert_eq!(a, [ClientAction::StartTls]);
    assert_eq!(out, b"EHLO me\r\nSTARTTLS\r\n");
    out.clear();
    s.tls_established(&mut out);
    assert_eq!(out, b"EHLO me\r\n");
    assert_eq!(
        run(&mut s, b"250-mx\r\n250 PIPELINING\r\n", 1, &mut out),
        [ClientAction::Ready]
    );
    assert!(s.tls_active());
    // Refused: opportunistic carries on in plaintext; required fails with 4.7.x wording upstream.
    let a = run(
        &mut ClientSession::new("me", TlsWant::Opportunistic),
        b"220 mx\r\n250-mx\r\n250 STARTTLS\r\n454 4.7.0 TLS not available\r\n",
        1,
        &mut Vec::new(),
    );
    assert_eq!(a, [ClientAction::Ready]);
    let a = run(
        &mut ClientSession::new("me", TlsWant::Required),
        b"220 mx\r\n250-mx\r\n250 STARTTLS\r\n454 4.7.0 TLS not available\r\n",
        1,
        &mut Vec::new(),
    );
    assert!(
        matches!(&a[0], ClientAction::Failed(f) if f.stage == Stage::StartTls && f.reply.as_ref().unwrap().code == 454)
    );
    // Not offered.
    let a = run(
        &mut ClientSession::new("me", TlsWant::Required),
        b"220 mx\r\n250 mx\r\n",
        1,
        &mut Vec::new(),
    );
    assert!(
        matches!(&a[0], ClientAction::Failed(f) if f.stage == Stage::StartTls && f.reason.contains("not offered"))
    );
    let a = run(
        &mut ClientSession::new("me", TlsWant::Opportunistic),
        b"220 mx\r\n250 mx\r\n",
        1,
        &mut Vec::new(),
    );
    assert_eq!(a, [ClientAction::Ready]);
}

#[test]
fn each_reply_is_awaited_for_the_timeout_of_its_command() {
    let secs = Duration::from_secs;
    let t = ReplyTimeouts {
        banner: secs(1),
        ehlo: secs(2),
        starttls: secs(3),
        mail_from: secs(4),
        rcpt_to: secs(5),
        data: secs(6),
        data_dot: secs(7),
        rset: secs(8),
        quit: secs(9),
    };
    let mut s = ClientSession::with_timeouts("me", TlsWant::Never, t);
    let mut out = Vec::new();
    assert_eq!(s.timeout(), t.banner);
    let mut step = |s: &mut ClientSession, reply: &[u8]| {
        out.clear();
        let (n, action) = s.feed(reply, &mut out);
        assert_eq!(n, reply.len());
        action
    };
    step(&mut s, b"220 mx\r\n");
    assert_eq!(s.timeout(), t.ehlo);
    assert_eq!(step(&mut s, b"250 mx\r\n"), ClientAction::Ready);
    s.start_transaction(&tx(&["b@r.example"]), &mut Vec::new())
        .unwrap();
    assert_eq!(s.timeout(), t.mail_from);
    step(&mut s, b"250 ok\r\n");
    assert_eq!(s.timeout(), t.rcpt_to);
    step(&mut s, b"250 ok\r\n");
    assert_eq!(s.timeout(), t.data);
    assert_eq!(step(&mut s, b"354 go\r\n"), ClientAction::SendData);
    assert_eq!(s.timeout(), t.data_dot);
    assert!(matches!(
        step(&mut s, b"250 queued\r\n"),
        ClientAction::Done(_)
    ));
    s.quit(&mut Vec::new());
    assert_eq!(s.timeout(), t.quit);
    assert_eq!(
        ReplyTimeouts::default().banner,
        secs(300),
        "RFC 5321 4.5.3.2"
    );
    assert_eq!(ReplyTimeouts::default().data_dot, secs(600));
}
