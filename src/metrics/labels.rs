//! Label sets of the metric families. Values are the words an operator greps
//! for, the config's own spellings where there is one.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};

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
