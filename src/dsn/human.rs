//! The first part: what happened, in words a sender can act on.

use super::date::{human_age, rfc5322};
use super::decider::Decider;
use super::kind::{DsnKind, ReturnContent};
use super::report::{DsnRecipient, DsnReport};
use super::text::{one_line, truncate, write_paragraph, MAX_DIAGNOSTIC};

pub(super) fn notification(report: &DsnReport) -> Vec<u8> {
    let mut out = Vec::new();
    let host = one_line(report.reporting_mta);
    let kind = report.kind();
    write_paragraph(
        &mut out,
        &format!("This is the mail system at host {host}."),
        "",
    );
    out.extend_from_slice(b"\r\n");

    match kind {
        DsnKind::Failed => {
            write_paragraph(
                &mut out,
                match report.ret {
                    ReturnContent::Full => {
                        "I'm sorry to have to tell you that your message could not be \
                         delivered to one or more recipients. The reasons are listed \
                         below, and the message is attached."
                    }
                    ReturnContent::Headers => {
                        "I'm sorry to have to tell you that your message could not be \
                         delivered to one or more recipients. The reasons are listed \
                         below, and the headers of the message are attached."
                    }
                },
                "",
            );
        }
        DsnKind::Delayed => {
            write_paragraph(
                &mut out,
                "THIS IS A WARNING ONLY. YOU DO NOT NEED TO RESEND YOUR MESSAGE.",
                "",
            );
            out.extend_from_slice(b"\r\n");
            let age = report
                .now
                .duration_since(report.arrival)
                .unwrap_or_default();
            let mut text = format!(
                "Your message could not be delivered for {}.",
                human_age(age)
            );
            let until = report
                .recipients
                .iter()
                .filter(|r| r.action == DsnKind::Delayed)
                .filter_map(|r| r.will_retry_until)
                .max();
            if let Some(until) = until {
                text.push_str(&format!(
                    " The mail system will keep trying until {}.",
                    rfc5322(until)
                ));
            }
            write_paragraph(&mut out, &text, "");
        }
        DsnKind::Relayed => {
            write_paragraph(
                &mut out,
                "Your message was successfully delivered to the destinations \
                 listed below. If a destination passed it on to a system that \
                 does not send delivery reports, you may still hear of later \
                 problems from that system.",
                "",
            );
        }
    }
    out.extend_from_slice(b"\r\n");
    if kind != DsnKind::Relayed {
        write_paragraph(
            &mut out,
            &format!(
                "For further help, send mail to postmaster@{host} and include \
                 this report. You may delete your own text from the attached \
                 message."
            ),
            "",
        );
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"                   The mail system\r\n");

    for r in report.recipients {
        out.extend_from_slice(b"\r\n");
        write_paragraph(&mut out, &recipient_line(r), "    ");
        if let Some(advice) = advice(r, &host) {
            write_paragraph(&mut out, &advice, "    ");
        }
    }
    out
}

/// What the sender can do about a failure this server's policy caused (the
/// dotplex page's advice for mandatory TLS).
fn advice(r: &DsnRecipient, host: &str) -> Option<String> {
    match (&r.decided_by, r.action) {
        (Decider::TlsPolicy { domain, .. }, DsnKind::Failed | DsnKind::Delayed) => Some(format!(
            "The receiving server of {} does not meet the encryption this mail \
             system requires for it. If that is expected, ask the postmaster of \
             {host} to switch off mandatory TLS for {}, or reach the recipient \
             another way.",
            one_line(domain),
            one_line(domain)
        )),
        _ => None,
    }
}

fn recipient_line(r: &DsnRecipient) -> String {
    let addr = one_line(&r.final_recipient);
    let remote = r.remote_mta.as_deref().map(one_line);
    let diag = r
        .diagnostic
        .as_deref()
        .map(|d| truncate(&one_line(d), MAX_DIAGNOSTIC));
    let status = one_line(&r.status);
    let what = match (&r.decided_by, r.action) {
        (_, DsnKind::Relayed) | (Decider::RemoteHost, _) => {
            remote_words(r.action, remote, diag, &status)
        }
        (by, action) => local_words(by, action, diag, &status),
    };
    let what = match &r.expired_after {
        Some(after) if r.action == DsnKind::Failed => {
            format!(
                "this mail system gave up after {}; the last attempt: {what}",
                one_line(after)
            )
        }
        _ => what,
    };
    format!("<{addr}>: {what}")
}

/// A decision of this server (or its operator, or what DNS and the network did),
/// said as such: never "host X said".
fn local_words(by: &Decider, action: DsnKind, diag: Option<String>, status: &str) -> String {
    let diag = diag.unwrap_or_else(|| format!("status {status}"));
    let what = match by {
        Decider::TlsPolicy { rule, domain } => format!(
            "this mail system's policy requires TLS for {} ({}), and it could not be met: {diag}",
            one_line(domain),
            one_line(rule)
        ),
        Decider::Dns => format!("the DNS lookup failed: {diag}"),
        Decider::Network => format!("the connection failed: {diag}"),
        Decider::Operator => format!("returned by the administrator of this mail system ({diag})"),
        Decider::RemoteHost => diag,
    };
    match action {
        DsnKind::Delayed => format!("delivery temporarily suspended: {what}"),
        _ => what,
    }
}

fn remote_words(
    action: DsnKind,
    remote: Option<String>,
    diag: Option<String>,
    status: &str,
) -> String {
    match (action, remote, diag) {
        (DsnKind::Relayed, Some(host), Some(diag)) => format!("delivered via {host}: {diag}"),
        (DsnKind::Relayed, Some(host), None) => format!("delivered via {host}"),
        (DsnKind::Relayed, None, Some(diag)) => format!("delivered: {diag}"),
        (DsnKind::Relayed, None, None) => "delivered".to_string(),
        (DsnKind::Delayed, Some(host), Some(diag)) => {
            format!("delivery temporarily suspended: host {host} said: {diag}")
        }
        (DsnKind::Delayed, _, Some(diag)) => format!("delivery temporarily suspended: {diag}"),
        (DsnKind::Delayed, _, None) => format!("delivery temporarily suspended ({status})"),
        (DsnKind::Failed, Some(host), Some(diag)) => format!("host {host} said: {diag}"),
        (DsnKind::Failed, _, Some(diag)) => diag,
        (DsnKind::Failed, _, None) => format!("delivery failed ({status})"),
    }
}
