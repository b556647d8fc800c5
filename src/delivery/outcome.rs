//! Pure bookkeeping of an attempt: per-recipient results applied to the record,
//! which DSNs are due, and when the next attempt is. Time comes in as an argument,
//! so a 24-hour schedule is tested in milliseconds.

use crate::config::QueueConfig;
use crate::dsn::Decider;
use crate::proto::TlsFacts;
use crate::queue::{QueuedMessage, RcptState};

/// The result of one attempt for one recipient.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RcptResult {
    pub kind: ResultKind,
    /// Enhanced status, e.g. "2.0.0", "4.4.1", "5.1.1".
    pub status: String,
    /// The reply or error text, e.g. "550 5.1.1 no such user".
    pub text: String,
    pub remote_mta: Option<String>,
    pub tls: Option<TlsFacts>,
    /// The next hop takes DSN responsibility (it advertised DSN).
    pub peer_dsn: bool,
    /// Who decided this result.
    pub decided_by: Decider,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResultKind {
    Delivered,
    Temporary,
    Permanent,
}

impl ResultKind {
    /// The word in log lines.
    pub fn name(self) -> &'static str {
        match self {
            ResultKind::Delivered => "delivered",
            ResultKind::Temporary => "deferred",
            ResultKind::Permanent => "failed",
        }
    }
}

/// What must happen after the results were applied.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Followup {
    /// Recipients that failed in this attempt (failure DSN).
    pub failed: Vec<usize>,
    /// Recipients to report as delayed (delay DSN).
    pub delayed: Vec<usize>,
    /// Recipients delivered to a hop without DSN that asked NOTIFY=SUCCESS.
    pub relayed: Vec<usize>,
    /// Every recipient is done: the message leaves the queue.
    pub done: bool,
    /// When to try again, when not done.
    pub next_attempt_ms: Option<u64>,
}

fn wants(notify: &Option<String>, what: &str) -> bool {
    notify
        .as_deref()
        .is_some_and(|n| n.split(',').any(|w| w == what))
}

/// Apply `results` (index into the recipients, result) at time `now_ms`.
pub fn apply(
    rec: &mut QueuedMessage,
    results: &[(usize, RcptResult)],
    now_ms: u64,
    q: &QueueConfig,
) -> Followup {
    let mut f = Followup::default();
    rec.attempts += 1;
    for (i, r) in results {
        let st = &mut rec.rcpts[*i];
        st.attempts += 1;
        st.last_reply = Some(r.text.clone());
        st.status = Some(r.status.clone());
        st.remote_mta = r.remote_mta.clone().or(st.remote_mta.take());
        st.tls = r.tls.clone().or(st.tls.take());
        st.last_attempt_ms = Some(now_ms);
        st.decided_by = r.decided_by.clone();
        st.state = match r.kind {
            ResultKind::Delivered => {
                if !r.peer_dsn && wants(&rec.envelope.recipients[*i].notify, "SUCCESS") {
                    f.relayed.push(*i);
                }
                RcptState::Delivered
            }
            ResultKind::Permanent => {
                f.failed.push(*i);
                RcptState::Failed
            }
            ResultKind::Temporary => RcptState::TemporaryFailure,
        };
    }
    let arrival = rec.envelope.arrival_ms;
    let give_up = arrival + q.give_up_after.0.as_millis() as u64;
    let warn_at = arrival + q.delay_warning_after.0.as_millis() as u64;
    let pending: Vec<usize> = (0..rec.rcpts.len())
        .filter(|&i| !rec.rcpts[i].state.is_done())
        .collect();
    if !pending.is_empty() && now_ms >= give_up {
        // Out of time: what is still pending fails now, with its last error.
        for &i in &pending {
            let st = &mut rec.rcpts[i];
            st.state = RcptState::Failed;
            if st.status.is_none() {
                st.status = Some("4.4.7".into());
            }
            if st.last_reply.is_none() {
                st.last_reply = Some("no attempt succeeded".into());
            }
            st.expired_after = Some(crate::config::Dur(q.give_up_after.0).to_string());
            f.failed.push(i);
        }
    } else if !pending.is_empty() && !rec.delay_warned && now_ms >= warn_at {
        rec.delay_warned = true;
        f.delayed = pending.clone();
    }
    f.done = rec.all_done();
    if !f.done {
        let step = (rec.attempts as usize)
            .saturating_sub(1)
            .min(q.retry.len() - 1);
        let mut next = now_ms + q.retry[step].0.as_millis() as u64;
        if !rec.delay_warned {
            next = next.min(warn_at.max(now_ms + 1));
        }
        next = next.min(give_up.max(now_ms + 1));
        rec.next_attempt_ms = next;
        f.next_attempt_ms = Some(next);
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Dur;
    use crate::proto::{Envelope, Recipient};
    use std::time::Duration;

    fn record(rcpts: &[(&str, Option<&str>)]) -> QueuedMessage {
        let env = Envelope {
            sender: "s@x.example".into(),
            recipients: rcpts
                .iter()
                .map(|(a, n)| Recipient {
                    address: a.to_string(),
                    notify: n.map(str::to_string),
                    orcpt: None,
                })
                .collect(),
            ret: None,
            envid: None,
            body_type: Default::default(),
            smtputf8: false,
            client_ip: "127.0.0.1".parse().unwrap(),
            helo: "h".into(),
            tls: None,
            arrival_ms: 1_000_000,
            listener: "mx".into(),
            requiretls: false,
            tls_required_no: false,
        };
        QueuedMessage::new(env, 10)
    }

    fn q() -> QueueConfig {
        let s = |n| Dur(Duration::from_secs(n));
        QueueConfig {
            retry: vec![s(60), s(120)],
            delay_warning_after: s(3600),
            give_up_after: s(86400),
            ..Default::default()
        }
    }

    fn res(kind: ResultKind) -> RcptResult {
        RcptResult {
            kind,
            status: "4.0.0".into(),
            text: "451 later".into(),
            remote_mta: None,
            tls: None,
            peer_dsn: false,
            decided_by: Decider::RemoteHost,
        }
    }

    #[test]
    fn schedule_follows_retry_steps_then_warns_then_gives_up() {
        let mut r = record(&[("a@b", None)]);
        let t0 = 1_000_000;
        let f = apply(&mut r, &[(0, res(ResultKind::Temporary))], t0, &q());
        assert_eq!(f.next_attempt_ms, Some(t0 + 60_000));
        let f = apply(
            &mut r,
            &[(0, res(ResultKind::Temporary))],
            t0 + 60_000,
            &q(),
        );
        assert_eq!(f.next_attempt_ms, Some(t0 + 180_000));
        // The last step repeats, but never past the warning time.
        let f = apply(
            &mut r,
            &[(0, res(ResultKind::Temporary))],
            t0 + 3_599_000,
            &q(),
        );
        assert_eq!(f.next_attempt_ms, Some(t0 + 3_600_000));
        assert!(f.delayed.is_empty());
        let f = apply(
            &mut r,
            &[(0, res(ResultKind::Temporary))],
            t0 + 3_600_000,
            &q(),
        );
        assert_eq!(f.delayed, vec![0]);
        let f = apply(
            &mut r,
            &[(0, res(ResultKind::Temporary))],
            t0 + 7_200_000,
            &q(),
        );
        assert!(f.delayed.is_empty(), "only one delay DSN");
        let f = apply(
            &mut r,
            &[(0, res(ResultKind::Temporary))],
            t0 + 86_399_000,
            &q(),
        );
        assert_eq!(f.next_attempt_ms, Some(t0 + 86_400_000));
        let f = apply(
            &mut r,
            &[(0, res(ResultKind::Temporary))],
            t0 + 86_400_000,
            &q(),
        );
        assert_eq!((f.failed.clone(), f.done), (vec![0], true));
        assert_eq!(r.rcpts[0].expired_after.as_deref(), Some("24h"));
        assert_eq!(r.rcpts[0].last_reply.as_deref(), Some("451 later"));
    }

    #[test]
    fn mixed_outcomes_and_success_notification() {
        let mut r = record(&[("a@b", Some("SUCCESS")), ("c@d", None), ("e@f", None)]);
        let f = apply(
            &mut r,
            &[
                (0, res(ResultKind::Delivered)),
                (1, res(ResultKind::Permanent)),
                (2, res(ResultKind::Temporary)),
            ],
            1_000_000,
            &q(),
        );
        assert_eq!(f.relayed, vec![0]);
        assert_eq!(f.failed, vec![1]);
        assert!(!f.done);
        let f = apply(&mut r, &[(2, res(ResultKind::Delivered))], 1_060_000, &q());
        assert!(f.done);
        assert!(f.next_attempt_ms.is_none());
    }
}
