//! The SMTP smuggling matrix (issue 11, item 1): each input goes in over a raw socket
//! with DATA and with BDAT, and mxring relays what it accepts to a lenient next hop
//! (the testkit sink's lenient mode: it ends lines at a bare CR or LF and drops NULs). For
//! every input the next hop must see exactly what mxring acknowledged: one message
//! for each 250, none for each refusal, and never the smuggled sender.

use std::time::Duration;

use mxring_testkit::client::Client;
use mxring_testkit::sink::Sink;
use mxring_testkit::{route_all, wait_until, TestServer};

/// The commands an attacker hides behind a fake end of data.
const SMUGGLED: &str =
    "MAIL FROM:<smuggled@evil.test>\r\nRCPT TO:<v@lenient.test>\r\nDATA\r\nsmuggled\r\n";

/// (name, fake end of data, accepted via DATA, accepted via BDAT). DATA never sees
/// the plain CRLF "." CRLF case: there it is the real end, and what follows is the
/// client's own next transaction, not smuggling.
const MARKERS: &[(&str, &str, Option<bool>, bool)] = &[
    ("plain", "\r\nplain line\r\n", Some(true), true),
    ("stuffed dot", "\r\n..\r\n", Some(true), true),
    ("dot line in BDAT", "\r\n.\r\n", None, true),
    ("bare CR dot CRLF", "\r.\r\n", Some(false), false),
    ("bare CR dot LF", "\r.\n", Some(false), false),
    ("bare CR dot CR", "\r.\r", Some(false), false),
    ("bare LF dot LF", "\n.\n", Some(false), false),
    ("NUL before the dot", "\r\n\0.\r\n", Some(false), false),
];

fn content(id: &str, marker: &str) -> Vec<u8> {
    format!("Subject: {id}\r\n\r\nT{marker}{SMUGGLED}.\r\n").into_bytes()
}

/// Send one message over `c` and return the final reply.
fn send(c: &mut Client, bdat: bool, body: &[u8]) -> (u16, String) {
    assert_eq!(c.cmd("MAIL FROM:<a@s.test>").0, 250);
    assert_eq!(c.cmd("RCPT TO:<b@lenient.test>").0, 250);
    if bdat {
        c.send_raw(format!("BDAT {} LAST\r\n", body.len()).as_bytes());
        c.send_raw(body);
    } else {
        assert_eq!(c.cmd("DATA").0, 354);
        // Raw: a hostile client does not stuff, and the body ends "\r\n.\r\n" already.
        c.send_raw(body);
    }
    c.reply()
}

#[test]
fn no_input_smuggles_a_message_past_a_lenient_next_hop() {
    let sink = Sink::lenient();
    let s = TestServer::start(&format!(
        "[[listener]]\nname = \"mx\"\naddress = \"127.0.0.1:0\"\ntls = \"none\"\n\
         [outbound]\nidle_timeout = \"200ms\"\n{}",
        route_all(sink.addr)
    ));
    let mut c = Client::connect(s.addr("mx"));
    assert_eq!(c.cmd("EHLO attacker.test").0, 250);
    let mut accepted = Vec::new();
    for (name, marker, via_data, via_bdat) in MARKERS {
        for (bdat, expect) in [(false, *via_data), (true, Some(*via_bdat))] {
            let Some(expect) = expect else { continue };
            let id = format!("{name} via {}", if bdat { "BDAT" } else { "DATA" });
            let (code, text) = send(&mut c, bdat, &content(&id, marker));
            if expect {
                assert_eq!(code, 250, "{id}: {text}");
                accepted.push(id);
            } else {
                assert_eq!(code, 550, "{id}: {text}");
                assert!(text.starts_with("550 5.6.0"), "{id}: {text}");
            }
        }
    }
    assert_eq!(c.cmd("QUIT").0, 221);
    // Everything acknowledged has been delivered, and every connection to the next
    // hop has closed, so the next hop has read all mxring sent it.
    s.wait_queue_empty(60);
    wait_until(
        Duration::from_secs(30),
        "connections to the next hop to close",
        || sink.open_connections() == 0,
    )
    .unwrap();
    let seen = sink.seen();
    let smuggled: Vec<_> = seen
        .iter()
        .filter(|m| m.from != "a@s.test")
        .map(|m| m.from.clone())
        .collect();
    assert!(smuggled.is_empty(), "smuggled messages from {smuggled:?}");
    for id in &accepted {
        let subject = format!("Subject: {id}").into_bytes();
        let n = seen.iter().filter(|m| m.lines.contains(&subject)).count();
        assert_eq!(n, 1, "{id}: the next hop saw {n} messages");
    }
    assert_eq!(
        seen.len(),
        accepted.len(),
        "the next hop saw {} messages for {} accepted",
        seen.len(),
        accepted.len()
    );
    // The smuggled commands arrived as content of the one message, intact.
    let dot_case = seen
        .iter()
        .find(|m| {
            m.lines
                .iter()
                .any(|l| l == b"Subject: dot line in BDAT via BDAT")
        })
        .unwrap();
    assert!(dot_case.lines.iter().any(|l| l == b"."));
    assert!(dot_case
        .lines
        .iter()
        .any(|l| l == b"MAIL FROM:<smuggled@evil.test>"));
}
