//! Session counts per (report period, policy domain, policy), kept in the shard's
//! aux tree `tls-rpt` so a restart loses none. Keys sort by period first, so the
//! periods that ended are a prefix scan away.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::queue::{AuxTree, StoreError};

/// One failed-session line of a report (RFC 8460 4.3 failure-details).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureCount {
    pub result_type: String,
    pub receiving_mx_hostname: String,
    pub receiving_ip: Option<IpAddr>,
    pub count: u64,
    pub additional_information: Option<String>,
}

/// The counts of one policy of one domain in one period.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeriodCounts {
    pub period_start_ms: u64,
    pub period_end_ms: u64,
    pub policy_domain: String,
    /// `tlsa`, `sts` or `no-policy-found`.
    pub policy_type: String,
    pub policy_string: Vec<String>,
    pub mx_host: Vec<String>,
    pub success: u64,
    pub failures: Vec<FailureCount>,
}

impl PeriodCounts {
    pub fn failure_total(&self) -> u64 {
        self.failures.iter().map(|f| f.count).sum()
    }
}

/// What one session did, as delivery saw it.
#[derive(Clone, Debug)]
pub struct SessionRecord<'a> {
    pub policy_domain: &'a str,
    pub policy_type: &'static str,
    pub policy_string: Vec<String>,
    pub mx_host: &'a str,
    pub ip: Option<IpAddr>,
    /// None: the session succeeded. Some((result type, detail)).
    pub failure: Option<(&'static str, String)>,
}

/// Every count in a shard's `tls-rpt` tree, sent or not yet (the admin API's view).
pub fn read(store: &AuxTree) -> Result<Vec<PeriodCounts>, StoreError> {
    Ok(store
        .scan(b"")?
        .into_iter()
        .filter_map(|(_, v)| serde_json::from_slice(&v).ok())
        .collect())
}

/// The aux tree the counts live in.
pub const TREE: &str = "tls-rpt";

pub struct Counters {
    store: AuxTree,
    interval_ms: u64,
}

impl Counters {
    pub fn new(store: AuxTree, interval: std::time::Duration) -> Counters {
        Counters {
            store,
            interval_ms: (interval.as_millis() as u64).max(1),
        }
    }

    /// The start of the period `now_ms` falls in (UTC days with the default).
    pub fn period_start(&self, now_ms: u64) -> u64 {
        now_ms - now_ms % self.interval_ms
    }

    fn key(period: u64, domain: &str, policy_type: &str) -> Vec<u8> {
        format!("{period:020}/{domain}/{policy_type}").into_bytes()
    }

    /// Add one session at `now_ms`.
    pub fn record(&self, now_ms: u64, s: &SessionRecord) -> Result<(), StoreError> {
        let start = self.period_start(now_ms);
        let domain = s.policy_domain.to_ascii_lowercase();
        let key = Self::key(start, &domain, s.policy_type);
        let mut c: PeriodCounts = match self.store.get(&key)? {
            Some(bytes) => serde_json::from_slice(&bytes).unwrap_or_default(),
            None => PeriodCounts::default(),
        };
        c.period_start_ms = start;
        c.period_end_ms = start + self.interval_ms;
        c.policy_domain = domain;
        c.policy_type = s.policy_type.to_string();
        if !s.policy_string.is_empty() {
            c.policy_string = s.policy_string.clone();
        }
        if !c.mx_host.iter().any(|h| h == s.mx_host) && !s.mx_host.is_empty() {
            c.mx_host.push(s.mx_host.to_string());
        }
        match &s.failure {
            None => c.success += 1,
            Some((result_type, detail)) => {
                let same = c.failures.iter_mut().find(|f| {
                    f.result_type == *result_type
                        && f.receiving_mx_hostname == s.mx_host
                        && f.receiving_ip == s.ip
                });
                match same {
                    Some(f) => {
                        f.count += 1;
                        f.additional_information = Some(detail.clone());
                    }
                    None => c.failures.push(FailureCount {
                        result_type: result_type.to_string(),
                        receiving_mx_hostname: s.mx_host.to_string(),
                        receiving_ip: s.ip,
                        count: 1,
                        additional_information: Some(detail.clone()),
                    }),
                }
            }
        }
        let bytes = serde_json::to_vec(&c).expect("plain struct");
        self.store.insert(&key, &bytes)
    }

    /// Every stored count, oldest period first (with its key, for `remove`).
    pub fn all(&self) -> Result<Vec<(Vec<u8>, PeriodCounts)>, StoreError> {
        Ok(self
            .store
            .scan(b"")?
            .into_iter()
            .filter_map(|(k, v)| Some((k, serde_json::from_slice(&v).ok()?)))
            .collect())
    }

    /// Counts of periods that ended before `now_ms`.
    pub fn finished(&self, now_ms: u64) -> Result<Vec<(Vec<u8>, PeriodCounts)>, StoreError> {
        let current = self.period_start(now_ms);
        Ok(self
            .all()?
            .into_iter()
            .filter(|(_, c)| c.period_start_ms < current)
            .collect())
    }

    pub fn remove(&self, key: &[u8]) -> Result<(), StoreError> {
        self.store.remove(key)
    }
}
