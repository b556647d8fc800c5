//! REQUIRETLS end to end (RFC 8689): refused over plaintext, advertised under
//! TLS, and relayed only to a next hop that offers REQUIRETLS over TLS whose
//! certificate verified; otherwise the sender gets a failure DSN (5.7.10) that
//! carries the headers only.

use std::net::Ipv4Addr;

use mxring::config::TlsVersion;
use mxring_testkit::ca::Ca;
use mxring_testkit::client::Client;
use mxring_testkit::dns_server::{DnsServer, Zone};
use mxring_testkit::sink::{Script, Sink};
use mxring_testkit::{TestServer, Toml};

const MX: &str = "mx.rt.test";

struct Env {
    ca: Ca,
    files: tempfile::TempDir,
    senders: Sink,
    dns: DnsServer,
}

impl Env {
    fn new() -> Env {
        Env {
            ca: Ca::new(),
            files: tempfile::tempdir().unwrap(),
            senders: Sink::start(Script::default()),
            dns: DnsServer::start(
                Zone::new()
                    .mx("dest.test", 10, MX)
                    .a(MX, Ipv4Addr::LOCALHOST),
            ),
        }
    }

    /// mxring delivering dest.test by MX to `dest`; `rule` is an optional
    /// `[[outbound_tls]]` body for dest.test.
    fn start(&self, dest: &Sink, rule: Option<&str>) -> TestServer {
        let rule = match rule {
            Some(r) => format!(
                "[[outbound_tls]]\ndomains = [\"dest.test\"]\n{r}ca_file = \"{}\"\n",
                self.ca.write(self.files.path()).display()
            ),
            None => String::new(),
        };
        TestServer::start(
            &Toml::default()
                .listener("mx", 0, "starttls")
                .extra(&format!(
                    "[dns]\nnameservers = [\"{}\"]\ntimeout = \"2s\"\n\
                     [outbound]\nport = {}\nmta_sts = false\n{rule}",
                    self.dns.nameserver(),
                    dest.addr.port(),
                ))
                .route("\"sender.test\"", self.senders.addr)
                .queue("retry = [\"1h\"]")
                .text(),
        )
    }

    fn hop(&self, requiretls: bool) -> Sink {
        Sink::start(Script {
            tls: Some(self.ca.issue(MX)),
            requiretls,
            ..Default::default()
        })
    }
}

/// Submit over STARTTLS with REQUIRETLS; a body line the DSN must not show.
fn send_requiretls(s: &TestServer) {
    let mut c = Client::connect(s.addr("mx"));
    c.cmd("EHLO client.test");
    c.starttls(TlsVersion::Tls13);
    let (_, ehlo) = c.cmd("EHLO client.test");
    assert!(ehlo.contains("REQUIRETLS"), "advertised under TLS: {ehlo}");
    assert_eq!(c.cmd("MAIL FROM:<alice@sender.test> REQUIRETLS").0, 250);
    assert_eq!(c.cmd("RCPT TO:<bob@dest.test> NOTIFY=FAILURE").0, 250);
    assert_eq!(c.cmd("DATA").0, 354);
    c.send_raw(b"Subject: for your eyes only\r\n\r\nthe secret body line\r\n.\r\n");
    assert_eq!(c.reply().0, 250);
}

#[test]
fn requiretls_over_plaintext_is_refused_and_not_advertised() {
    let env = Env::new();
    let dest = env.hop(true);
    let s = env.start(&dest, None);
    let mut c = Client::connect(s.addr("mx"));
    let (_, ehlo) = c.cmd("EHLO client.test");
    assert!(!ehlo.contains("REQUIRETLS"), "{ehlo}");
    let (code, text) = c.cmd("MAIL FROM:<alice@sender.test> REQUIRETLS");
    assert_eq!(code, 530, "{text}");
    assert!(text.contains("5.7.10 REQUIRETLS"), "{text}");
    assert_eq!(
        c.cmd("MAIL FROM:<alice@sender.test>").0,
        250,
        "plain MAIL still works"
    );
}

#[test]
fn a_hop_with_requiretls_and_a_verified_certificate_gets_it_passed_on() {
    let env = Env::new();
    let dest = env.hop(true);
    let s = env.start(&dest, Some("level = \"verify\"\n"));
    send_requiretls(&s);
    let got = dest.next(20);
    assert!(got.tls.is_some());
    assert!(
        got.mail_line.ends_with(" REQUIRETLS"),
        "the parameter is passed on: {}",
        got.mail_line
    );
}

#[test]
fn a_hop_without_requiretls_gets_nothing_and_the_sender_a_redacted_failure_dsn() {
    let env = Env::new();
    let dest = env.hop(false);
    let s = env.start(&dest, Some("level = \"verify\"\n"));
    send_requiretls(&s);
    let dsn = env.senders.next(20);
    let text = String::from_utf8_lossy(&dsn.data).to_string();
    let parsed = mxring::dsn::parse_delivery_status(&dsn.data).unwrap();
    let r = &parsed.recipients[0];
    assert_eq!(r.field("Action"), Some("failed"), "{text}");
    assert_eq!(r.field("Status"), Some("5.7.10"), "{text}");
    assert!(text.contains("REQUIRETLS"), "{text}");
    assert!(
        text.contains("for your eyes only"),
        "headers are returned: {text}"
    );
    assert!(
        !text.contains("the secret body line"),
        "the body is redacted: {text}"
    );
    assert!(dest.arrivals.try_recv().is_err(), "nothing reached the hop");
}

#[test]
fn requiretls_raises_an_opportunistic_level_to_verified_tls() {
    let env = Env::new();
    // REQUIRETLS offered, but a certificate nobody vouches for.
    let dest = Sink::start(Script {
        tls: Some(mxring::tls::self_signed(MX).unwrap()),
        requiretls: true,
        ..Default::default()
    });
    let s = env.start(&dest, None);
    send_requiretls(&s);
    let r = s.after_first_attempt(20);
    let reply = r.last_reply.unwrap_or_default();
    assert_eq!(r.state, "deferred", "{reply}");
    assert!(
        reply.contains("REQUIRETLS") && reply.contains("certificate"),
        "{reply}"
    );
    assert!(dest.arrivals.try_recv().is_err(), "nothing reached the hop");
}
