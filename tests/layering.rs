//! The house's layering, checked on the source: each module of the library may
//! use only modules below it, so nothing low (the protocol core, the config, the
//! policy engine, the DSN builder, the timer) can come to depend on the runtime
//! parts above it. A new module must be given its place here.

use std::collections::BTreeSet;
use std::path::Path;

/// Bottom first. A module may use the modules of earlier rows only.
const LAYERS: &[&[&str]] = &[
    // Pure, and importing nothing of the crate.
    &["config", "timer", "metrics", "dane"],
    &["policy"],
    &["proto"],
    &["dsn"],
    // The I/O edges: sockets, TLS, DNS.
    &["net", "tls", "dns"],
    &["queue"],
    &["auth", "mta_sts"],
    &["tlsrpt"],
    &["delivery"],
    &["checktls"],
    &["admin"],
    &["shard"],
    // The binary's command line (`src/cli`, which reaches the library as `mxring::`).
    &["cli"],
];

fn rank(module: &str) -> Option<usize> {
    LAYERS.iter().position(|row| row.contains(&module))
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("source directory readable") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The crate modules a file names as `crate::m` (or `mxring::m` in the binary),
/// comments left out.
fn uses(text: &str, prefix: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(at) = rest.find(prefix) {
            let after = &rest[at + prefix.len()..];
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                found.insert(name);
            }
            rest = after;
        }
    }
    found
}

#[test]
fn no_module_uses_one_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut broken = Vec::new();
    let mut unplaced = BTreeSet::new();
    for file in &files {
        let relative = file.strip_prefix(&src).expect("under src");
        let Some(module) = relative
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .filter(|_| relative.components().count() > 1)
        else {
            continue; // lib.rs and main.rs only declare the modules.
        };
        // Unit tests may use what they test against (a proto test, the queue's
        // real id source); the layering is the library's, not its tests'.
        let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name == "tests.rs" || name.ends_with("_tests.rs") {
            continue;
        }
        let Some(own) = rank(module) else {
            unplaced.insert(module.to_string());
            continue;
        };
        let text = std::fs::read_to_string(file).expect("source readable");
        let prefix = if module == "cli" {
            "mxring::"
        } else {
            "crate::"
        };
        for used in uses(&text, prefix) {
            if used == module {
                continue;
            }
            match rank(&used) {
                Some(r) if r < own => {}
                Some(_) => broken.push(format!(
                    "{} uses {used}, which is not below {module}",
                    relative.display()
                )),
                None => {
                    unplaced.insert(used);
                }
            }
        }
    }
    assert!(
        unplaced.is_empty(),
        "modules without a place in LAYERS: {unplaced:?}"
    );
    assert!(broken.is_empty(), "layering broken:\n{}", broken.join("\n"));
}

#[test]
fn the_checker_sees_a_use_and_ignores_comments() {
    let text = "use crate::queue::Status;\n// crate::shard is only named here\nlet x = crate::proto::reply::parse(b);";
    let found = uses(text, "crate::");
    assert_eq!(
        found.into_iter().collect::<Vec<_>>(),
        vec!["proto".to_string(), "queue".to_string()]
    );
}
