//! `mxring tls show`: every certificate the config loads, with the names it is
//! served for, issuer, validity and SHA-256 fingerprint.

use std::process::ExitCode;

use clap::Subcommand;
use x509_parser::prelude::*;

use mxring::config::Config;
use mxring::tls::sni::{dns_names, fingerprint};

#[derive(Subcommand)]
pub enum TlsAction {
    /// Print each server certificate: names, issuer, validity, SHA-256 fingerprint.
    Show,
}

pub fn run(c: &Config, origin: &str, action: TlsAction) -> anyhow::Result<ExitCode> {
    match action {
        TlsAction::Show => show(c, origin),
    }
}

fn show(c: &Config, origin: &str) -> anyhow::Result<ExitCode> {
    outln!("server certificates of {origin}");
    let default_names = "the default: clients with no SNI or a name no other certificate has";
    match (&c.tls.certificate, &c.tls.private_key) {
        (Some(cert), Some(key)) => {
            let (chain, _) = mxring::tls::load_certified_key(cert, key)?;
            print_cert(
                &cert.display().to_string(),
                default_names,
                chain[0].as_ref(),
            );
        }
        _ => {
            // Only read here: the server makes it (and renews it) at start.
            let (cert, key) = mxring::tls::spool_paths(&c.server.spool);
            if cert.exists() {
                let (chain, _) = mxring::tls::load_certified_key(&cert, &key)?;
                let source = format!("self-signed default ({})", cert.display());
                print_cert(&source, default_names, chain[0].as_ref());
            } else {
                outln!(
                    "\nself-signed default: not made yet; `mxring serve` makes it in {} and reuses it on restart",
                    cert.display()
                );
            }
        }
    }
    for loaded in mxring::tls::named_certificates(c)? {
        let Some(end) = loaded.key.cert.first() else {
            continue;
        };
        let names = if loaded.names.is_empty() {
            dns_names(end.as_ref())
        } else {
            loaded.names.clone()
        };
        print_cert(&loaded.source, &names.join(", "), end.as_ref());
    }
    Ok(ExitCode::SUCCESS)
}

fn print_cert(source: &str, names: &str, der: &[u8]) {
    outln!("\n{source}");
    outln!("  names:       {names}");
    match parse_x509_certificate(der) {
        Ok((_, x)) => {
            outln!("  subject:     {}", x.subject());
            outln!("  issuer:      {}", x.issuer());
            let v = x.validity();
            let left = v.time_to_expiration().map(|d| d.whole_days());
            let state = match left {
                Some(days) => format!("{days} days left"),
                None => "EXPIRED or not yet valid".into(),
            };
            outln!(
                "  valid:       {} to {} ({state})",
                v.not_before,
                v.not_after
            );
        }
        Err(e) => outln!("  (cannot parse the certificate: {e})"),
    }
    outln!("  sha256:      {}", fingerprint(der));
}
