//! Reading a config file, and where in it a problem is. Syntax and type errors
//! come from the TOML parser, semantic ones from `validate`; both name the key
//! (`table[i].key`) and its line, found with the spans of toml's own parser.

use std::ops::Range;
use std::path::Path;

use toml_edit::{ImDocument, Item, TableLike, Value};

use super::checks::Problem;
use super::Config;

/// The configuration `mxring` runs with when no `--config` is given.
pub const EMBEDDED_DEFAULT: &str = include_str!("../../config/mxring.toml");

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{origin}: {message}")]
    Parse { origin: String, message: String },
    #[error("{origin}: line {line}: `{key}`: {message}")]
    Invalid {
        origin: String,
        line: usize,
        key: String,
        message: String,
    },
}

pub fn load_file(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.display().to_string(),
        source,
    })?;
    load_str(&text, &path.display().to_string())
}

/// Parse and validate `text`; `origin` names it in error messages.
pub fn load_str(text: &str, origin: &str) -> Result<Config, ConfigError> {
    let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
        origin: origin.into(),
        message: parse_message(text, &e),
    })?;
    super::validate::validate(&config).map_err(|p| located(origin, text, p))?;
    Ok(config)
}

/// `line L, column C: `key`: what is wrong`, one line; the key where the error
/// falls inside a key or value of the document.
fn parse_message(text: &str, e: &toml::de::Error) -> String {
    let what = e.message().trim_end();
    let Some(span) = e.span() else {
        return what.to_string();
    };
    let (line, column) = line_and_column(text, span.start);
    let key = ImDocument::parse(text)
        .ok()
        .and_then(|doc| key_at(doc.as_table(), span.start, ""));
    match key {
        Some(key) => format!("line {line}, column {column}: `{key}`: {what}"),
        None => format!("line {line}, column {column}: {what}"),
    }
}

/// The dotted path (`route[1].next_hop`) of the innermost key whose name or
/// value covers byte `pos`.
fn key_at(table: &dyn TableLike, pos: usize, prefix: &str) -> Option<String> {
    let covers = |span: Option<Range<usize>>| span.is_some_and(|s| s.contains(&pos));
    for (name, _) in table.iter() {
        let (key, item) = table.get_key_value(name)?;
        let path = match prefix {
            "" => name.to_string(),
            p => format!("{p}.{name}"),
        };
        let inner = match item {
            Item::Table(t) => key_at(t, pos, &path),
            Item::Value(Value::InlineTable(t)) => key_at(t, pos, &path),
            Item::ArrayOfTables(a) => a
                .iter()
                .enumerate()
                .find_map(|(i, t)| key_at(t, pos, &format!("{path}[{i}]"))),
            Item::Value(_) | Item::None => None,
        };
        if inner.is_some() {
            return inner;
        }
        if covers(key.span()) || covers(item.span()) {
            return Some(path);
        }
    }
    None
}

/// A semantic problem as an error naming its key (`table[i].key`) and its line.
pub(super) fn located(origin: &str, text: &str, problem: Problem) -> ConfigError {
    let (table, index, key, message) = problem;
    ConfigError::Invalid {
        origin: origin.into(),
        line: locate(text, table, index, key),
        key: match index {
            Some(i) => format!("{table}[{i}].{key}"),
            None => format!("{table}.{key}"),
        },
        message,
    }
}

/// Line (1-based) of `key` inside table `table` (dotted, as `tls.certificates`;
/// the `index`th one for arrays of tables); falls back to the table's header,
/// then to line 1 (a key left out, or a table that is not written).
fn locate(text: &str, table: &str, index: Option<usize>, key: &str) -> usize {
    let Ok(doc) = ImDocument::parse(text) else {
        return 1;
    };
    let mut item = doc.as_item();
    for part in table.split('.') {
        match item.get(part) {
            Some(inner) => item = inner,
            None => return 1,
        }
    }
    if let Item::ArrayOfTables(tables) = item {
        match tables.get(index.unwrap_or(0)) {
            Some(t) => return span_line(text, t.get_key_value(key), t.span()),
            None => return 1,
        }
    }
    match item.as_table_like() {
        Some(t) => span_line(text, t.get_key_value(key), item.span()),
        None => 1,
    }
}

fn span_line(
    text: &str,
    key: Option<(&toml_edit::Key, &Item)>,
    header: Option<Range<usize>>,
) -> usize {
    key.and_then(|(k, _)| k.span())
        .or(header)
        .map_or(1, |s| line_and_column(text, s.start).0)
}

/// 1-based line and column (in characters) of byte `pos`.
fn line_and_column(text: &str, pos: usize) -> (usize, usize) {
    let before = text.get(..pos).unwrap_or(text);
    let line_start = before.rfind('\n').map_or(0, |n| n + 1);
    let column = before.get(line_start..).map_or(0, |l| l.chars().count());
    (before.matches('\n').count() + 1, column + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_is_valid() {
        let c = load_str(EMBEDDED_DEFAULT, "embedded").unwrap();
        assert_eq!(c.listeners[0].address.port(), 2525);
        assert_eq!(c.admin.address, "127.0.0.1:9725");
    }

    #[test]
    fn unknown_key_is_named_with_its_line() {
        let text = "[server]\nhostname = \"a.example\"\nshardz = 2\n";
        let err = load_str(text, "t.toml").unwrap_err().to_string();
        assert!(err.contains("shardz"), "{err}");
        assert!(err.contains("line 3"), "{err}");
    }

    #[test]
    fn bad_value_is_named_with_its_line() {
        let text = "[[listener]]\naddress = \"127.0.0.1:25\"\n\n[queue]\nretry = [\"5x\"]\n";
        let err = load_str(text, "t.toml").unwrap_err().to_string();
        assert!(err.contains("line 5"), "{err}");
        assert!(err.contains("5x"), "{err}");
    }

    #[test]
    fn dane_levels_need_dnssec_and_validate_is_refused_with_a_reason() {
        let base = "[[listener]]\naddress = \"127.0.0.1:25\"\n";
        let err = load_str(&format!("{base}[outbound]\ndefault_tls = \"dane\"\n"), "t")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("needs DNSSEC") && err.contains("trust-ad"),
            "{err}"
        );
        let ok = format!("{base}[dns]\nnameservers = [\"127.0.0.1:53\"]\ndnssec = \"trust-ad\"\n[outbound]\ndefault_tls = \"dane\"\n[[outbound_tls]]\ndomains = [\"x.test\"]\nlevel = \"dane-only\"\n");
        load_str(&ok, "t").unwrap();
        let err = load_str(&format!("{base}[dns]\ndnssec = \"validate\"\n"), "t")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("not built") && err.contains("unbound"),
            "{err}"
        );
        let err = load_str(
            &format!("{base}[dns]\nnameservers = [\"192.0.2.53\"]\ndnssec = \"trust-ad\"\n"),
            "t",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("loopback"), "{err}");
    }

    #[test]
    fn semantic_error_is_located_in_the_right_array_entry() {
        let text = "[[listener]]\naddress = \"127.0.0.1:25\"\n[[route]]\ndomains = [\"a\"]\nnext_hop = \"x\"\n[[route]]\ndomains = [\"b\"]\nnext_hop = \"[1.2.3.4]:99999\"\n";
        let err = load_str(text, "t.toml").unwrap_err().to_string();
        assert!(err.contains("line 8"), "{err}");
        assert!(err.contains("route[1].next_hop"), "{err}");
    }

    #[test]
    fn parse_errors_name_the_key_line_and_column_on_one_line() {
        let text = "[[listener]]\naddress = \"127.0.0.1:25\"\n[server]\nhostname = \"a.example\"\n  shardz = 2\n";
        let err = load_str(text, "t.toml").unwrap_err().to_string();
        assert!(
            err.starts_with("t.toml: line 5, column 3: `server.shardz`: unknown field `shardz`"),
            "{err}"
        );
        assert!(!err.contains('\n'), "{err}");
        let text = "[[listener]]\naddress = \"127.0.0.1:25\"\n[dns]\nnameservers = [\"127.0.0.1\", \"ns.example\"]\n";
        let err = load_str(text, "t.toml").unwrap_err().to_string();
        assert!(
            err.contains("line 4")
                && err.contains("`dns.nameservers`")
                && err.contains("`ns.example` is not an ip"),
            "{err}"
        );
    }

    #[test]
    fn timeouts_are_config_keys_and_zero_is_refused() {
        let base = "[[listener]]\naddress = \"127.0.0.1:25\"\n";
        let c = load_str(
            &format!("{base}[server]\ntls_handshake_timeout = \"5s\"\n[outbound]\nrcpt_to_timeout = \"90s\"\nquit_timeout = \"500ms\"\n"),
            "t",
        )
        .unwrap();
        assert_eq!(c.server.tls_handshake_timeout.0.as_secs(), 5);
        assert_eq!(c.outbound.rcpt_to_timeout.0.as_secs(), 90);
        assert_eq!(c.outbound.quit_timeout.0.as_millis(), 500);
        assert_eq!(c.outbound.data_dot_timeout.0.as_secs(), 600);
        let err = load_str(
            &format!("{base}[outbound]\n\nbanner_timeout = \"0s\"\n"),
            "t",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("line 5: `outbound.banner_timeout`: must be above zero"),
            "{err}"
        );
    }

    #[test]
    fn semantic_errors_point_at_the_key_in_dotted_and_array_tables() {
        let text = "[[listener]]\naddress = \"127.0.0.1:25\"\n\n[[listener]]\nname = \"lb\"\naddress = \"127.0.0.1:26\"\nproxy_protocol = true\n";
        let err = load_str(text, "t.toml").unwrap_err().to_string();
        assert!(
            err.contains("line 4: `listener[1].proxy_networks`"),
            "{err}"
        );
        let text = "[[listener]]\naddress = \"127.0.0.1:25\"\n[[tls.certificates]]\ncertificate = \"a\"\nprivate_key = \"b\"\nnames = [\"a b\"]\n";
        let err = load_str(text, "t.toml").unwrap_err().to_string();
        assert!(err.contains("line 6: `tls.certificates[0].names`"), "{err}");
        let err = load_str("[server]\nhostname = \"x\"\n", "t.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 1: `listener.address`"), "{err}");
    }
}
