//! The TLSA matcher and verifier against certificates made here with rcgen: every
//! usage × selector × matching type, wrong data, DANE-TA with the anchor in and out
//! of the chain, expiry and names under each usage.

use aws_lc_rs::digest;
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, UnixTime};

use super::dane_chain::verify;
use crate::dane::*;

struct Pki {
    root: CertificateDer<'static>,
    root_spki: Vec<u8>,
    inter: CertificateDer<'static>,
    leaf: CertificateDer<'static>,
    expired_leaf: CertificateDer<'static>,
    other_name_leaf: CertificateDer<'static>,
}

fn ca_params(name: &str) -> CertificateParams {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name
        .push(rcgen::DnType::CommonName, name.to_string());
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p
}

/// root → intermediate → leaves for mx.dane.test (one expired, one for another name).
fn pki() -> Pki {
    let root_key = KeyPair::generate().unwrap();
    let root = ca_params("Test Root").self_signed(&root_key).unwrap();
    let inter_key = KeyPair::generate().unwrap();
    let inter = ca_params("Test Intermediate")
        .signed_by(&inter_key, &root, &root_key)
        .unwrap();
    let leaf_for = |name: &str, expired: bool| {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(vec![name.to_string()]).unwrap();
        if expired {
            p.not_before = rcgen::date_time_ymd(2001, 1, 1);
            p.not_after = rcgen::date_time_ymd(2002, 1, 1);
        }
        p.signed_by(&key, &inter, &inter_key).unwrap().der().clone()
    };
    Pki {
        root_spki: root_key.public_key_der(),
        root: root.der().clone(),
        inter: inter.der().clone(),
        leaf: leaf_for("mx.dane.test", false),
        expired_leaf: leaf_for("mx.dane.test", true),
        other_name_leaf: leaf_for("elsewhere.test", false),
    }
}

fn data(selector: u8, matching: u8, cert: &[u8]) -> Vec<u8> {
    let bytes = selected(selector, cert).unwrap();
    match matching {
        0 => bytes,
        1 => digest::digest(&digest::SHA256, &bytes).as_ref().to_vec(),
        _ => digest::digest(&digest::SHA512, &bytes).as_ref().to_vec(),
    }
}

fn set(records: Vec<Tlsa>) -> DaneSet {
    DaneSet {
        base: "mx.dane.test".into(),
        names: vec!["mx.dane.test".into()],
        records,
    }
}

fn chain(p: &Pki, leaf: &CertificateDer<'static>) -> Vec<CertificateDer<'static>> {
    vec![leaf.clone(), p.inter.clone(), p.root.clone()]
}

#[test]
fn every_usage_selector_matching_combination() {
    let p = pki();
    let full = chain(&p, &p.leaf);
    for (usage, cert, index) in [(3u8, &p.leaf, 0usize), (2, &p.inter, 1), (2, &p.root, 2)] {
        for selector in [0u8, 1] {
            for matching in [0u8, 1, 2] {
                let good = Tlsa::new(usage, selector, matching, data(selector, matching, cert));
                assert!(good.usable(), "{good}");
                let m = verify(&set(vec![good.clone()]), &full, UnixTime::now())
                    .unwrap_or_else(|e| panic!("{good} must match: {e}"));
                assert_eq!(m.record, good);
                assert_eq!(m.cert_index, Some(index), "{good}");

                // Wrong data: a flipped digest bit, or another certificate's bytes.
                let mut flipped = good.clone();
                let last = flipped.data.len() - 1;
                flipped.data[last] ^= 0x01;
                let other = Tlsa::new(
                    usage,
                    selector,
                    matching,
                    data(selector, matching, &p.other_name_leaf),
                );
                let wrongs = if matching == 0 {
                    vec![other]
                } else {
                    vec![flipped, other]
                };
                for wrong in wrongs {
                    assert!(!matches(&wrong, cert), "{wrong}");
                    let err = verify(&set(vec![wrong.clone()]), &full, UnixTime::now())
                        .expect_err("wrong data never matches");
                    assert!(err.to_string().contains("TLSA"), "{err}");
                }
            }
        }
    }
}

#[test]
fn pkix_usages_and_bad_lengths_are_unusable() {
    let p = pki();
    for usage in [0u8, 1] {
        let r = Tlsa::new(usage, 1, 1, data(1, 1, &p.leaf));
        assert!(!r.usable());
        assert!(r.unusable_reason().unwrap().contains("PKIX"));
    }
    assert!(!Tlsa::new(3, 1, 1, vec![0; 31]).usable(), "short SHA-256");
    assert!(
        !Tlsa::new(3, 1, 2, vec![0; 32]).usable(),
        "SHA-512 needs 64"
    );
    assert!(!Tlsa::new(3, 2, 1, vec![0; 32]).usable(), "selector 2");
    assert!(!Tlsa::new(3, 1, 3, vec![0; 32]).usable(), "matching 3");
    assert!(!Tlsa::new(4, 1, 1, vec![0; 32]).usable(), "usage 4");
}

#[test]
fn dane_ee_ignores_expiry_and_names() {
    let p = pki();
    for leaf in [&p.expired_leaf, &p.other_name_leaf] {
        let r = Tlsa::new(3, 1, 1, data(1, 1, leaf));
        // Even without the rest of the chain.
        let m = verify(&set(vec![r]), std::slice::from_ref(leaf), UnixTime::now());
        assert!(m.is_ok(), "{m:?}");
    }
}

#[test]
fn dane_ta_checks_expiry_and_name() {
    let p = pki();
    let r = Tlsa::new(2, 1, 1, data(1, 1, &p.root));
    let err = verify(
        &set(vec![r.clone()]),
        &chain(&p, &p.expired_leaf),
        UnixTime::now(),
    )
    .expect_err("expired leaf under DANE-TA");
    assert!(err.to_string().contains("expired"), "{err}");
    let err = verify(
        &set(vec![r.clone()]),
        &chain(&p, &p.other_name_leaf),
        UnixTime::now(),
    )
    .expect_err("name mismatch under DANE-TA");
    assert!(err.to_string().contains("host name"), "{err}");
    // The TLSA base domain is a reference name too.
    let mut by_base = set(vec![r]);
    by_base.names.push("elsewhere.test".into());
    assert!(verify(&by_base, &chain(&p, &p.other_name_leaf), UnixTime::now()).is_ok());
}

#[test]
fn dane_ta_anchor_outside_the_chain_only_for_full_records() {
    let p = pki();
    // The server sends leaf and intermediate, not the root.
    let sent = vec![p.leaf.clone(), p.inter.clone()];
    let full_cert = Tlsa::new(2, 0, 0, p.root.to_vec());
    let m = verify(&set(vec![full_cert]), &sent, UnixTime::now()).unwrap();
    assert_eq!(m.cert_index, None);
    let full_key = Tlsa::new(2, 1, 0, p.root_spki.clone());
    assert_eq!(
        full_key.data,
        selected(1, &p.root).unwrap(),
        "rcgen's SPKI is the cert's"
    );
    let m = verify(&set(vec![full_key]), &sent, UnixTime::now()).unwrap();
    assert_eq!(m.cert_index, None);
    // A digest cannot stand in for an absent anchor.
    let digest_only = Tlsa::new(2, 1, 1, data(1, 1, &p.root));
    let err = verify(&set(vec![digest_only]), &sent, UnixTime::now()).unwrap_err();
    assert!(
        err.to_string()
            .contains("no certificate in the server's chain"),
        "{err}"
    );
}

#[test]
fn dane_ta_is_not_pkix_and_ee_match_is_not_needed_with_ta() {
    let p = pki();
    // Stalwart #2287: one matching record is enough; an EE record that does not
    // match does not veto a TA record that does.
    let ee_wrong = Tlsa::new(3, 1, 1, vec![7; 32]);
    let ta = Tlsa::new(2, 1, 1, data(1, 1, &p.inter));
    let m = verify(
        &set(vec![ee_wrong, ta.clone()]),
        &chain(&p, &p.leaf),
        UnixTime::now(),
    )
    .unwrap();
    assert_eq!(m.record, ta);
    // A DANE-TA record naming the server certificate itself is no anchor.
    let self_ta = Tlsa::new(2, 1, 1, data(1, 1, &p.leaf));
    assert!(verify(&set(vec![self_ta]), &chain(&p, &p.leaf), UnixTime::now()).is_err());
}

#[test]
fn display_is_presentation_format() {
    let r = Tlsa::new(3, 1, 1, (0u8..32).collect());
    assert_eq!(r.to_string(), "3 1 1 000102030405...1c1d1e1f");
    let m = DaneMatch {
        record: r,
        cert_index: Some(0),
    };
    assert_eq!(
        m.to_string(),
        "DANE-EE TLSA 3 1 1 000102030405...1c1d1e1f matched the server certificate"
    );
}
