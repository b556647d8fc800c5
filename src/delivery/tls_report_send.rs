//! TLS reporting's sending side (RFC 8460), beside the shard's delivery loop.
//! After each report period: for every domain with counts, look up where it
//! wants reports (`_smtp._tls` TXT), queue one report mail per `mailto:` URI,
//! and drop the period's counts.

use std::rc::Rc;
use std::time::Duration;

use super::DeliveryCtx;
use crate::dns::Dns;
use crate::proto::{Envelope, Recipient};
use crate::queue::{QueuedMessage, StoreError};
use crate::tlsrpt::report::{parse_rua, report_json, report_mail, Rua, Submitter};
use crate::tlsrpt::{Counters, PeriodCounts};

use crate::queue::clock::now_ms;

/// Queue one locally made message (a report) like a DSN is queued: written, not
/// yet committed; the caller commits and schedules it. The one place this module
/// writes to the queue.
pub fn queue_mail(
    ctx: &DeliveryCtx,
    sender: &str,
    rcpt: &str,
    body: &[u8],
) -> Result<(u64, QueuedMessage), StoreError> {
    let config = &ctx.settings().config;
    let envelope = Envelope {
        sender: sender.to_string(),
        recipients: vec![Recipient {
            address: rcpt.to_string(),
            // A report that can't be delivered is not worth a bounce to ourselves.
            notify: crate::proto::notify::NotifyFlags::parse("NEVER").ok(),
            orcpt: None,
        }],
        ret: None,
        envid: None,
        body_type: Default::default(),
        smtputf8: false,
        client_ip: std::net::IpAddr::from([127, 0, 0, 1]),
        helo: config.server.hostname.clone(),
        tls: None,
        arrival_ms: now_ms(),
        listener: "tls-report".into(),
        requiretls: false,
        tls_required_no: false,
    };
    let id = ctx.ids.next();
    let record = QueuedMessage::new(envelope, body.len() as u64);
    ctx.queue.write_new(id, &record, body)?;
    Ok((id, record))
}

/// Send the reports of every finished period, then sleep to the next boundary.
pub async fn run(ctx: Rc<DeliveryCtx>, counters: Rc<Counters>) {
    let config = ctx.settings().config.clone();
    let dns = match Dns::new(&config.dns) {
        Ok(d) => d,
        Err(e) => {
            tracing::error!(error = %e, "TLS reports: no DNS resolver; no reports are sent from this shard");
            return;
        }
    };
    let tls = match crate::mta_sts::lookup::https_config(config.outbound.mta_sts_ca_file.clone()) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, "TLS reports: no HTTPS client; no reports are sent from this shard");
            return;
        }
    };
    let interval = config.tls_report.interval.0;
    let mut shutdown = ctx.shutdown.clone();
    loop {
        if let Err(e) = send_finished(&ctx, &counters, &dns, &tls).await {
            tracing::error!(error = %e, "TLS reports: could not send; kept for the next try");
        }
        // Just past the next period boundary, so that period has ended.
        let now = now_ms();
        let next = counters.period_start(now) + interval.as_millis() as u64;
        let wait = Duration::from_millis(next.saturating_sub(now) + 200);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
    }
}

async fn send_finished(
    ctx: &DeliveryCtx,
    counters: &Counters,
    dns: &Dns,
    tls: &std::sync::Arc<rustls::ClientConfig>,
) -> Result<(), StoreError> {
    let now = now_ms();
    let finished = counters.finished(now)?;
    if finished.is_empty() {
        return Ok(());
    }
    let config = ctx.settings().config.clone();
    let postmaster = config.server.postmaster_address();
    let sub = Submitter {
        organization: config
            .tls_report
            .organization
            .as_deref()
            .unwrap_or(&config.server.hostname),
        contact: config.tls_report.contact.as_deref().unwrap_or(&postmaster),
        host: &config.server.hostname,
    };
    // (period, domain) → its policies' counts.
    let mut groups: Vec<((u64, String), Vec<&PeriodCounts>)> = Vec::new();
    for (_, c) in &finished {
        let k = (c.period_start_ms, c.policy_domain.clone());
        match groups.iter_mut().find(|(g, _)| *g == k) {
            Some((_, v)) => v.push(c),
            None => groups.push((k, vec![c])),
        }
    }
    let mut queued = Vec::new();
    for ((start, domain), counts) in &groups {
        let rua = match dns.txt(&format!("_smtp._tls.{domain}")).await {
            Ok(records) => parse_rua(&records),
            Err(e) => {
                tracing::info!(domain = %domain, error = %e, "TLS reports: cannot look up where to send the report; dropped");
                vec![]
            }
        };
        let end = counts
            .iter()
            .map(|c| c.period_end_ms)
            .max()
            .unwrap_or(*start);
        let report_id = format!(
            "{}.{}.{}@{}",
            start / 1000,
            ctx.shard,
            crate::queue::format_id(ctx.ids.next()),
            config.server.hostname
        );
        let json = report_json(&sub, &report_id, counts);
        for uri in rua {
            match uri {
                Rua::Mailto(to) => {
                    let mail = report_mail(
                        &sub,
                        &postmaster,
                        &to,
                        domain,
                        &report_id,
                        &json,
                        *start,
                        end,
                        now,
                    );
                    queued.push(queue_mail(ctx, &postmaster, &to, &mail)?);
                    tracing::info!(domain = %domain, to = %to, report_id = %report_id, "TLS report queued");
                }
                Rua::Https(url) => {
                    let gz = crate::tlsrpt::report::gzip(
                        &serde_json::to_vec(&json).expect("json value"),
                    );
                    match crate::tlsrpt::https::post(&url, dns, tls.clone(), gz).await {
                        Ok(()) => {
                            tracing::info!(domain = %domain, url = %url, report_id = %report_id, "TLS report posted")
                        }
                        // Not retried: the next period's report follows.
                        Err(e) => {
                            tracing::warn!(domain = %domain, error = %e, "TLS report could not be posted")
                        }
                    }
                }
            }
        }
    }
    ctx.queue.commit().await?;
    // Only now: a crash before the commit sends the reports again, never loses them.
    for (key, _) in &finished {
        counters.remove(key)?;
    }
    for (id, rec) in queued {
        ctx.scheduler.enqueued(id, &rec);
    }
    Ok(())
}
