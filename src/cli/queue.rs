//! `mxring queue ...`: talks to the running server's admin API.

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;

use mxring::admin::{AdminClient, MessageView};

use super::ConfigArg;

#[derive(Subcommand)]
pub enum QueueAction {
    /// List queued messages with per-recipient status.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show one message: envelope, per-recipient status and headers (`--json`: the
    /// admin API's JSON).
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Attempt delivery now. While an attempt is in progress nothing is done and
    /// the exit status is 75 (EX_TEMPFAIL).
    Retry { id: String },
    /// Remove a message without notice (during an attempt: when it ends).
    Delete { id: String },
    /// Fail the pending recipients now and send the sender a failure DSN (during
    /// an attempt: when it ends, for the recipients still pending then).
    Bounce { id: String },
}

/// Exit status of `queue retry` for a message whose delivery is in progress.
pub const EX_TEMPFAIL: u8 = 75;

fn when(ms: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    let dt: chrono::DateTime<chrono::Utc> = t.into();
    dt.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// One message for a person, in the spirit of `postqueue -p` and `postcat -q`.
fn show(m: &MessageView) -> String {
    let mut t = String::new();
    let sender = if m.sender.is_empty() { "<>" } else { &m.sender };
    let line = |t: &mut String, k: &str, v: &str| t.push_str(&format!("{k:<14}{v}\n"));
    line(&mut t, "Queue ID:", &m.id);
    line(&mut t, "Sender:", sender);
    line(&mut t, "Size:", &format!("{} bytes", m.size));
    line(&mut t, "Arrived:", &when(m.arrival_ms));
    line(
        &mut t,
        "From client:",
        &format!(
            "{} (HELO {}), {}",
            m.client_ip,
            m.helo,
            m.tls
                .as_deref()
                .map_or("no TLS".to_string(), |t| format!("TLS {t}"))
        ),
    );
    line(&mut t, "Attempts:", &m.attempts.to_string());
    line(&mut t, "Next attempt:", &when(m.next_attempt_ms));
    if m.delay_warned {
        line(&mut t, "Delay notice:", "sent to the sender");
    }
    t.push_str("Recipients:\n");
    for r in &m.recipients {
        t.push_str(&format!(
            "  {}  {} after {} attempt(s)\n",
            r.address, r.state, r.attempts
        ));
        if let Some(reply) = &r.last_reply {
            t.push_str(&format!("      last reply: {reply}\n"));
        }
        if let Some(by) = &r.decided_by {
            t.push_str(&format!("      decided by: {by}\n"));
        }
        if let Some(mta) = &r.remote_mta {
            let tls = r
                .tls
                .as_deref()
                .map_or("no TLS".to_string(), |t| format!("TLS {t}"));
            t.push_str(&format!("      remote MTA: {mta}, {tls}\n"));
        }
    }
    if let Some(h) = &m.headers {
        t.push_str("Headers:\n");
        for l in h.lines() {
            t.push_str(&format!("  {l}\n"));
        }
    }
    t
}

pub fn run(arg: &ConfigArg, action: QueueAction) -> anyhow::Result<ExitCode> {
    let (config, _) = arg.load()?;
    let addr: SocketAddr = config
        .admin
        .address
        .parse()
        .context("admin.address is not set in this config")?;
    let client = AdminClient::new(addr);
    let (status, body) = match &action {
        QueueAction::List { .. } => client.request("GET", "/queue")?,
        QueueAction::Show { id, .. } => client.request("GET", &format!("/queue/{id}"))?,
        QueueAction::Retry { id } => client.request("POST", &format!("/queue/{id}/retry"))?,
        QueueAction::Delete { id } => client.request("POST", &format!("/queue/{id}/delete"))?,
        QueueAction::Bounce { id } => client.request("POST", &format!("/queue/{id}/bounce"))?,
    };
    if status != 200 && status != 202 {
        let msg = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_string))
            .unwrap_or(body);
        eprintln!("mxring: {msg}");
        // 409: a retry of a message being delivered; nothing was done, and trying
        // again later may succeed (sysexits EX_TEMPFAIL).
        return Ok(ExitCode::from(if status == 409 { EX_TEMPFAIL } else { 1 }));
    }
    match action {
        QueueAction::List { json: true } | QueueAction::Show { json: true, .. } => {
            outln!("{body}")
        }
        QueueAction::Show { json: false, .. } => {
            let m: MessageView = serde_json::from_str(&body)?;
            out!("{}", show(&m));
        }
        QueueAction::List { json: false } => {
            let list: Vec<MessageView> = serde_json::from_str(&body)?;
            if list.is_empty() {
                outln!("Mail queue is empty");
            }
            for m in &list {
                let sender = if m.sender.is_empty() { "<>" } else { &m.sender };
                outln!(
                    "{}  {:>8}  {}  {}",
                    m.id,
                    m.size,
                    when(m.arrival_ms),
                    sender
                );
                outln!(
                    "    attempts {}  next attempt {}",
                    m.attempts,
                    when(m.next_attempt_ms)
                );
                for r in &m.recipients {
                    let last = r.last_reply.as_deref().unwrap_or("-");
                    outln!(
                        "    {:<40} {:<17} tries {:<3} {}",
                        r.address,
                        r.state,
                        r.attempts,
                        last
                    );
                }
            }
            outln!("-- {} message(s)", list.len());
        }
        _ => {
            let v: serde_json::Value = serde_json::from_str(&body)?;
            outln!("{}", v["result"].as_str().unwrap_or(&body));
        }
    }
    Ok(ExitCode::SUCCESS)
}
