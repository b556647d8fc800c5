//! Open-relay tricks against a server that is the MX for one local domain and
//! relays for nobody. None of them may relay: each is refused, or accepted as
//! mail for the local domain and delivered there, never to the other domain.

use mxring_testkit::client::Client;
use mxring_testkit::sink::{Script, Sink};
use mxring_testkit::TestServer;

#[test]
fn classic_relay_tricks_never_relay() {
    let local = Sink::start(Script::default());
    let other = Sink::start(Script::default());
    let s = TestServer::start(&format!(
        "[[listener]]\nname = \"mx\"\naddress = \"127.0.0.1:0\"\ntls = \"none\"\n\
         [relay]\nnetworks = []\ndomains = [\"local.test\"]\n\
         [[route]]\ndomains = [\"local.test\"]\nnext_hop = \"[127.0.0.1]:{}\"\n\
         [[route]]\ndomains = [\"*\"]\nnext_hop = \"[127.0.0.1]:{}\"\n",
        local.addr.port(),
        other.addr.port()
    ));
    // (recipient, expected reply code)
    let cases: &[(&str, u16)] = &[
        ("user@other.test", 554),                // plain relay attempt
        ("user%other.test@local.test", 250),     // percent hack: a local mailbox
        ("@local.test:user@other.test", 554),    // source route: the final mailbox counts
        ("@other.test:user@local.test", 250),    // source route to us: local
        ("\"user@other.test\"@local.test", 250), // quoted local part with @
        ("other.test!user@local.test", 250),     // bang path: a local mailbox
        ("user@other.test@local.test", 501),     // two unquoted @
        ("user@other.test.", 501),               // trailing dot
        ("user@local.test.", 501),               // trailing dot on our own domain
        ("user@[127.0.0.1]", 554),               // IP literal
        ("user@[IPv6:::1]", 554),                // IPv6 literal
        ("user%other.test", 501),                // no domain at all
        ("USER@LOCAL.TEST", 250),                // case does not matter
        ("user@sub.local.test", 554),            // a subdomain is not ours
        ("user@local.test.other.test", 554),     // a suffix trick
    ];
    let mut accepted = 0;
    for (rcpt, expected) in cases {
        let mut c = Client::connect(s.addr("mx"));
        c.cmd("EHLO outside.test");
        assert_eq!(c.cmd("MAIL FROM:<spammer@outside.test>").0, 250);
        let (code, text) = c.cmd(&format!("RCPT TO:<{rcpt}>"));
        assert_eq!(code, *expected, "RCPT TO:<{rcpt}> -> {text}");
        if code == 250 {
            c.cmd("DATA");
            c.send_raw(b"Subject: relay test\r\n\r\nx\r\n.\r\n");
            assert_eq!(c.reply().0, 250);
            accepted += 1;
        }
    }
    for _ in 0..accepted {
        let a = local.next(20);
        assert!(
            a.rcpts[0].to_ascii_lowercase().ends_with("@local.test"),
            "{:?}",
            a.rcpts
        );
    }
    assert!(
        other
            .arrivals
            .recv_timeout(std::time::Duration::from_millis(500))
            .is_err(),
        "relayed to another domain"
    );
}
