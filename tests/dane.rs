//! DANE end to end (RFC 7672): mxring resolves MX, A and TLSA through the test DNS
//! server acting as a validating resolver (AD bit, `dnssec = "trust-ad"`), and
//! delivers to receiving servers started here with their own certificates. Each
//! case checks both what arrived and what did not.

mod common;
#[allow(dead_code)]
mod dns_server;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use aws_lc_rs::digest;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use common::client::Client;
use common::sink::{Script, Sink};
use common::TestServer;
use dns_server::{DnsServer, Zone};

const MX: &str = "mx.dane.test";

type Identity = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

/// A self-signed certificate for the MX host.
fn self_signed() -> Identity {
    mxring::tls::self_signed(MX).unwrap()
}

/// A test CA and a certificate for `name` it signed; the chain sent is leaf + CA.
fn ca_signed(name: &str) -> (Identity, CertificateDer<'static>) {
    let ca_key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name
        .push(rcgen::DnType::CommonName, "DANE Test CA");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = p.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec![name.to_string()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    let der_key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    (
        (vec![leaf.der().clone(), ca.der().clone()], der_key),
        ca.der().clone(),
    )
}

fn sha256(selector: u8, cert: &CertificateDer<'_>) -> Vec<u8> {
    let bytes = mxring::dane::selected(selector, cert).unwrap();
    digest::digest(&digest::SHA256, &bytes).as_ref().to_vec()
}

fn tls_sink(id: Identity) -> Sink {
    Sink::start(Script {
        tls: Some(id),
        ..Default::default()
    })
}

/// The zone for dest.test → mx.dane.test → 127.0.0.1, signed.
fn zone() -> Zone {
    Zone::new()
        .mx("dest.test", 10, MX)
        .a(MX, Ipv4Addr::LOCALHOST)
        .signed()
}

fn tlsa_name(dest: &Sink) -> String {
    format!("_{}._tcp.{MX}", dest.addr.port())
}

/// mxring with `level` for dest.test, DNS through `dns`, MX port = `dest`'s port;
/// DSNs for sender.test go to `senders` (a literal address: DANE never applies to
/// it, so it gets the default `may`).
fn mxring(dns: &DnsServer, dest: &Sink, senders: &Sink, level: &str) -> TestServer {
    TestServer::start(&format!(
        "[[listener]]\nname = \"mx\"\naddress = \"127.0.0.1:0\"\ntls = \"starttls\"\n\
         [dns]\nnameservers = [\"{}\"]\ntimeout = \"2s\"\ndnssec = \"trust-ad\"\n\
         [outbound]\nport = {}\n\
         [[outbound_tls]]\ndomains = [\"dest.test\"]\nlevel = \"{level}\"\n\
         [[route]]\ndomains = [\"sender.test\"]\nnext_hop = \"[{}]:{}\"\n\
         [queue]\nretry = [\"1h\"]\n",
        dns.nameserver(),
        dest.addr.port(),
        senders.addr.ip(),
        senders.addr.port()
    ))
}

fn send(s: &TestServer, notify_success: bool) {
    let mut c = Client::connect(s.addr("mx"));
    c.cmd("EHLO client.test");
    assert_eq!(c.cmd("MAIL FROM:<alice@sender.test>").0, 250);
    let notify = if notify_success {
        " NOTIFY=SUCCESS"
    } else {
        ""
    };
    assert_eq!(c.cmd(&format!("RCPT TO:<bob@dest.test>{notify}")).0, 250);
    assert_eq!(c.cmd("DATA").0, 354);
    c.send_raw(b"Subject: dane\r\n\r\nbody\r\n.\r\n");
    assert_eq!(c.reply().0, 250);
}

/// The recipient's view once the first attempt is over (bounded wait).
fn after_first_attempt(s: &TestServer) -> mxring::admin::RecipientView {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(r) = s
            .queue()
            .into_iter()
            .flat_map(|m| m.recipients)
            .find(|r| r.attempts >= 1)
        {
            return r;
        }
        assert!(Instant::now() < deadline, "no attempt within 20 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn dsn_field(dsn: &common::sink::Arrival, name: &str) -> String {
    let p = mxring::dsn::parse_delivery_status(&dsn.data).unwrap();
    p.recipients[0].field(name).unwrap_or("").to_string()
}

#[test]
fn dane_ee_match_is_delivered_and_the_dsn_names_the_record() {
    let id = self_signed();
    let hash = sha256(1, &id.0[0]);
    let dest = tls_sink(id);
    let senders = Sink::start(Script::default());
    let dns = DnsServer::start(zone().tlsa(&tlsa_name(&dest), 3, 1, 1, hash));
    let s = mxring(&dns, &dest, &senders, "dane");
    send(&s, true);
    let got = dest.next(20);
    assert!(got.tls.is_some(), "delivered over TLS");
    let relayed = senders.next(20);
    assert_eq!(dsn_field(&relayed, "Action"), "relayed");
    let remote = dsn_field(&relayed, "Remote-MTA");
    assert!(
        remote.contains("DANE-EE TLSA 3 1 1") && remote.contains("matched the server certificate"),
        "{remote}"
    );
    assert!(
        dns.counters
            .queries()
            .iter()
            .any(|q| q.starts_with(&format!("{} TLSA", tlsa_name(&dest)))),
        "TLSA asked at the MX host as named: {:?}",
        dns.counters.queries()
    );
}

#[test]
fn dane_ee_mismatch_is_deferred_and_never_delivered() {
    let dest = tls_sink(self_signed());
    let senders = Sink::start(Script::default());
    let other = self_signed();
    let dns = DnsServer::start(zone().tlsa(&tlsa_name(&dest), 3, 1, 1, sha256(1, &other.0[0])));
    let s = mxring(&dns, &dest, &senders, "dane");
    send(&s, false);
    let r = after_first_attempt(&s);
    let reply = r.last_reply.unwrap_or_default();
    assert_eq!(r.state, "TemporaryFailure", "{reply}");
    assert!(
        reply.starts_with("4.7.5")
            && reply.contains("TLSA")
            && reply.contains("did not match")
            && reply.contains(MX),
        "{reply}"
    );
    assert!(
        dest.arrivals.try_recv().is_err(),
        "nothing reached the host"
    );
}

#[test]
fn dane_ta_with_a_test_ca_is_delivered() {
    let (id, ca) = ca_signed(MX);
    let dest = tls_sink(id);
    let senders = Sink::start(Script::default());
    let dns = DnsServer::start(zone().tlsa(&tlsa_name(&dest), 2, 0, 1, sha256(0, &ca)));
    let s = mxring(&dns, &dest, &senders, "dane-only");
    send(&s, true);
    let got = dest.arrivals.recv_timeout(Duration::from_secs(20));
    assert!(got.is_ok(), "not delivered: {:?}", s.queue());
    assert!(got.unwrap().tls.is_some());
    let remote = dsn_field(&senders.next(20), "Remote-MTA");
    assert!(remote.contains("DANE-TA TLSA 2 0 1"), "{remote}");
}

#[test]
fn dane_ta_name_mismatch_is_deferred() {
    let (id, ca) = ca_signed("elsewhere.test");
    let dest = tls_sink(id);
    let senders = Sink::start(Script::default());
    let dns = DnsServer::start(zone().tlsa(&tlsa_name(&dest), 2, 0, 1, sha256(0, &ca)));
    let s = mxring(&dns, &dest, &senders, "dane");
    send(&s, false);
    let reply = after_first_attempt(&s).last_reply.unwrap_or_default();
    assert!(
        reply.contains("did not match") && reply.contains("host name"),
        "{reply}"
    );
    assert!(dest.arrivals.try_recv().is_err());
}

#[test]
fn no_tlsa_means_may_plaintext_delivery() {
    let dest = Sink::start(Script::default()); // no STARTTLS at all
    let senders = Sink::start(Script::default());
    let dns = DnsServer::start(zone());
    let s = mxring(&dns, &dest, &senders, "dane");
    send(&s, false);
    assert_eq!(dest.next(20).tls, None, "secure denial of TLSA: may");
}

#[test]
fn unusable_tlsa_means_encrypt() {
    let plain = Sink::start(Script::default());
    let senders = Sink::start(Script::default());
    let dns = DnsServer::start(zone().tlsa(&tlsa_name(&plain), 0, 1, 1, vec![9; 32]));
    let s = mxring(&dns, &plain, &senders, "dane");
    send(&s, false);
    let reply = after_first_attempt(&s).last_reply.unwrap_or_default();
    assert!(
        reply.contains("4.7.4") && reply.contains("TLS is required"),
        "{reply}"
    );
    assert!(plain.arrivals.try_recv().is_err(), "never in plaintext");

    // The same records in front of a TLS host with any certificate: delivered.
    let tls = tls_sink(self_signed());
    let dns = DnsServer::start(zone().tlsa(&tlsa_name(&tls), 0, 1, 1, vec![9; 32]));
    let s = mxring(&dns, &tls, &senders, "dane");
    send(&s, false);
    assert!(tls.next(20).tls.is_some());
}

#[test]
fn servfail_on_tlsa_is_deferred_not_plaintext() {
    let dest = Sink::start(Script::default());
    let senders = Sink::start(Script::default());
    let dns =
        DnsServer::start(zone().rcode(&tlsa_name(&dest), RecordType::TLSA, ResponseCode::ServFail));
    let s = mxring(&dns, &dest, &senders, "dane");
    send(&s, false);
    let r = after_first_attempt(&s);
    let reply = r.last_reply.unwrap_or_default();
    assert_eq!(r.state, "TemporaryFailure");
    assert!(
        reply.starts_with("4.7.5") && reply.contains("SERVFAIL"),
        "{reply}"
    );
    assert!(
        dest.arrivals.try_recv().is_err(),
        "no downgrade to plaintext"
    );
}

#[test]
fn mx_without_ad_means_dane_is_not_applied() {
    // A TLSA record that would not match, behind an MX RRset that did not validate.
    let dest = tls_sink(self_signed());
    let senders = Sink::start(Script::default());
    let dns = DnsServer::start(zone().unsigned("dest.test", RecordType::MX).tlsa(
        &tlsa_name(&dest),
        3,
        1,
        1,
        vec![7; 32],
    ));
    let s = mxring(&dns, &dest, &senders, "dane");
    send(&s, false);
    assert!(dest.next(20).tls.is_some(), "opportunistic TLS, no DANE");
    assert!(
        !dns.counters.queries().iter().any(|q| q.contains("TLSA")),
        "no TLSA lookup behind an insecure MX: {:?}",
        dns.counters.queries()
    );
}

#[test]
fn dane_only_without_tlsa_is_deferred() {
    let dest = tls_sink(self_signed());
    let senders = Sink::start(Script::default());
    let dns = DnsServer::start(zone());
    let s = mxring(&dns, &dest, &senders, "dane-only");
    send(&s, false);
    let reply = after_first_attempt(&s).last_reply.unwrap_or_default();
    assert!(
        reply.contains("dane-only") && reply.contains("no TLSA records"),
        "{reply}"
    );
    assert!(dest.arrivals.try_recv().is_err());
}

#[test]
fn unsigned_address_records_mean_dane_is_not_applied() {
    let dest = tls_sink(self_signed());
    let senders = Sink::start(Script::default());
    let dns = DnsServer::start(
        zone()
            .unsigned(MX, RecordType::A)
            .unsigned(MX, RecordType::AAAA)
            .tlsa(&tlsa_name(&dest), 3, 1, 1, vec![7; 32]),
    );
    let s = mxring(&dns, &dest, &senders, "dane");
    send(&s, false);
    assert!(dest.next(20).tls.is_some());
    assert!(!dns.counters.queries().iter().any(|q| q.contains("TLSA")));
}

#[test]
fn tlsa_at_the_cname_target_first_then_at_the_mx_host_as_named() {
    let id = self_signed();
    let hash = sha256(1, &id.0[0]);
    let dest = tls_sink(id);
    let senders = Sink::start(Script::default());
    let port = dest.addr.port();
    // mx.dane.test is a CNAME; the target has no TLSA, the MX name has it.
    let dns = DnsServer::start(
        Zone::new()
            .mx("dest.test", 10, MX)
            .cname(MX, "real.dane.test")
            .a("real.dane.test", Ipv4Addr::LOCALHOST)
            .signed()
            .tlsa(&tlsa_name(&dest), 3, 1, 1, hash),
    );
    let s = mxring(&dns, &dest, &senders, "dane-only");
    send(&s, false);
    assert!(dest.next(20).tls.is_some());
    let tlsa: Vec<String> = dns
        .counters
        .queries()
        .into_iter()
        .filter(|q| q.contains("TLSA"))
        .collect();
    assert!(
        tlsa.first()
            .is_some_and(|q| q.starts_with(&format!("_{port}._tcp.real.dane.test TLSA")))
            && tlsa
                .iter()
                .any(|q| q.starts_with(&format!("_{port}._tcp.{MX} TLSA"))),
        "{tlsa:?}"
    );
}
