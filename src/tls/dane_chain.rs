//! Verifying a peer's certificate chain against a TLSA record set (RFC 7672 3.1,
//! RFC 7671 5). DANE-EE(3) matches the server certificate and nothing else is
//! checked: not the name, not the dates, not the issuer. DANE-TA(2) names a trust
//! anchor: the chain must lead from the server certificate to it (dates and
//! signatures checked by webpki) and the certificate must carry one of the
//! reference names (the MX host, the TLSA base domain).

use std::sync::Arc;

use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::{CertificateDer, ServerName, TrustAnchor, UnixTime};
use x509_parser::prelude::*;

use crate::dane::{matches, DaneError, DaneMatch, DaneSet, Tlsa};

/// Check `chain` (server certificate first) against `set` at time `now`.
pub fn verify(
    set: &DaneSet,
    chain: &[CertificateDer<'_>],
    now: UnixTime,
) -> Result<DaneMatch, DaneError> {
    let mut reasons = Vec::new();
    let Some(leaf) = chain.first() else {
        return Err(DaneError {
            reasons: vec!["the server sent no certificate".into()],
        });
    };
    // DANE-EE first: the cheapest check, and it needs nothing else.
    for r in set.records.iter().filter(|r| r.usage == 3) {
        if matches(r, leaf) {
            return Ok(DaneMatch {
                record: r.clone(),
                cert_index: Some(0),
            });
        }
        reasons.push(format!(
            "DANE-EE TLSA {r} does not match the server certificate"
        ));
    }
    for r in set.records.iter().filter(|r| r.usage == 2) {
        match trust_anchor_check(set, r, chain, now) {
            Ok(m) => return Ok(m),
            Err(why) => reasons.push(format!("DANE-TA TLSA {r}: {why}")),
        }
    }
    Err(DaneError { reasons })
}

/// One DANE-TA record: find the anchor (in the chain, or in the record when it
/// holds a full certificate or key) and verify the path and the name to it.
fn trust_anchor_check(
    set: &DaneSet,
    r: &Tlsa,
    chain: &[CertificateDer<'_>],
    now: UnixTime,
) -> Result<DaneMatch, String> {
    // The anchor is an issuer: the server certificate itself is not a candidate.
    for (i, cert) in chain.iter().enumerate().skip(1) {
        if !matches(r, cert) {
            continue;
        }
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert.clone().into_owned()).map_err(|e| {
            format!(
                "the matched certificate is not a usable trust anchor: {}",
                crate::tls::words::error(&e)
            )
        })?;
        path_to_anchor(set, roots, &chain[0], &chain[1..i], now)?;
        return Ok(DaneMatch {
            record: r.clone(),
            cert_index: Some(i),
        });
    }
    if r.matching != 0 {
        return Err("no certificate in the server's chain matches it".into());
    }
    // A full certificate or public key in the record is the anchor itself, and the
    // server need not send it (RFC 7671 5.2.2).
    let mut roots = rustls::RootCertStore::empty();
    match r.selector {
        0 => roots
            .add(CertificateDer::from(r.data.clone()))
            .map_err(|e| {
                format!(
                    "the published certificate is not usable: {}",
                    crate::tls::words::error(&e)
                )
            })?,
        _ => {
            let top = chain.last().expect("chain is not empty");
            let (_, top) = parse_x509_certificate(top)
                .map_err(|_| "the server's chain does not parse".to_string())?;
            let subject = der_contents(top.tbs_certificate.issuer.as_raw())
                .ok_or("the server's chain does not parse")?;
            let spki = der_contents(&r.data).ok_or("the published public key does not parse")?;
            roots.roots.push(TrustAnchor {
                subject: subject.to_vec().into(),
                subject_public_key_info: spki.to_vec().into(),
                name_constraints: None,
            });
        }
    }
    path_to_anchor(set, roots, &chain[0], &chain[1..], now)?;
    Ok(DaneMatch {
        record: r.clone(),
        cert_index: None,
    })
}

/// webpki's path building from `leaf` through `intermediates` to the one anchor in
/// `roots`, with expiry, signatures and one of the set's names.
fn path_to_anchor(
    set: &DaneSet,
    roots: rustls::RootCertStore,
    leaf: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    now: UnixTime,
) -> Result<(), String> {
    let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        crate::tls::provider(),
    )
    .build()
    .map_err(|e| e.to_string())?;
    let mut last = String::from("no reference name to check");
    for name in &set.names {
        let Ok(sn) = ServerName::try_from(name.clone()) else {
            continue;
        };
        match verifier.verify_server_cert(leaf, intermediates, &sn, &[], now) {
            Ok(_) => return Ok(()),
            Err(e) => last = crate::tls::words::error(&e),
        }
    }
    Err(last)
}

/// The contents of a DER TLV (without its tag and length), when well formed.
fn der_contents(tlv: &[u8]) -> Option<&[u8]> {
    let (&len0, rest) = tlv.get(1..)?.split_first()?;
    let (len, rest) = if len0 < 0x80 {
        (len0 as usize, rest)
    } else {
        let n = (len0 & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |a, &b| (a << 8) | b as usize);
        (len, &rest[n..])
    };
    rest.get(..len)
}
