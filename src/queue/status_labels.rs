//! A recipient's status as the labels of the delivery counters: the queue knows
//! its types, the metrics module only the label sets.

use super::status::{Failure, ProtocolProblem, Status, TlsProblem};
use crate::metrics::{DeliveryLabels, DeliveryOutcome, FailureClass};

impl Status {
    /// The labels of a recipient's status after an attempt (an expiry turns a
    /// deferral into a bounce, with reason `expired`).
    pub fn metric_labels(&self) -> DeliveryLabels {
        let outcome = match self {
            Status::Delivered { .. } | Status::Pending => DeliveryOutcome::delivered,
            Status::Deferred { .. } => DeliveryOutcome::deferred,
            Status::Failed { .. } => DeliveryOutcome::bounced,
        };
        let reason = match self.failure() {
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
