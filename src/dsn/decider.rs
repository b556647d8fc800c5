//! Who decided a recipient's fate. A DSN must not blame the remote host for a
//! decision this server made (its TLS policy, its give-up time, its operator).
//! Never stored: derived from the recipient's typed failure
//! (`queue::status::Failure::decided_by`).

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Decider {
    /// The remote host, by its reply (quoted in the diagnostic).
    #[default]
    RemoteHost,
    /// This server's outbound TLS policy could not be met. `rule` names the rule
    /// as the config file does (`[[outbound_tls]] #2`, `[outbound] default_tls`).
    TlsPolicy { rule: String, domain: String },
    /// A DNS lookup (no such domain, no answer).
    Dns,
    /// The network: no connection, or a connection that broke or stalled.
    Network,
    /// The mail system's administrator (`mxring queue bounce`).
    Operator,
}

impl Decider {
    /// Who decided, in words for log lines and `mxring queue show`.
    pub fn describe(&self) -> String {
        match self {
            Decider::RemoteHost => "the remote host".into(),
            Decider::TlsPolicy { rule, domain } => {
                format!("our TLS policy for {domain} ({rule})")
            }
            Decider::Dns => "DNS".into(),
            Decider::Network => "the network".into(),
            Decider::Operator => "the operator".into(),
        }
    }
}
