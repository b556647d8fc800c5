//! The report itself (RFC 8460 4): JSON from the period counts, the `_smtp._tls`
//! TXT record that says where reports go, the mail that carries a gzipped report
//! (§5.3), and the result types of failed sessions (§4.3). Pure functions.

use std::io::Write;

use base64::Engine;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};

use super::counters::PeriodCounts;

/// Where a domain wants its reports (§3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rua {
    Mailto(String),
    Https(String),
}

/// The `rua` URIs of the TXT RRset at `_smtp._tls.<domain>`: exactly one record
/// starting with `v=TLSRPTv1`, else none (§3).
pub fn parse_rua(records: &[String]) -> Vec<Rua> {
    let ours: Vec<&String> = records
        .iter()
        .filter(|r| r.split(';').next().map(str::trim) == Some("v=TLSRPTv1"))
        .collect();
    let [one] = ours.as_slice() else {
        return vec![];
    };
    let Some(list) = one
        .split(';')
        .filter_map(|f| f.trim().split_once('='))
        .find(|(k, _)| k.trim() == "rua")
        .map(|(_, v)| v.trim())
    else {
        return vec![];
    };
    list.split(',')
        .filter_map(|u| {
            let u = u.trim();
            if let Some(addr) = u.strip_prefix("mailto:") {
                let addr = addr.split('?').next().unwrap_or("");
                (addr.contains('@') && !addr.contains(char::is_whitespace))
                    .then(|| Rua::Mailto(addr.to_string()))
            } else if u.starts_with("https://") {
                Some(Rua::Https(u.to_string()))
            } else {
                None
            }
        })
        .collect()
}

/// The RFC 8460 result type of a TLS failure, from delivery's diagnostic.
pub fn classify(text: &str) -> &'static str {
    let t = text.to_ascii_lowercase();
    if t.contains("not offered") || t.contains("refused to start tls") {
        "starttls-not-supported"
    } else if t.contains("dane-only") {
        "dane-required"
    } else if t.contains("dane policy") && t.contains("unknown") {
        "dnssec-invalid"
    } else if t.contains("not valid for the host name") {
        "certificate-host-mismatch"
    } else if t.contains("expired") {
        "certificate-expired"
    } else if t.contains("unknown authority") || t.contains("not verified") {
        "certificate-not-trusted"
    } else {
        "validation-failure"
    }
}

fn rfc3339(ms: u64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms as i64)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Who sends the report.
#[derive(Clone, Debug)]
pub struct Submitter<'a> {
    pub organization: &'a str,
    pub contact: &'a str,
    /// The submitter's domain (`TLS-Report-Submitter`): server.hostname.
    pub host: &'a str,
}

/// The JSON report of one domain's policies for one period.
pub fn report_json(sub: &Submitter, report_id: &str, counts: &[&PeriodCounts]) -> Value {
    let start = counts.iter().map(|c| c.period_start_ms).min().unwrap_or(0);
    let end = counts.iter().map(|c| c.period_end_ms).max().unwrap_or(0);
    let policies: Vec<Value> = counts
        .iter()
        .map(|c| {
            let failures: Vec<Value> = c
                .failures
                .iter()
                .map(|f| {
                    let mut v = json!({
                        "result-type": f.result_type,
                        "receiving-mx-hostname": f.receiving_mx_hostname,
                        "failed-session-count": f.count,
                    });
                    if let Some(ip) = f.receiving_ip {
                        v["receiving-ip"] = json!(ip.to_string());
                    }
                    if let Some(info) = &f.additional_information {
                        v["additional-information"] = json!(info);
                    }
                    v
                })
                .collect();
            let mut policy = json!({
                "policy-type": c.policy_type,
                "policy-domain": c.policy_domain,
            });
            if !c.policy_string.is_empty() {
                policy["policy-string"] = json!(c.policy_string);
            }
            if !c.mx_host.is_empty() {
                policy["mx-host"] = json!(c.mx_host);
            }
            let mut p = json!({
                "policy": policy,
                "summary": {
                    "total-successful-session-count": c.success,
                    "total-failure-session-count": c.failure_total(),
                },
            });
            if !failures.is_empty() {
                p["failure-details"] = json!(failures);
            }
            p
        })
        .collect();
    json!({
        "organization-name": sub.organization,
        "date-range": {
            "start-datetime": rfc3339(start),
            "end-datetime": rfc3339(end),
        },
        "contact-info": sub.contact,
        "report-id": report_id,
        "policies": policies,
    })
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(bytes).expect("writing to memory");
    z.finish().expect("writing to memory")
}

/// The report mail (§5.3): multipart/report; report-type="tlsrpt" with a text
/// part and the gzipped JSON as `application/tlsrpt+gzip`.
#[allow(clippy::too_many_arguments)]
pub fn report_mail(
    sub: &Submitter,
    from: &str,
    to: &str,
    domain: &str,
    report_id: &str,
    json: &Value,
    start_ms: u64,
    end_ms: u64,
    now_ms: u64,
) -> Vec<u8> {
    let body = serde_json::to_vec(json).expect("json value");
    let gz = gzip(&body);
    let b64 = base64::engine::general_purpose::STANDARD.encode(&gz);
    let boundary = format!("tlsrpt-{report_id}");
    let date = DateTime::<Utc>::from_timestamp_millis(now_ms as i64)
        .unwrap_or_default()
        .to_rfc2822();
    let filename = format!(
        "{}!{domain}!{}!{}!{report_id}.json.gz",
        sub.host,
        start_ms / 1000,
        end_ms / 1000
    );
    let mut m = String::new();
    m.push_str(&format!("From: <{from}>\r\n"));
    m.push_str(&format!("To: <{to}>\r\n"));
    m.push_str(&format!("Date: {date}\r\n"));
    m.push_str(&format!(
        "Subject: Report Domain: {domain} Submitter: {} Report-ID: <{report_id}>\r\n",
        sub.host
    ));
    m.push_str(&format!("TLS-Report-Domain: {domain}\r\n"));
    m.push_str(&format!("TLS-Report-Submitter: {}\r\n", sub.host));
    m.push_str(&format!("Message-ID: <{report_id}>\r\n"));
    m.push_str("MIME-Version: 1.0\r\n");
    m.push_str(&format!(
        "Content-Type: multipart/report; report-type=\"tlsrpt\"; boundary=\"{boundary}\"\r\n\r\n"
    ));
    m.push_str(&format!("--{boundary}\r\n"));
    m.push_str("Content-Type: text/plain; charset=us-ascii\r\n\r\n");
    m.push_str(&format!(
        "This is an aggregate TLS report (RFC 8460) from {} for {domain},\r\n{} to {}.\r\n",
        sub.host,
        rfc3339(start_ms),
        rfc3339(end_ms)
    ));
    m.push_str(&format!("\r\n--{boundary}\r\n"));
    m.push_str("Content-Type: application/tlsrpt+gzip\r\n");
    m.push_str("Content-Transfer-Encoding: base64\r\n");
    m.push_str(&format!(
        "Content-Disposition: attachment; filename=\"{filename}\"\r\n\r\n"
    ));
    for chunk in b64.as_bytes().chunks(76) {
        m.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
        m.push_str("\r\n");
    }
    m.push_str(&format!("\r\n--{boundary}--\r\n"));
    m.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tlsrpt::counters::FailureCount;

    fn counts() -> PeriodCounts {
        PeriodCounts {
            period_start_ms: 1_459_468_800_000,
            period_end_ms: 1_459_555_200_000,
            policy_domain: "company-y.example".into(),
            policy_type: "sts".into(),
            policy_string: vec![
                "version: STSv1".into(),
                "mode: testing".into(),
                "mx: *.mail.company-y.example".into(),
                "max_age: 86400".into(),
            ],
            mx_host: vec!["mx1.mail.company-y.example".into()],
            success: 5326,
            failures: vec![FailureCount {
                result_type: "certificate-expired".into(),
                receiving_mx_hostname: "mx1.mail.company-y.example".into(),
                receiving_ip: Some("203.0.113.56".parse().unwrap()),
                count: 100,
                additional_information: Some("the certificate has expired".into()),
            }],
        }
    }

    /// The committed example (tests/fixtures/tlsrpt-example.json) is what this
    /// code produces, and has every member RFC 8460 4.4 marks as required.
    #[test]
    fn the_report_matches_the_committed_example_and_the_rfc_members() {
        let sub = Submitter {
            organization: "Company-X",
            contact: "sts-reporting@company-x.example",
            host: "company-x.example",
        };
        let c = counts();
        let v = report_json(&sub, "5065427c-23d3-47ca-b6e0-946ea0e8c4be", &[&c]);
        let example: Value =
            serde_json::from_str(include_str!("../../tests/fixtures/tlsrpt-example.json")).unwrap();
        assert_eq!(v, example);
        for key in [
            "organization-name",
            "date-range",
            "contact-info",
            "report-id",
            "policies",
        ] {
            assert!(v.get(key).is_some(), "{key}");
        }
        assert_eq!(v["date-range"]["start-datetime"], "2016-04-01T00:00:00Z");
        assert_eq!(v["date-range"]["end-datetime"], "2016-04-02T00:00:00Z");
        let p = &v["policies"][0];
        for key in ["policy-type", "policy-domain"] {
            assert!(p["policy"].get(key).is_some(), "{key}");
        }
        assert!(p["summary"]["total-successful-session-count"].is_u64());
        assert!(p["summary"]["total-failure-session-count"].is_u64());
        let f = &p["failure-details"][0];
        for key in ["result-type", "failed-session-count"] {
            assert!(f.get(key).is_some(), "{key}");
        }
    }

    #[test]
    fn rua_records() {
        let r = |v: &[&str]| parse_rua(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(
            r(&["v=TLSRPTv1; rua=mailto:reports@example.com,https://r.example/x"]),
            vec![
                Rua::Mailto("reports@example.com".into()),
                Rua::Https("https://r.example/x".into())
            ]
        );
        assert_eq!(
            r(&["v=TLSRPTv1;rua=mailto:a@b"]),
            vec![Rua::Mailto("a@b".into())]
        );
        assert!(r(&["v=TLSRPTv1; rua=mailto:a@b", "v=TLSRPTv1; rua=mailto:c@d"]).is_empty());
        assert!(r(&["v=spf1 -all"]).is_empty());
        assert!(r(&["v=TLSRPTv1; rua=ftp://x"]).is_empty());
    }

    #[test]
    fn result_types_from_diagnostics() {
        assert_eq!(
            classify("4.7.4 TLS is required, but was not offered by host x"),
            "starttls-not-supported"
        );
        assert_eq!(
            classify(
                "Server certificate not verified: x: certificate issued by an unknown authority"
            ),
            "certificate-not-trusted"
        );
        assert_eq!(
            classify("x: the certificate is not valid for the host name"),
            "certificate-host-mismatch"
        );
        assert_eq!(
            classify("x: the certificate has expired"),
            "certificate-expired"
        );
        assert_eq!(
            classify("DANE is required (level dane-only), but"),
            "dane-required"
        );
        assert_eq!(
            classify("MX host a does not match the MTA-STS policy of b"),
            "validation-failure"
        );
    }
}
