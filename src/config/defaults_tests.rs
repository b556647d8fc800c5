//! One truth for defaults: the code (`impl Default` and the serde defaults). The
//! embedded default file and README's config reference may only write, for a key
//! whose default is a value, that value; a key whose default is none, empty or
//! derived from another shows an example. And every key is in the reference.

use toml::Value;
use toml_edit::{DocumentMut, Item};

use super::{load_str, Config, EMBEDDED_DEFAULT};

const LISTENER: &str = "[[listener]]\naddress = \"127.0.0.1:2525\"\n";

/// The ```toml blocks of README's "Config reference" section.
fn readme_reference() -> Vec<String> {
    let readme = include_str!("../../README.md");
    let start = readme
        .find("## Config reference")
        .expect("a Config reference section");
    let section = &readme[start..];
    let end = section[3..].find("\n## ").map_or(section.len(), |e| e + 3);
    section[..end]
        .split("```toml\n")
        .skip(1)
        .filter_map(|b| b.split("```").next())
        .map(|b| {
            if b.contains("[[listener]]") {
                b.to_string()
            } else {
                format!("{LISTENER}{b}")
            }
        })
        .collect()
}

#[derive(Clone, Debug)]
enum Step {
    Key(String),
    Index(usize),
}

fn shown(path: &[Step]) -> String {
    let mut s = String::new();
    for step in path {
        match step {
            Step::Key(k) if s.is_empty() => s.push_str(k),
            Step::Key(k) => s.push_str(&format!(".{k}")),
            Step::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

/// Every key with a plain value, in tables and arrays of tables.
fn leaves(item: &Item, path: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
    match item {
        Item::Table(t) => {
            for (k, v) in t.iter() {
                path.push(Step::Key(k.to_string()));
                leaves(v, path, out);
                path.pop();
            }
        }
        Item::ArrayOfTables(a) => {
            for (i, t) in a.iter().enumerate() {
                path.push(Step::Index(i));
                for (k, v) in t.iter() {
                    path.push(Step::Key(k.to_string()));
                    leaves(v, path, out);
                    path.pop();
                }
                path.pop();
            }
        }
        Item::Value(_) => out.push(path.clone()),
        Item::None => {}
    }
}

fn remove(doc: &mut DocumentMut, path: &[Step]) {
    let Some((Step::Key(last), parents)) = path.split_last() else {
        panic!("a leaf path ends with a key: {}", shown(path));
    };
    let mut item = doc.as_item_mut();
    for step in parents {
        item = match step {
            Step::Key(k) => &mut item[k.as_str()],
            Step::Index(i) => &mut item[*i],
        };
    }
    item.as_table_like_mut()
        .expect("a table holds the key")
        .remove(last);
}

fn at<'v>(value: &'v Value, path: &[Step]) -> Option<&'v Value> {
    path.iter().try_fold(value, |v, step| match step {
        Step::Key(k) => v.get(k.as_str()),
        Step::Index(i) => v.get(*i),
    })
}

fn serialized(c: &Config) -> Value {
    Value::try_from(c).expect("a config serializes")
}

/// For each key of `text` that may be left out: the value written, as loaded, is
/// the value the code gives it when it is left out.
fn disagreements(text: &str, origin: &str) -> Vec<String> {
    let written = load_str(text, origin).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let written = serialized(&written);
    let doc: DocumentMut = text.parse().unwrap();
    let mut paths = Vec::new();
    leaves(doc.as_item(), &mut Vec::new(), &mut paths);
    assert!(!paths.is_empty(), "{origin}: no keys in\n{text}");
    let mut out = Vec::new();
    for path in paths {
        let mut without = doc.clone();
        remove(&mut without, &path);
        // A key that may not be left out has no default to agree with.
        let Ok(default) = load_str(&without.to_string(), origin) else {
            continue;
        };
        let default = serialized(&default);
        let Some(default) = at(&default, &path) else {
            continue; // none: the file shows an example
        };
        if default.as_array().is_some_and(|a| a.is_empty()) {
            continue; // empty: an example too
        }
        let value = at(&written, &path).expect("a written key is serialized");
        if value != default {
            out.push(format!(
                "{origin}: {} = {value} but the code's default is {default}",
                shown(&path)
            ));
        }
    }
    out
}

#[test]
fn the_embedded_file_writes_the_code_defaults() {
    let wrong = disagreements(EMBEDDED_DEFAULT, "config/mxring.toml");
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_readme_reference_writes_the_code_defaults() {
    let blocks = readme_reference();
    assert!(
        !blocks.is_empty(),
        "no ```toml block in the Config reference"
    );
    let wrong: Vec<String> = blocks
        .iter()
        .flat_map(|b| disagreements(b, "README Config reference"))
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// Each key of each table (not the arrays of tables, whose entries have no
/// default) is in the reference, so a new key can't go undocumented.
#[test]
fn every_key_is_in_the_readme_reference() {
    let mut documented = Vec::new();
    for block in readme_reference() {
        let doc: DocumentMut = block.parse().unwrap();
        leaves(doc.as_item(), &mut Vec::new(), &mut documented);
    }
    let documented: Vec<String> = documented.iter().map(|p| shown(p)).collect();
    let defaults = serialized(&Config::default());
    let mut missing = Vec::new();
    for (table, keys) in defaults.as_table().expect("a table") {
        let Some(keys) = keys.as_table() else {
            continue;
        };
        for key in keys.keys() {
            let path = format!("{table}.{key}");
            let entry = format!("{path}[");
            if !documented
                .iter()
                .any(|d| *d == path || d.starts_with(&entry))
            {
                missing.push(path);
            }
        }
    }
    assert!(
        missing.is_empty(),
        "not in README's Config reference: {}",
        missing.join(", ")
    );
}
