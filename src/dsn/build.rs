use super::boundary;
use super::date::{compact, rfc5322};
use super::human::notification;
use super::original::returned;
use super::report::DsnReport;
use super::status::delivery_status;
use super::text::{one_line, write_field};

/// Writes the whole report (headers and body, CRLF lines) ready to queue
/// with a null envelope sender to `report.original_sender`.
///
/// When any part holds 8-bit text (an internationalised address, an 8-bit
/// original) the message says `Content-Transfer-Encoding: 8bit` and must be
/// relayed with `BODY=8BITMIME`.
pub fn build_dsn(report: &DsnReport) -> Vec<u8> {
    let host = one_line(report.reporting_mta);
    let human = notification(report);
    let status = delivery_status(report);
    let original = returned(report.original_message, report.ret);
    let boundary = boundary::choose(
        report.message_id_seed,
        report.now,
        &host,
        &[&human, &status, &original.body],
    );
    let human_cte = cte(&human);
    let original_cte = cte(&original.body);
    let eight_bit = human_cte == "8bit" || original_cte == "8bit";

    let mut out = Vec::with_capacity(human.len() + status.len() + original.body.len() + 1024);
    let sender = one_line(report.original_sender);
    let to = if sender.is_empty() {
        // Never sent (the null sender gets no reports), but keep the header
        // well formed if someone builds one anyway.
        "undisclosed-recipients:;".to_string()
    } else {
        sender
    };
    write_field(
        &mut out,
        "From",
        &format!("Mail Delivery System <MAILER-DAEMON@{host}>"),
    );
    write_field(&mut out, "To", &to);
    write_field(&mut out, "Subject", report.kind().subject());
    write_field(&mut out, "Date", &rfc5322(report.now));
    write_field(
        &mut out,
        "Message-ID",
        &format!(
            "<{}.{:016X}@{host}>",
            compact(report.now),
            report.message_id_seed
        ),
    );
    write_field(&mut out, "Auto-Submitted", "auto-replied");
    write_field(&mut out, "MIME-Version", "1.0");
    write_field(
        &mut out,
        "Content-Type",
        &format!("multipart/report; report-type=delivery-status; boundary=\"{boundary}\""),
    );
    if eight_bit {
        write_field(&mut out, "Content-Transfer-Encoding", "8bit");
    }
    out.extend_from_slice(b"\r\nThis is a MIME-encapsulated message.\r\n");

    let part = |out: &mut Vec<u8>, headers: &[(&str, &str)], body: &[u8]| {
        out.extend_from_slice(format!("\r\n--{boundary}\r\n").as_bytes());
        for (name, value) in headers {
            write_field(out, name, value);
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(body);
    };
    part(
        &mut out,
        &[
            ("Content-Description", "Notification"),
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Transfer-Encoding", human_cte),
        ],
        &human,
    );
    part(
        &mut out,
        &[
            ("Content-Description", "Delivery report"),
            ("Content-Type", "message/delivery-status"),
        ],
        &status,
    );
    part(
        &mut out,
        &[
            ("Content-Description", original.description),
            ("Content-Type", original.content_type),
            ("Content-Transfer-Encoding", original_cte),
        ],
        &original.body,
    );
    // The CRLF before a delimiter belongs to the delimiter, so each part's
    // body, returned message included, comes back byte for byte.
    out.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    out
}

fn cte(body: &[u8]) -> &'static str {
    if body.is_ascii() {
        "7bit"
    } else {
        "8bit"
    }
}
