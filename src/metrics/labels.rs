//! Label sets of the metric families. Values are the words an operator greps
//! for, the config's own spellings where there is one.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};

use crate::queue::status::{Failure, ProtocolProblem, Status, TlsProblem};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ListenerLabels {
    pub listener: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConnectionLabels {
    pub listener: String,
    /// `none`, `TLSv1.2` or `TLSv1.3`.
    pub tls: String,
}

#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum DeliveryOutcome {
    delivered,
    deferred,
    bounced,
}

/// Why a recipient was deferred or bounced, in classes an operator can act on.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum FailureClass {
    /// Delivered: no failure.
    none,
    /// The remote host answered with a 4xx or 5xx reply.
    remote_reply,
    /// Our TLS policy could not be met (no STARTTLS, bad certificate, DANE).
    tls_policy,
    /// A DNS lookup failed (NXDOMAIN, SERVFAIL, timeout).
    dns,
    /// TCP connect failed or the connection broke.
    connection,
    /// The message reached `give_up_after`.
    expired,
    /// An operator bounced it (`mxring queue bounce`).
    operator,
    /// Anything else (protocol errors, local errors).
    other,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeliveryLabels {
    pub outcome: DeliveryOutcome,
    pub reason: FailureClass,
}

impl DeliveryLabels {
    /// The labels of a recipient's status after an attempt (an expiry turns a
    /// deferral into a bounce, with reason `expired`).
    pub fn of(status: &Status) -> DeliveryLabels {
        let outcome = match status {
            Status::Delivered { .. } | Status::Pending => DeliveryOutcome::delivered,
            Status::Deferred { .. } => DeliveryOutcome::deferred,
            Status::Failed { .. } => DeliveryOutcome::bounced,
        };
        let reason = match status.failure() {
            None => FailureClass::none,
            Some(f) => match f {
                Failure::Remote { .. } => FailureClass::remote_reply,
                Failure::Protocol { problem, .. } => match problem {
                    ProtocolProblem::SessionRefused
                    | ProtocolProblem::MessageTooBig
                    | ProtocolProblem::NoSmtpUtf8
                    | ProtocolProblem::NoRequireTls => FailureClass::remote_reply,
                    ProtocolProblem::LostConnection => FailureClass::connection,
                    ProtocolProblem::Unexpected => FailureClass::other,
                },
                Failure::Tls {
                    required_by: Some(_),
                    ..
                } => FailureClass::tls_policy,
                // No rule required it: DANE's DNS answers were missing, or an
                // opportunistic handshake broke.
                Failure::Tls {
                    problem: TlsProblem::DaneUnavailable,
                    ..
                } => FailureClass::dns,
                Failure::Tls { .. } | Failure::Connect { .. } => FailureClass::connection,
                Failure::Dns { .. } => FailureClass::dns,
                Failure::Expired { .. } => FailureClass::expired,
                Failure::Operator => FailureClass::operator,
            },
        };
        DeliveryLabels { outcome, reason }
    }
}

#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum DsnKind {
    delay,
    failure,
    success,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DsnLabels {
    pub kind: DsnKind,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReplyLabels {
    pub code: String,
    /// The enhanced status code, or empty when the reply has none.
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PolicyLabels {
    /// `inbound` or `outbound`.
    pub direction: String,
    /// `inbound_tls[N]`, `outbound_tls[N]` (1-based, as in the file), `listener`
    /// or `default_tls`.
    pub rule: String,
    /// The outcome: `require`, `optional`, or the outbound level.
    pub result: String,
}
