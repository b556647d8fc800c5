//! `mxring config check` refuses what the server would refuse or silently get
//! wrong, and the README's config reference is a config that parses.

use std::path::Path;
use std::process::Command;

const LISTENER: &str = "[[listener]]\nname = \"mx\"\naddress = \"127.0.0.1:2525\"\n";

/// Runs `mxring config check` on `text`; (exit code, stdout + stderr).
fn check(dir: &Path, text: &str) -> (i32, String) {
    let file = dir.join("check.toml");
    std::fs::write(&file, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_mxring"))
        .args(["config", "check", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

fn refused(dir: &Path, text: &str, key: &str, words: &str) {
    let (code, out) = check(dir, text);
    assert_eq!(code, 1, "must be refused:\n{text}\n{out}");
    assert!(out.contains(key), "no `{key}` in: {out}");
    assert!(out.contains(words), "no `{words}` in: {out}");
    assert!(!out.contains("panicked"), "{out}");
}

fn self_signed(name: &str) -> (String, String) {
    let c = rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
    (c.cert.pem(), c.key_pair.serialize_pem())
}

#[test]
fn listeners_sharing_an_address_or_a_name_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    refused(
        dir.path(),
        "[[listener]]\nname = \"mx\"\naddress = \"0.0.0.0:2525\"\ntls = \"starttls\"\n\
         [[listener]]\nname = \"securemx\"\naddress = \"127.0.0.1:2525\"\ntls = \"required\"\n",
        "listener[1].address",
        "would share connections",
    );
    refused(
        dir.path(),
        "[[listener]]\nname = \"mx\"\naddress = \"127.0.0.1:25\"\n\
         [[listener]]\nname = \"mx\"\naddress = \"127.0.0.1:587\"\n",
        "listener[1].name",
        "already the name",
    );
    let (code, out) = check(
        dir.path(),
        "[[listener]]\nname = \"mx\"\naddress = \"127.0.0.1:25\"\n\
         [[listener]]\nname = \"submission\"\naddress = \"127.0.0.1:587\"\n",
    );
    assert_eq!(code, 0, "{out}");
}

#[test]
fn certificate_key_and_ca_files_must_exist_parse_and_match() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (cert, key) = self_signed("mx.test");
    let (_, other_key) = self_signed("other.test");
    std::fs::write(d.join("cert.pem"), &cert).unwrap();
    std::fs::write(d.join("key.pem"), &key).unwrap();
    std::fs::write(d.join("other-key.pem"), &other_key).unwrap();
    std::fs::write(d.join("junk.pem"), "not a certificate\n").unwrap();
    let tls = |c: &str, k: &str| {
        format!(
            "{LISTENER}[tls]\ncertificate = \"{}\"\nprivate_key = \"{}\"\n",
            d.join(c).display(),
            d.join(k).display()
        )
    };
    let (code, out) = check(d, &tls("cert.pem", "key.pem"));
    assert_eq!(code, 0, "{out}");
    refused(
        d,
        &tls("missing.pem", "key.pem"),
        "tls.certificate",
        "cannot read",
    );
    refused(
        d,
        &tls("junk.pem", "key.pem"),
        "tls.certificate",
        "no PEM certificate",
    );
    refused(
        d,
        &tls("cert.pem", "junk.pem"),
        "tls.private_key",
        "no usable private key",
    );
    refused(
        d,
        &tls("cert.pem", "other-key.pem"),
        "tls.private_key",
        "not the key of the certificate",
    );
    refused(
        d,
        &format!(
            "{LISTENER}[[outbound_tls]]\ndomains = [\"a.test\"]\nlevel = \"verify\"\nca_file = \"{}\"\n",
            d.join("missing-ca.pem").display()
        ),
        "outbound_tls[0].ca_file",
        "cannot read",
    );
}

#[test]
fn a_star_domain_in_an_outbound_rule_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    refused(
        dir.path(),
        &format!("{LISTENER}[[outbound_tls]]\ndomains = [\"*\"]\nlevel = \"encrypt\"\n"),
        "outbound_tls[0].domains",
        "leave `domains` out to match every domain",
    );
}

#[test]
fn a_bare_local_part_over_several_hosted_domains_is_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let rule = "[[inbound_tls]]\nrecipients = [\"john.smith\"]\n";
    let relay = "[relay]\ndomains = [\"a.test\", \"b.test\"]\n";
    let (code, out) = check(dir.path(), &format!("{LISTENER}{relay}{rule}"));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("warning: inbound_tls[0].recipients"), "{out}");
    assert!(out.contains("add `domains = [...]`"), "{out}");
    let (_, out) = check(
        dir.path(),
        &format!("{LISTENER}{relay}{rule}domains = [\"a.test\"]\n"),
    );
    assert!(!out.contains("warning"), "scoped by domains: {out}");
}

/// Every ```toml block of README's "Config reference" and "TLS policy" sections
/// parses and validates (with a listener added where a block has none).
#[test]
fn every_key_of_the_readme_config_reference_parses() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme
        .find("## Config reference")
        .expect("a Config reference section");
    let end = readme[start..]
        .find("### The reference pages")
        .map_or(readme.len(), |e| start + e);
    let mut blocks = 0;
    for block in readme[start..end].split("```toml\n").skip(1) {
        let toml = block.split("```").next().unwrap();
        let text = if toml.contains("[[listener]]") {
            toml.to_string()
        } else {
            format!("{LISTENER}{toml}")
        };
        if let Err(e) = mxring::config::load_str(&text, "README") {
            panic!("README block {blocks} does not parse: {e}\n{text}");
        }
        blocks += 1;
    }
    assert!(blocks >= 3, "found {blocks} toml blocks");
}

#[test]
fn sni_certificates_and_the_users_file_are_checked_too() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (cert, key) = self_signed("mx.test");
    std::fs::write(d.join("cert.pem"), &cert).unwrap();
    std::fs::write(d.join("key.pem"), &key).unwrap();
    std::fs::write(d.join("users"), "alice@a.test:plaintext-password\n").unwrap();
    refused(
        d,
        &format!(
            "{LISTENER}[[tls.certificates]]\ncertificate = \"{}\"\nprivate_key = \"{}\"\n",
            d.join("cert.pem").display(),
            d.join("missing-key.pem").display()
        ),
        "tls.certificates[0].private_key",
        "cannot read",
    );
    let (code, out) = check(
        d,
        &format!(
            "{LISTENER}[auth]\nusers_file = \"{}\"\n",
            d.join("users").display()
        ),
    );
    assert_eq!(code, 1, "a plaintext password must be refused: {out}");
    assert!(out.contains("line 1"), "{out}");
}
