//! The TLS one group of recipients is sent with to one MX host: the policy's
//! decision first, then DANE, MTA-STS and REQUIRETLS in that order, and the
//! sender's `TLS-Required: No`. When the TLS can't be had at all (DANE records
//! unavailable, an MX the MTA-STS policy does not list) nothing is sent, and a
//! failure says which of them required it.

use super::attempt::{DomainAttempt, Hop};
use super::outbound::TlsPlan;
use crate::config::{OnTlsFailure, TlsLevel};
use crate::dane::DaneState;
use crate::dns::Addresses;
use crate::mta_sts::HostPlan;
use crate::policy::{dane_plan, DanePlan, OutboundDecision};
use crate::queue::status::{Failure, TlsProblem, TlsRule};

/// Why a group is sent nowhere at this host.
pub(super) struct Refusal {
    pub failure: Failure,
    /// Whether that is a policy's decision (else: a DANE lookup that failed).
    pub by_policy: bool,
}

pub(super) struct GroupPlan {
    pub plan: TlsPlan,
    pub refusal: Option<Refusal>,
    /// REQUIRETLS raised the level to an authenticated one.
    pub requiretls_raised: bool,
}

impl DomainAttempt<'_> {
    /// The plan for `decision` at `hop`; `dane_state` is looked up on first need
    /// and kept for the host's other groups.
    pub(super) async fn plan_group(
        &self,
        decision: &OutboundDecision,
        hop: &Hop,
        addresses: &Addresses,
        dane_state: &mut Option<DaneState>,
    ) -> GroupPlan {
        let host = &hop.name;
        let envelope = &self.m.rec.envelope;
        let mut plan = TlsPlan {
            level: decision.level,
            min_version: decision.min_version,
            peer_name: decision
                .match_names
                .first()
                .cloned()
                .unwrap_or_else(|| host.clone()),
            ca_file: decision.ca_file.clone(),
            client_certificate: decision.client_certificate.clone(),
            dane: None,
            mta_sts: false,
        };
        let mut refusal = None;
        // TLS-Required: No (RFC 8689 4.1): the sender asks that the recipient's
        // own policies (DANE by default_tls, MTA-STS) be ignored; the operator's
        // explicit rules still hold.
        let ignore_recipient_policy = envelope.tls_required_no && decision.rule.is_none();
        if ignore_recipient_policy && matches!(plan.level, TlsLevel::Dane | TlsLevel::DaneOnly) {
            plan.level = TlsLevel::May;
        }
        if matches!(plan.level, TlsLevel::Dane | TlsLevel::DaneOnly) {
            let state = match dane_state {
                Some(state) => state,
                None => dane_state.insert(
                    self.m
                        .d
                        .dns
                        .dane_state(self.mx_secure, host, addresses, hop.port)
                        .await,
                ),
            };
            refusal = apply_dane(&mut plan, state, host);
        }
        // Below an explicit rule and DANE, above default_tls.
        if let (Some(view), None, None, None, false) = (
            &self.sts,
            decision.rule,
            &plan.dane,
            &refusal,
            ignore_recipient_policy,
        ) {
            match crate::mta_sts::host_plan(view, host) {
                HostPlan::Verify { .. } => {
                    plan.level = TlsLevel::Verify;
                    plan.peer_name = host.clone();
                    plan.ca_file = self.m.config.outbound.mta_sts_ca_file.clone();
                    plan.mta_sts = true;
                }
                HostPlan::Refuse { text } => {
                    refusal = Some(Refusal {
                        failure: Failure::Tls {
                            problem: TlsProblem::StsMxNotAllowed,
                            text,
                            required_by: None,
                        },
                        by_policy: true,
                    });
                    plan.mta_sts = true;
                }
                HostPlan::Testing { matches } => {
                    tracing::debug!(domain = self.domain, relay = %host, matches, "MTA-STS policy in testing mode: delivering as usual");
                }
                HostPlan::NoPolicy => {}
            }
        }
        // REQUIRETLS (RFC 8689 4.2.1): TLS authenticated by DANE, MTA-STS or a
        // verified chain and name, whatever the level would be.
        let requiretls_raised =
            envelope.requiretls && plan.dane.is_none() && plan.level != TlsLevel::Verify;
        if requiretls_raised {
            plan.level = TlsLevel::Verify;
            plan.peer_name = host.clone();
        }
        GroupPlan {
            plan,
            refusal,
            requiretls_raised,
        }
    }
}

/// What DANE makes of the plan: authenticate by the TLSA set, fall back to a
/// lower level, or refuse (the DANE state is unknown).
fn apply_dane(plan: &mut TlsPlan, state: &DaneState, host: &str) -> Option<Refusal> {
    match dane_plan(plan.level, state, host) {
        DanePlan::Authenticate(set) => {
            // SNI is the MX host as named. RFC 7672 8.1 asks for the TLSA base
            // domain, which differs only when TLSA came from a CNAME target; both
            // are reference names.
            plan.peer_name = host.to_string();
            plan.dane = Some(set);
            None
        }
        DanePlan::Fallback { level, why } => {
            tracing::debug!(relay = %host, level = level.name(), %why, "DANE level falls back");
            plan.level = level;
            None
        }
        // Not a policy decision when the DANE state is unknown (a failed lookup):
        // retried, never bounced.
        DanePlan::Defer {
            status: _,
            text,
            tls_policy,
        } => Some(Refusal {
            failure: Failure::Tls {
                problem: TlsProblem::DaneUnavailable,
                text,
                required_by: None,
            },
            by_policy: tls_policy,
        }),
    }
}

/// The rule behind a decision, as the config file names it.
fn rule_name(decision: &OutboundDecision) -> String {
    match decision.rule {
        Some(i) => format!("[[outbound_tls]] #{}", i + 1),
        None => "[outbound] default_tls".into(),
    }
}

impl GroupPlan {
    /// Whether a TLS failure under this plan is a policy's decision.
    fn by_policy(&self) -> bool {
        self.refusal
            .as_ref()
            .map_or(self.plan.mandatory(), |r| r.by_policy)
    }

    /// A TLS failure says who required the TLS: the domain's MTA-STS policy,
    /// REQUIRETLS, or the rule (when the level was mandatory).
    pub(super) fn attribute(
        &self,
        mut failure: Failure,
        decision: &OutboundDecision,
        domain: &str,
    ) -> Failure {
        let by_policy = self.by_policy();
        if let Failure::Tls {
            required_by, text, ..
        } = &mut failure
        {
            let rule = |rule: String, bounce: bool| TlsRule {
                rule,
                domain: domain.to_string(),
                bounce,
            };
            if self.plan.mta_sts {
                *required_by = Some(rule(
                    format!("the MTA-STS policy of {domain} (mode enforce)"),
                    false,
                ));
                if !text.contains("MTA-STS") {
                    *text = format!("MTA-STS policy of {domain} (mode enforce) not met: {text}");
                }
            } else if self.requiretls_raised {
                *required_by = Some(rule("REQUIRETLS, as the sender asked".into(), false));
                *text = format!("REQUIRETLS asks for authenticated TLS, not met: {text}");
            } else if by_policy {
                *required_by = Some(rule(
                    rule_name(decision),
                    decision.on_failure == OnTlsFailure::Bounce,
                ));
            }
        }
        failure
    }
}
