//! The two texts of MTA-STS (RFC 8461): the `_mta-sts.<domain>` TXT record that
//! says a policy exists and names its version (`id`), and the policy file served
//! over HTTPS (`version`, `mode`, `mx`, `max_age`). Pure parsing and matching.

use serde::{Deserialize, Serialize};

/// Longest `max_age` the RFC allows (about a year, §3.2).
pub const MAX_AGE_LIMIT: u64 = 31_557_600;

/// What a policy asks of senders.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Deliver only to matching MX hosts over TLS with a valid certificate.
    Enforce,
    /// Deliver as usual; failures are only reported.
    Testing,
    /// The domain withdrew its policy.
    None,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Testing => "testing",
            Mode::None => "none",
        }
    }
}

/// A parsed policy file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StsPolicy {
    pub mode: Mode,
    /// MX patterns as published: `mx.example.com` or `*.example.com`, lower case.
    pub mx: Vec<String>,
    /// Seconds the policy may be cached.
    pub max_age: u64,
}

/// Why a policy file or TXT record was refused (a TLS-RPT `sts-policy-invalid`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("the policy has no `{0}` field")]
    Missing(&'static str),
    #[error("the policy's version is `{0}`, not STSv1")]
    Version(String),
    #[error("the policy's mode `{0}` is not enforce, testing or none")]
    Mode(String),
    #[error("the policy's max_age `{0}` is not a number of seconds up to 31557600")]
    MaxAge(String),
    #[error("the policy's mx pattern `{0}` is not a host name or *.domain")]
    Mx(String),
    #[error("the policy line `{0}` is not `key: value`")]
    Line(String),
    #[error("the policy is not UTF-8 text")]
    NotText,
}

impl StsPolicy {
    /// Parse a policy file (§3.2). Lines end in CRLF or LF; unknown keys are
    /// ignored; the first of a repeated key wins, except `mx`, which may repeat.
    pub fn parse(text: &str) -> Result<StsPolicy, PolicyError> {
        let mut version = None;
        let mut mode = None;
        let mut max_age = None;
        let mut mx = Vec::new();
        for line in text.split('\n') {
            let line = line.strip_suffix('\r').unwrap_or(line);
            if line.trim().is_empty() {
                continue;
            }
            let Some((key, value)) = line.split_once(':') else {
                return Err(PolicyError::Line(shorten(line)));
            };
            let (key, value) = (key.trim(), value.trim());
            match key {
                "version" => {
                    version.get_or_insert(value);
                }
                "mode" => {
                    mode.get_or_insert(value);
                }
                "max_age" => {
                    max_age.get_or_insert(value);
                }
                "mx" => {
                    if !valid_pattern(value) {
                        return Err(PolicyError::Mx(shorten(value)));
                    }
                    mx.push(value.trim_end_matches('.').to_ascii_lowercase());
                }
                _ => {}
            }
        }
        match version {
            None => return Err(PolicyError::Missing("version")),
            Some("STSv1") => {}
            Some(v) => return Err(PolicyError::Version(shorten(v))),
        }
        let mode = match mode {
            None => return Err(PolicyError::Missing("mode")),
            Some("enforce") => Mode::Enforce,
            Some("testing") => Mode::Testing,
            Some("none") => Mode::None,
            Some(m) => return Err(PolicyError::Mode(shorten(m))),
        };
        let max_age = match max_age {
            None => return Err(PolicyError::Missing("max_age")),
            Some(a) => {
                let ok = !a.is_empty() && a.len() <= 10 && a.bytes().all(|b| b.is_ascii_digit());
                match a.parse::<u64>() {
                    Ok(n) if ok && n <= MAX_AGE_LIMIT => n,
                    _ => return Err(PolicyError::MaxAge(shorten(a))),
                }
            }
        };
        if mx.is_empty() && mode != Mode::None {
            return Err(PolicyError::Missing("mx"));
        }
        Ok(StsPolicy { mode, mx, max_age })
    }

    /// The pattern `host` matches, if any (§4.1): exact, or `*.` standing for
    /// exactly one leftmost label. Case and a trailing dot do not matter.
    pub fn matching_pattern(&self, host: &str) -> Option<&str> {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.mx
            .iter()
            .find(|p| pattern_matches(p, &host))
            .map(String::as_str)
    }

    pub fn matches(&self, host: &str) -> bool {
        self.matching_pattern(host).is_some()
    }
}

fn pattern_matches(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(parent) => host
            .split_once('.')
            .is_some_and(|(label, rest)| !label.is_empty() && rest == parent),
        None => pattern == host,
    }
}

/// A host name, optionally with a `*.` wildcard as its whole first label.
fn valid_pattern(p: &str) -> bool {
    let p = p.trim_end_matches('.');
    let name = p.strip_prefix("*.").unwrap_or(p);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

fn shorten(s: &str) -> String {
    s.chars().take(80).collect()
}

/// What the `_mta-sts` TXT RRset says (§3.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StsTxt {
    /// One record `v=STSv1; id=...`: the policy's current id.
    Id(String),
    /// No record starting with `v=STSv1` (other TXT records are ignored).
    Absent,
    /// More than one STSv1 record, or one that doesn't parse: treated as no
    /// policy, and reported.
    Invalid(String),
}

/// Read the TXT RRset (each record's strings already joined).
pub fn parse_txt(records: &[String]) -> StsTxt {
    let sts: Vec<&String> = records
        .iter()
        .filter(|r| {
            let first = r.split(';').next().unwrap_or("");
            first.trim() == "v=STSv1"
        })
        .collect();
    match sts.as_slice() {
        [] => StsTxt::Absent,
        [one] => {
            let id = one
                .split(';')
                .skip(1)
                .filter_map(|f| f.trim().split_once('='))
                .find(|(k, _)| k.trim() == "id")
                .map(|(_, v)| v.trim());
            match id {
                Some(id)
                    if !id.is_empty()
                        && id.len() <= 32
                        && id.bytes().all(|b| b.is_ascii_alphanumeric()) =>
                {
                    StsTxt::Id(id.to_string())
                }
                Some(id) => StsTxt::Invalid(format!(
                    "the TXT record's id `{}` is not 1 to 32 letters and digits",
                    shorten(id)
                )),
                None => StsTxt::Invalid("the TXT record has no id".into()),
            }
        }
        _ => StsTxt::Invalid(format!(
            "{} TXT records start with v=STSv1 (there must be one)",
            sts.len()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\nmx: backupmx.example.com\r\nmax_age: 604800\r\n";

    #[test]
    fn the_rfc_example_parses() {
        let p = StsPolicy::parse(GOOD).unwrap();
        assert_eq!(p.mode, Mode::Enforce);
        assert_eq!(p.max_age, 604800);
        assert_eq!(
            p.mx,
            vec!["mail.example.com", "*.example.net", "backupmx.example.com"]
        );
    }

    #[test]
    fn lf_endings_spaces_unknown_keys_and_repeats() {
        let p = StsPolicy::parse(
            "version:STSv1\nmode :  testing\nfuture_key: x\nmax_age: 86400\nmax_age: 5\nmode: enforce\nmx: MX.Example.COM.\n",
        )
        .unwrap();
        assert_eq!(p.mode, Mode::Testing, "the first mode wins");
        assert_eq!(p.max_age, 86400, "the first max_age wins");
        assert_eq!(p.mx, vec!["mx.example.com"]);
        assert!(p.matches("mx.example.com"));
    }

    #[test]
    fn mode_none_needs_no_mx() {
        let p = StsPolicy::parse("version: STSv1\nmode: none\nmax_age: 60\n").unwrap();
        assert_eq!((p.mode, p.mx.len()), (Mode::None, 0));
    }

    #[test]
    fn invalid_policies_say_why() {
        let cases: [(&str, PolicyError); 9] = [
            (
                "mode: enforce\nmx: a.b\nmax_age: 1\n",
                PolicyError::Missing("version"),
            ),
            (
                "version: STSv2\nmode: enforce\nmx: a.b\nmax_age: 1\n",
                PolicyError::Version("STSv2".into()),
            ),
            (
                "version: STSv1\nmode: strict\nmx: a.b\nmax_age: 1\n",
                PolicyError::Mode("strict".into()),
            ),
            (
                "version: STSv1\nmx: a.b\nmax_age: 1\n",
                PolicyError::Missing("mode"),
            ),
            (
                "version: STSv1\nmode: enforce\nmax_age: 1\n",
                PolicyError::Missing("mx"),
            ),
            (
                "version: STSv1\nmode: enforce\nmx: a.b\n",
                PolicyError::Missing("max_age"),
            ),
            (
                "version: STSv1\nmode: enforce\nmx: a.b\nmax_age: 31557601\n",
                PolicyError::MaxAge("31557601".into()),
            ),
            (
                "version: STSv1\nmode: enforce\nmx: a.b\nmax_age: -1\n",
                PolicyError::MaxAge("-1".into()),
            ),
            (
                "version: STSv1\nmode: enforce\nmx: a.*.b\nmax_age: 1\n",
                PolicyError::Mx("a.*.b".into()),
            ),
        ];
        for (text, want) in cases {
            assert_eq!(StsPolicy::parse(text), Err(want.clone()), "{text:?}");
            assert!(
                !want.to_string().contains("Missing"),
                "words, not Rust names"
            );
        }
        assert!(matches!(
            StsPolicy::parse("<html>not a policy</html>"),
            Err(PolicyError::Line(_))
        ));
        assert!(matches!(
            StsPolicy::parse("version: STSv1\nmode: enforce\nmx: mx..example\nmax_age: 1\n"),
            Err(PolicyError::Mx(_))
        ));
    }

    #[test]
    fn wildcards_stand_for_exactly_one_label() {
        let p = StsPolicy::parse(GOOD).unwrap();
        assert_eq!(p.matching_pattern("mx1.example.net"), Some("*.example.net"));
        assert_eq!(
            p.matching_pattern("MX1.EXAMPLE.NET."),
            Some("*.example.net")
        );
        assert!(!p.matches("example.net"), "the wildcard needs a label");
        assert!(!p.matches("a.b.example.net"), "only one label");
        assert!(!p.matches(".example.net"));
        assert!(!p.matches("mx1.example.net.evil"));
        assert!(!p.matches("mx1example.net"));
        assert!(p.matches("mail.example.com"));
        assert!(
            !p.matches("x.mail.example.com"),
            "an exact pattern is exact"
        );
        assert!(!p.matches("ail.example.com"));
    }

    #[test]
    fn txt_records() {
        let t = |v: &[&str]| parse_txt(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(
            t(&["v=STSv1; id=20160831085700Z;"]),
            StsTxt::Id("20160831085700Z".into())
        );
        assert_eq!(
            t(&["v=STSv1;id=abc", "v=spf1 -all"]),
            StsTxt::Id("abc".into())
        );
        assert_eq!(t(&["v=spf1 -all"]), StsTxt::Absent);
        assert_eq!(t(&[]), StsTxt::Absent);
        assert_eq!(
            t(&["id=abc; v=STSv1"]),
            StsTxt::Absent,
            "v= must come first"
        );
        assert!(matches!(
            t(&["v=STSv1; id=a", "v=STSv1; id=b"]),
            StsTxt::Invalid(_)
        ));
        assert!(matches!(t(&["v=STSv1;"]), StsTxt::Invalid(_)));
        assert!(matches!(t(&["v=STSv1; id=not-alnum"]), StsTxt::Invalid(_)));
        assert!(matches!(
            t(&["v=STSv1; id=123456789012345678901234567890123"]),
            StsTxt::Invalid(_)
        ));
    }
}
