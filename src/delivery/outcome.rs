//! Pure bookkeeping of an attempt: per-recipient results applied to the record,
//! which DSNs are due, and when the next attempt is. Time comes in as an argument,
//! so a 24-hour schedule is tested in milliseconds.

use crate::config::QueueConfig;
use crate::queue::status::{Failure, RemoteMta, Status};
use crate::queue::QueuedMessage;

/// The result of one attempt for one recipient.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RcptResult {
    /// Delivered, deferred or failed, with the reply or failure and the host.
    pub status: Status,
    /// The next hop takes DSN responsibility (it advertised DSN).
    pub peer_dsn: bool,
}

impl RcptResult {
    /// A failure, deferred or failed as its kind says.
    pub fn failed(failure: Failure, remote: Option<RemoteMta>) -> Self {
        RcptResult {
            status: Status::from_failure(failure, remote),
            peer_dsn: false,
        }
    }

    pub fn is_deferral(&self) -> bool {
        matches!(self.status, Status::Deferred { .. })
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
        let rcpt = &mut rec.rcpts[*i];
        rcpt.attempts += 1;
        rcpt.last_attempt_ms = Some(now_ms);
        let mut status = r.status.clone();
        status.keep_remote_of(&rcpt.status);
        match &status {
            Status::Delivered { .. } => {
                let success = rcpt.rcpt.notify.is_some_and(|n| n.success);
                if !r.peer_dsn && success {
                    f.relayed.push(*i);
                }
            }
            Status::Failed { .. } => f.failed.push(*i),
            Status::Deferred { .. } | Status::Pending => {}
        }
        rcpt.status = status;
    }
    let arrival = rec.envelope.arrival_ms;
    let give_up = arrival + q.give_up_after.0.as_millis() as u64;
    let warn_at = arrival + q.delay_warning_after.0.as_millis() as u64;
    let pending: Vec<usize> = (0..rec.rcpts.len())
        .filter(|&i| !rec.rcpts[i].is_done())
        .collect();
    if !pending.is_empty() && now_ms >= give_up {
        // Out of time: what is still pending fails now, with its last error.
        for &i in &pending {
            let st = &mut rec.rcpts[i].status;
            let (last, remote) = match std::mem::replace(st, Status::Pending) {
                Status::Deferred { failure, remote } => (Some(Box::new(failure)), remote),
                _ => (None, None),
            };
            *st = Status::Failed {
                failure: Failure::Expired {
                    after: crate::config::Dur(q.give_up_after.0).to_string(),
                    last,
                },
                remote,
            };
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
    use crate::queue::status::Reply;
    use std::time::Duration;

    fn record(rcpts: &[(&str, Option<&str>)]) -> QueuedMessage {
        let env = Envelope {
            sender: "s@x.example".into(),
            recipients: rcpts
                .iter()
                .map(|(a, n)| Recipient {
                    address: a.to_string(),
                    notify: n.map(|n| crate::proto::NotifyFlags::parse(n).unwrap()),
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

    #[derive(Clone, Copy)]
    enum Kind {
        Delivered,
        Temporary,
        Permanent,
    }

    fn res(kind: Kind) -> RcptResult {
        let reply = |code, text: &str| Reply {
            code,
            enhanced: None,
            text: text.into(),
        };
        let status = match kind {
            Kind::Delivered => Status::Delivered {
                reply: reply(250, "250 ok"),
                remote: None,
            },
            Kind::Temporary => Status::Deferred {
                failure: Failure::Remote {
                    reply: reply(451, "451 later"),
                },
                remote: None,
            },
            Kind::Permanent => Status::Failed {
                failure: Failure::Remote {
                    reply: reply(550, "550 no"),
                },
                remote: None,
            },
        };
        RcptResult {
            status,
            peer_dsn: false,
        }
    }

    #[test]
    fn schedule_follows_retry_steps_then_warns_then_gives_up() {
        let mut r = record(&[("a@b", None)]);
        let t0 = 1_000_000;
        let f = apply(&mut r, &[(0, res(Kind::Temporary))], t0, &q());
        assert_eq!(f.next_attempt_ms, Some(t0 + 60_000));
        let f = apply(&mut r, &[(0, res(Kind::Temporary))], t0 + 60_000, &q());
        assert_eq!(f.next_attempt_ms, Some(t0 + 180_000));
        // The last step repeats, but never past the warning time.
        let f = apply(&mut r, &[(0, res(Kind::Temporary))], t0 + 3_599_000, &q());
        assert_eq!(f.next_attempt_ms, Some(t0 + 3_600_000));
        assert!(f.delayed.is_empty());
        let f = apply(&mut r, &[(0, res(Kind::Temporary))], t0 + 3_600_000, &q());
        assert_eq!(f.delayed, vec![0]);
        let f = apply(&mut r, &[(0, res(Kind::Temporary))], t0 + 7_200_000, &q());
        assert!(f.delayed.is_empty(), "only one delay DSN");
        let f = apply(&mut r, &[(0, res(Kind::Temporary))], t0 + 86_399_000, &q());
        assert_eq!(f.next_attempt_ms, Some(t0 + 86_400_000));
        let f = apply(&mut r, &[(0, res(Kind::Temporary))], t0 + 86_400_000, &q());
        assert_eq!((f.failed.clone(), f.done), (vec![0], true));
        let st = &r.rcpts[0].status;
        assert_eq!(st.name(), "failed");
        assert_eq!(st.failure().and_then(|f| f.expired_after()), Some("24h"));
        assert_eq!(st.last_reply().as_deref(), Some("451 later"));
        assert_eq!(
            st.code().unwrap().to_string(),
            "4.0.0",
            "the last attempt's code"
        );
    }

    #[test]
    fn mixed_outcomes_and_success_notification() {
        let mut r = record(&[("a@b", Some("SUCCESS")), ("c@d", None), ("e@f", None)]);
        let f = apply(
            &mut r,
            &[
                (0, res(Kind::Delivered)),
                (1, res(Kind::Permanent)),
                (2, res(Kind::Temporary)),
            ],
            1_000_000,
            &q(),
        );
        assert_eq!(f.relayed, vec![0]);
        assert_eq!(f.failed, vec![1]);
        assert!(!f.done);
        let f = apply(&mut r, &[(2, res(Kind::Delivered))], 1_060_000, &q());
        assert!(f.done);
        assert!(f.next_attempt_ms.is_none());
    }
}
