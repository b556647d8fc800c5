//! `parse_command` on one command line (CRLF removed), then the MAIL/RCPT argument
//! through `split_path`/`parse_path` and the parameter parsers, as the server does.
//!
//! Properties: no panic; every borrowed result is a subslice of what it came from;
//! the verb is case-insensitive (ASCII-uppercasing the line keeps the variant).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mxring::proto::address::{parse_path, split_path};
use mxring::proto::command::{parse_command, Command};
use mxring::proto::params::{parse_mail_params, parse_rcpt_params};

/// `inner` lies within `outer` (an empty slice may sit at its end).
fn is_subslice(outer: &[u8], inner: &[u8]) -> bool {
    let (o, i) = (outer.as_ptr() as usize, inner.as_ptr() as usize);
    i >= o && i + inner.len() <= o + outer.len()
}

fn check_path(arg: &str, is_mail: bool) {
    let Ok((path, params)) = split_path(arg) else {
        return;
    };
    assert!(
        is_subslice(arg.as_bytes(), path.as_bytes()),
        "path not in arg"
    );
    assert!(
        is_subslice(arg.as_bytes(), params.as_bytes()),
        "params not in arg"
    );
    assert_eq!(params, params.trim(), "params are trimmed");
    for utf8 in [false, true] {
        match parse_path(path, utf8) {
            Ok(Some(m)) => {
                assert!(is_subslice(path.as_bytes(), m.local.as_bytes()));
                assert!(is_subslice(path.as_bytes(), m.domain.as_bytes()));
                assert!(!m.local.is_empty() && m.local.len() <= 64, "{m:?}");
                assert!(!m.domain.is_empty(), "{m:?}");
                assert!(!m.domain.contains('@'), "{m:?}");
                if !utf8 {
                    assert!(m.local.is_ascii() && m.domain.is_ascii(), "{m:?}");
                }
            }
            Ok(None) => assert!(path.is_empty()),
            Err(_) => {}
        }
    }
    if is_mail {
        if let Ok(p) = parse_mail_params(params) {
            // An ENVID longer than its xtext form cannot come out of decoding.
            if let Some(envid) = &p.envid {
                assert!(envid.len() <= 100);
            }
        }
    } else if let Ok(p) = parse_rcpt_params(params) {
        if let Some(n) = p.notify {
            // Parsed once, typed: its ESMTP form reads back as the same flags.
            assert_eq!(mxring::proto::NotifyFlags::parse(&n.to_string()), Ok(n));
        }
        if let Some(o) = &p.orcpt {
            assert!(o.contains(';'));
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let parsed = parse_command(data);
    match parsed {
        Ok(Command::Mail(arg)) => {
            assert!(is_subslice(data, arg.as_bytes()), "MAIL arg not borrowed");
            check_path(arg, true);
        }
        Ok(Command::Rcpt(arg)) => {
            assert!(is_subslice(data, arg.as_bytes()), "RCPT arg not borrowed");
            check_path(arg, false);
        }
        Ok(Command::Ehlo(name) | Command::Helo(name)) => {
            assert!(is_subslice(data, name.as_bytes()));
            assert!(!name.is_empty() && !name.contains(' '), "{name:?}");
        }
        Ok(_) | Err(_) => {}
    }
    // Case-insensitivity of verbs and keywords: same variant after uppercasing.
    let upper = data.to_ascii_uppercase();
    let parsed_upper = parse_command(&upper);
    match (&parsed, &parsed_upper) {
        (Ok(a), Ok(b)) => assert_eq!(
            std::mem::discriminant(a),
            std::mem::discriminant(b),
            "{a:?} vs {b:?}"
        ),
        (Err(a), Err(b)) => assert_eq!(a, b),
        (a, b) => panic!("uppercasing changed the outcome: {a:?} vs {b:?}"),
    }
    // The parameter parsers also get the raw text, whatever the command was.
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = parse_mail_params(text);
        let _ = parse_rcpt_params(text);
    }
});
