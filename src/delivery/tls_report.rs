//! What one delivery session means for TLS reporting (RFC 8460): which policy
//! was in force (DANE's TLSA records, an MTA-STS policy, or none) and whether its
//! TLS succeeded or how it failed. Sessions that never got to TLS (no
//! connection, an SMTP refusal) are not TLS outcomes and are not counted.

use std::net::SocketAddr;

use super::outbound::TlsPlan;
use crate::mta_sts::{host_plan, HostPlan, StsView};
use crate::queue::Failure;
use crate::tlsrpt::{classify, Counters, SessionRecord};

use crate::queue::clock::now_ms;

fn sts_strings(view: &StsView) -> Vec<String> {
    let Some(a) = &view.active else {
        return vec![];
    };
    let p = &a.policy;
    let mut v = vec![
        "version: STSv1".to_string(),
        format!("mode: {}", p.mode.name()),
    ];
    v.extend(p.mx.iter().map(|m| format!("mx: {m}")));
    v.push(format!("max_age: {}", p.max_age));
    v
}

/// Count one session to `host` at `addr` under `plan`.
#[allow(clippy::too_many_arguments)]
pub fn count_session<T>(
    counters: &Counters,
    domain: &str,
    host: &str,
    addr: SocketAddr,
    plan: &TlsPlan,
    sts: Option<&StsView>,
    tls_used: Option<bool>,
    result: &Result<T, Failure>,
) {
    let sts_plan = sts.map(|v| host_plan(v, host));
    let (policy_type, policy_string) = if let Some(set) = &plan.dane {
        ("tlsa", set.records.iter().map(|r| r.to_string()).collect())
    } else if plan.mta_sts
        || matches!(
            sts_plan,
            Some(HostPlan::Testing { .. }) | Some(HostPlan::Verify { .. })
        )
    {
        ("sts", sts.map(sts_strings).unwrap_or_default())
    } else {
        ("no-policy-found", vec![])
    };
    let failure = match (result, tls_used) {
        (Ok(_), Some(true)) => match sts_plan {
            Some(HostPlan::Testing { matches: false }) => Some((
                "validation-failure",
                format!("{host} does not match the MTA-STS policy (mode testing)"),
            )),
            _ => None,
        },
        (Ok(_), _) if policy_type == "no-policy-found" => return,
        (Ok(_), _) => Some((
            "starttls-not-supported",
            format!("{host} did not offer STARTTLS"),
        )),
        (Err(Failure::Tls { text, .. }), _) => Some((classify(text), text.clone())),
        (Err(_), _) => return,
    };
    let r = counters.record(
        now_ms(),
        &SessionRecord {
            policy_domain: domain,
            policy_type,
            policy_string,
            mx_host: host,
            ip: Some(addr.ip()),
            failure,
        },
    );
    if let Err(e) = r {
        tracing::warn!(domain, error = %e, "cannot count the TLS session for reporting");
    }
}

/// Count a policy lookup that failed (fetch error, invalid policy, untrusted
/// policy host) once per delivery to the domain.
pub fn count_sts_problem(counters: &Counters, view: &StsView) {
    let Some(p) = &view.problem else { return };
    let policy_type = if view.active.is_some() {
        "sts"
    } else {
        "no-policy-found"
    };
    let r = counters.record(
        now_ms(),
        &SessionRecord {
            policy_domain: &view.domain,
            policy_type,
            policy_string: sts_strings(view),
            mx_host: "",
            ip: None,
            failure: Some((p.result_type, p.text.clone())),
        },
    );
    if let Err(e) = r {
        tracing::warn!(domain = %view.domain, error = %e, "cannot count the MTA-STS problem for reporting");
    }
}
