//! MTA-STS, the sending side (RFC 8461): a recipient domain publishes which MX
//! hosts it has and that they offer TLS with a valid certificate. mxring reads the
//! `_mta-sts` TXT record, fetches and caches the policy (`lookup`), and for each
//! MX says what the policy means (`host_plan`). Precedence (DESIGN.md): an
//! explicit `[[outbound_tls]]` rule, then DANE, then MTA-STS `enforce`, then
//! `default_tls`; attempt.rs applies it.

pub mod fetch;
pub mod lookup;
pub mod policy;

pub use lookup::{Active, MtaSts, Problem, StsSettings, StsView};
pub use policy::{Mode, PolicyError, StsPolicy, StsTxt};

/// What the policy in force means for one MX host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostPlan {
    /// No policy, or mode `none`: deliver as the other rules say.
    NoPolicy,
    /// `enforce`, and the host matches `pattern`: TLS with a certificate valid for
    /// the host (chain and name).
    Verify { pattern: String },
    /// `enforce`, and the host matches no pattern: not used (§4.1).
    Refuse { text: String },
    /// `testing`: deliver as usual; failures are reported, never enforced.
    Testing { matches: bool },
}

pub fn host_plan(view: &StsView, host: &str) -> HostPlan {
    let Some(active) = &view.active else {
        return HostPlan::NoPolicy;
    };
    let p = &active.policy;
    match p.mode {
        Mode::None => HostPlan::NoPolicy,
        Mode::Testing => HostPlan::Testing {
            matches: p.matches(host),
        },
        Mode::Enforce => match p.matching_pattern(host) {
            Some(pattern) => HostPlan::Verify {
                pattern: pattern.to_string(),
            },
            None => HostPlan::Refuse {
                text: format!(
                    "MX host {host} does not match the MTA-STS policy of {} (mode enforce, mx: {})",
                    view.domain,
                    p.mx.join(", ")
                ),
            },
        },
    }
}

impl StsView {
    /// The lines `policy explain` and `check-tls` print.
    pub fn describe(&self, now_ms: u64) -> Vec<String> {
        let mut out = Vec::new();
        let name = format!("_mta-sts.{}", self.domain);
        out.push(match &self.txt {
            Ok(StsTxt::Id(id)) => format!("TXT {name}: v=STSv1; id={id}"),
            Ok(StsTxt::Absent) => format!("TXT {name}: no v=STSv1 record"),
            Ok(StsTxt::Invalid(why)) => format!("TXT {name}: invalid: {why}"),
            Err(e) => format!("TXT {name}: {e}"),
        });
        match &self.active {
            Some(a) => {
                let how = if a.from_cache {
                    format!("cached, fetched {}s ago", a.age_secs(now_ms))
                } else {
                    "fetched now".to_string()
                };
                out.push(format!(
                    "policy id {} ({how}): mode {}, max_age {}s, mx {}",
                    a.id,
                    a.policy.mode.name(),
                    a.policy.max_age,
                    if a.policy.mx.is_empty() {
                        "(none)".into()
                    } else {
                        a.policy.mx.join(", ")
                    }
                ));
            }
            None => out.push("no MTA-STS policy in force".to_string()),
        }
        if let Some(p) = &self.problem {
            out.push(format!("problem ({}): {}", p.result_type, p.text));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(mode: &str) -> StsView {
        let text = format!("version: STSv1\nmode: {mode}\nmx: *.mx.example\nmax_age: 86400\n");
        StsView {
            domain: "example".into(),
            txt: Ok(StsTxt::Id("1".into())),
            active: Some(Active {
                id: "1".into(),
                policy: StsPolicy::parse(&text).unwrap(),
                fetched_ms: 0,
                from_cache: false,
            }),
            problem: None,
        }
    }

    #[test]
    fn plans_per_mode() {
        assert_eq!(
            host_plan(&view("enforce"), "a.mx.example"),
            HostPlan::Verify {
                pattern: "*.mx.example".into()
            }
        );
        match host_plan(&view("enforce"), "evil.example") {
            HostPlan::Refuse { text } => {
                assert!(
                    text.contains("evil.example") && text.contains("MTA-STS"),
                    "{text}"
                )
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            host_plan(&view("testing"), "evil.example"),
            HostPlan::Testing { matches: false }
        );
        let mut none = view("enforce");
        none.active = None;
        assert_eq!(host_plan(&none, "a.mx.example"), HostPlan::NoPolicy);
    }
}
