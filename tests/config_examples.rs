//! The example configs in config/examples reproduce the reference product pages:
//! each loads, and its rules give the promised decisions.

use std::net::IpAddr;

use mxring::config::{load_file, ListenerTls, OnTlsFailure, TlsLevel};
use mxring::policy::{OutboundFacts, Policy};

fn load(name: &str) -> (mxring::config::Config, Policy) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("config/examples")
        .join(name);
    let c = load_file(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
    let p = Policy::from_config(&c, name);
    (c, p)
}

fn out(
    p: &Policy,
    sender: &str,
    rcpt: &str,
    mx_ip: Option<&str>,
) -> mxring::policy::OutboundDecision {
    let domain = rcpt.rsplit_once('@').unwrap().1;
    p.outbound(&OutboundFacts {
        sender,
        account: None,
        recipient: rcpt,
        domain,
        mx_host: Some("mx.x"),
        mx_ip: mx_ip.map(|i| i.parse().unwrap()),
    })
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn dotplex() {
    let (c, p) = load("dotplex.toml");
    assert_eq!(c.listeners[1].tls, ListenerTls::Required);
    assert_eq!(
        out(&p, "x@customer-a.example", "y@anywhere.example", None).level,
        TlsLevel::Encrypt
    );
    // The per-account rule keys on the authenticated login: a forged MAIL FROM
    // of the ceo does not trigger it, the ceo's own submission does.
    assert_eq!(
        out(&p, "ceo@customer-b.example", "y@anywhere.example", None).level,
        TlsLevel::May
    );
    let ceo = p.outbound(&OutboundFacts {
        sender: "ceo@customer-b.example",
        account: Some("ceo@customer-b.example"),
        recipient: "y@anywhere.example",
        domain: "anywhere.example",
        mx_host: Some("mx.x"),
        mx_ip: None,
    });
    assert_eq!(ceo.level, TlsLevel::Encrypt);
    assert_eq!(c.listeners[2].auth, mxring::config::ListenerAuth::Required);
    assert_eq!(
        out(&p, "cfo@customer-b.example", "y@anywhere.example", None).level,
        TlsLevel::May
    );
    assert_eq!(c.queue.delay_warning_after.0.as_secs(), 3600);
    assert_eq!(c.queue.give_up_after.0.as_secs(), 86400);
}

#[test]
fn perfectmail() {
    let (_, p) = load("perfectmail.toml");
    let d = out(&p, "a@our-domain.example", "b@mail.their-domain.com", None);
    assert_eq!(
        (d.level, d.on_failure),
        (TlsLevel::Encrypt, OnTlsFailure::Bounce)
    );
    assert_eq!(
        out(
            &p,
            "a@our-domain.example",
            "b@else.example",
            Some("207.219.44.9")
        )
        .level,
        TlsLevel::Encrypt
    );
    assert_eq!(
        out(
            &p,
            "a@our-domain.example",
            "b@else.example",
            Some("204.10.243.26")
        )
        .level,
        TlsLevel::Encrypt
    );
    assert_eq!(
        out(
            &p,
            "a@our-domain.example",
            "b@else.example",
            Some("198.51.100.1")
        )
        .level,
        TlsLevel::May
    );
    assert!(
        p.inbound_at_mail(ip("207.219.44.1"), "x@y", false)
            .unwrap()
            .require_tls
    );
}

#[test]
fn mailassure() {
    let (_, p) = load("mailassure.toml");
    assert!(p
        .inbound_at_mail(ip("192.0.2.1"), "CEO@partner.invalid", false)
        .is_some_and(|d| d.require_tls));
    assert!(p
        .inbound_at_mail(ip("192.0.2.1"), "teller@bank.invalid", false)
        .is_some_and(|d| d.require_tls));
    // Other senders: per recipient local part.
    assert_eq!(
        p.inbound_at_mail(ip("192.0.2.1"), "a@else.invalid", false),
        None
    );
    assert!(
        p.inbound_at_rcpt(
            ip("192.0.2.1"),
            Some("a@else.invalid"),
            "john.smith@domain.invalid",
            false
        )
        .require_tls
    );
    assert!(
        !p.inbound_at_rcpt(
            ip("192.0.2.1"),
            Some("a@else.invalid"),
            "jane@domain.invalid",
            false
        )
        .require_tls
    );
    assert_eq!(
        out(&p, "x@bank.invalid", "y@domain.invalid", None).level,
        TlsLevel::Encrypt
    );
    assert_eq!(
        out(&p, "x@else.invalid", "y@domain.invalid", None).level,
        TlsLevel::May
    );
}

#[test]
fn duocircle() {
    let (c, p) = load("duocircle.toml");
    assert!(
        c.tls.certificate.is_none(),
        "self-signed, generated at start"
    );
    assert_eq!(
        out(&p, "a@customer.example", "b@else.example", None).level,
        TlsLevel::Encrypt
    );
    assert_eq!(
        out(&p, "a@legacy.example", "b@else.example", None).level,
        TlsLevel::None
    );
    // End to end means every sender: the legacy account's "TLS off" is for mail
    // to the world, never for the hop to the customer's own server.
    for sender in ["a@else.example", "old@legacy.example", "a@customer.example"] {
        assert_eq!(
            out(&p, sender, "b@customer.example", None).level,
            TlsLevel::Verify,
            "{sender} to the customer's server"
        );
    }
}
