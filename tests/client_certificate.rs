//! `[[outbound_tls]] client_certificate`: a next hop that requires a client
//! certificate gets ours, over a real handshake; without it the handshake fails
//! and the message waits rather than going out another way.

use mxring_testkit::client::Client;
use mxring_testkit::sink::{Script, Sink};
use mxring_testkit::TestServer;

struct Pki {
    ca: rustls::pki_types::CertificateDer<'static>,
    ca_cert: rcgen::Certificate,
    ca_key: rcgen::KeyPair,
}

fn pki() -> Pki {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "partner client CA");
    let ca_cert = params.self_signed(&ca_key).unwrap();
    Pki {
        ca: ca_cert.der().clone(),
        ca_cert,
        ca_key,
    }
}

/// A client certificate issued by the partner's CA, written as PEM files.
fn client_cert(pki: &Pki, dir: &std::path::Path) -> Vec<u8> {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["mx.test".to_string()]).unwrap();
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.signed_by(&key, &pki.ca_cert, &pki.ca_key).unwrap();
    std::fs::write(dir.join("client.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("client.key"), key.serialize_pem()).unwrap();
    cert.der().to_vec()
}

fn server(partner: &Sink, rule_extra: &str) -> TestServer {
    TestServer::start(&format!(
        "[[listener]]\nname = \"mx\"\naddress = \"127.0.0.1:0\"\n\
         [[route]]\ndomains = [\"partner.test\"]\nnext_hop = \"[{}]:{}\"\n\
         [[outbound_tls]]\ndomains = [\"partner.test\"]\nlevel = \"encrypt\"\n{rule_extra}[queue]\nretry = [\"1h\"]\n",
        partner.addr.ip(),
        partner.addr.port()
    ))
}

fn send(s: &TestServer) {
    let mut c = Client::connect(s.addr("mx"));
    c.cmd("EHLO client.test");
    assert_eq!(
        c.send_mail("a@ours.test", &["b@partner.test"], "Subject: x\n\ny\n")
            .0,
        250
    );
}

fn partner(pki: &Pki) -> Sink {
    Sink::start(Script {
        tls: Some(mxring::tls::self_signed("mx.partner.test").unwrap()),
        client_ca: Some(pki.ca.clone()),
        ..Default::default()
    })
}

#[test]
fn a_partner_that_requires_a_client_certificate_gets_ours() {
    let pki = pki();
    let dir = tempfile::tempdir().unwrap();
    let ours = client_cert(&pki, dir.path());
    let partner = partner(&pki);
    let s = server(
        &partner,
        &format!(
            "client_certificate = \"{0}/client.pem\"\nclient_private_key = \"{0}/client.key\"\n",
            dir.path().display()
        ),
    );
    send(&s);
    let got = partner.next(20);
    assert!(got.tls.is_some());
    assert_eq!(got.client_cert.as_deref(), Some(ours.as_slice()));
}

#[test]
fn without_the_client_certificate_the_partner_refuses_and_the_message_waits() {
    let pki = pki();
    let partner = partner(&pki);
    let s = server(&partner, "");
    send(&s);
    let reply = mxring_testkit::wait_for(std::time::Duration::from_secs(20), "an attempt", || {
        let q = s.queue();
        q.first().and_then(|m| m.recipients[0].last_reply.clone())
    })
    .unwrap();
    // Under TLS 1.3 the refusal comes as an alert after our side of the handshake.
    assert!(
        reply.starts_with("4.") && reply.contains("CertificateRequired"),
        "{reply}"
    );
    assert_eq!(s.queue().len(), 1, "the message waits for a retry");
    assert!(partner.arrivals.try_recv().is_err());
}
