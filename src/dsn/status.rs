//! The second part: the machine-readable message/delivery-status body.

use super::date::rfc5322;
use super::kind::DsnKind;
use super::report::{DsnRecipient, DsnReport};
use super::text::{ascii_escape, one_line, truncate, write_field, MAX_DIAGNOSTIC};

pub(super) fn delivery_status(report: &DsnReport) -> Vec<u8> {
    let mut out = Vec::new();
    let field = |out: &mut Vec<u8>, name: &str, value: &str| {
        write_field(out, name, &ascii_escape(&one_line(value)));
    };
    field(
        &mut out,
        "Reporting-MTA",
        &format!("dns; {}", report.reporting_mta),
    );
    if let Some(envid) = report.original_envid {
        field(&mut out, "Original-Envelope-Id", envid);
    }
    field(&mut out, "Arrival-Date", &rfc5322(report.arrival));

    for r in report.recipients {
        out.extend_from_slice(b"\r\n");
        recipient(&mut out, r, &field);
    }
    out
}

fn recipient(out: &mut Vec<u8>, r: &DsnRecipient, field: &dyn Fn(&mut Vec<u8>, &str, &str)) {
    field(out, "Final-Recipient", &final_recipient(&r.final_recipient));
    if let Some(orcpt) = &r.original_recipient {
        field(out, "Original-Recipient", &typed("rfc822", orcpt));
    }
    field(out, "Action", r.action.action());
    let status = one_line(&r.status);
    let status = if is_status_code(&status) {
        status.as_str()
    } else {
        r.action.fallback_status()
    };
    field(out, "Status", status);
    if let Some(host) = &r.remote_mta {
        field(out, "Remote-MTA", &typed("dns", host));
    }
    if let Some(diag) = &r.diagnostic {
        let diag = truncate(&one_line(diag), MAX_DIAGNOSTIC);
        field(out, "Diagnostic-Code", &typed("smtp", &diag));
    }
    if let Some(t) = r.last_attempt {
        field(out, "Last-Attempt-Date", &rfc5322(t));
    }
    if r.action == DsnKind::Delayed {
        if let Some(t) = r.will_retry_until {
            field(out, "Will-Retry-Until", &rfc5322(t));
        }
    }
}

/// An all-ASCII address is `rfc822`; an internationalised one is `utf-8`
/// (RFC 6533), whose non-ASCII characters `ascii_escape` then encodes.
fn final_recipient(addr: &str) -> String {
    let addr = one_line(addr);
    if addr.is_ascii() {
        format!("rfc822; {addr}")
    } else {
        format!("utf-8; {addr}")
    }
}

/// Keeps a value that already names its type (`rfc822;a@b`, `dns; host`),
/// otherwise prefixes `default`.
fn typed(default: &str, value: &str) -> String {
    let value = one_line(value);
    let has_type = value.split_once(';').is_some_and(|(t, _)| {
        !t.is_empty() && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    });
    if has_type {
        value
    } else {
        format!("{default}; {value}")
    }
}

/// RFC 3463: class "." subject "." detail, with class 2, 4 or 5.
fn is_status_code(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    let digits = |p: &str, max: usize| {
        !p.is_empty() && p.len() <= max && p.bytes().all(|b| b.is_ascii_digit())
    };
    parts.len() == 3
        && matches!(parts[0], "2" | "4" | "5")
        && digits(parts[1], 3)
        && digits(parts[2], 3)
}
