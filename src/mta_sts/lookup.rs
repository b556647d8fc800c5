//! The policy in force for a domain (RFC 8461 §5.1): the TXT record says which
//! version (`id`) is current; a cached policy with that id is used as is, another
//! id (or none cached) means a fetch. A failed fetch keeps the cached policy until
//! its max_age; with none cached the domain is treated as having no policy. The
//! cache lives in the shard's store (it survives restarts), and a policy past half
//! its max_age is refreshed in the background while the cached one stays in use.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::fetch::{fetch, policy_url};
use super::policy::{parse_txt, StsPolicy, StsTxt};
use crate::config::{Config, DnsConfig};
use crate::dns::Dns;
use crate::queue::AuxTree;
use crate::tls::ClientVerification;

/// One cached policy as stored (the text is parsed again when read, so a stored
/// value never outlives the parser's rules).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Cached {
    pub id: String,
    pub text: String,
    /// When it was fetched (ms since the epoch); it expires max_age later.
    pub fetched_ms: u64,
}

/// The policy used for a domain, and where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Active {
    pub id: String,
    pub policy: StsPolicy,
    pub fetched_ms: u64,
    /// Used from the cache (no fetch in this lookup).
    pub from_cache: bool,
}

impl Active {
    pub fn age_secs(&self, now_ms: u64) -> u64 {
        now_ms.saturating_sub(self.fetched_ms) / 1000
    }
}

/// Something about the domain's MTA-STS that went wrong (TLS-RPT result types
/// `sts-policy-fetch-error`, `sts-policy-invalid`, `sts-webpki-invalid`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub result_type: &'static str,
    pub text: String,
}

/// Everything one lookup learned, for delivery and for `policy explain`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StsView {
    pub domain: String,
    /// The `_mta-sts` TXT RRset as read, or why the lookup failed.
    pub txt: Result<StsTxt, String>,
    /// The policy in force, if any (mode `none` included).
    pub active: Option<Active>,
    pub problem: Option<Problem>,
}

/// A shard's MTA-STS state: its cache and how to fetch.
pub struct MtaSts {
    dns: Dns,
    store: Option<AuxTree>,
    memory: RefCell<HashMap<String, Cached>>,
    refreshing: RefCell<HashSet<String>>,
    port: u16,
    tls: Arc<rustls::ClientConfig>,
    /// Refresh in the background (a server shard); a one-shot CLI does not.
    background: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("MTA-STS: {0}")]
    Dns(String),
    #[error("MTA-STS: {0}")]
    Tls(#[from] crate::tls::TlsSetupError),
}

use crate::queue::clock::now_ms;

/// The HTTPS client config: system roots plus `mta_sts_ca_file`, HTTP/1.1.
pub fn https_config(ca_file: Option<PathBuf>) -> Result<Arc<rustls::ClientConfig>, SetupError> {
    let base = crate::tls::client_config(
        &ClientVerification::SystemAnd { ca_file },
        crate::config::TlsVersion::Tls12,
    )?;
    let mut c = (*base).clone();
    c.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(c))
}

/// Where policies are fetched from: `[outbound] mta_sts_port` and `mta_sts_ca_file`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StsSettings {
    pub port: u16,
    pub ca_file: Option<PathBuf>,
}

impl StsSettings {
    pub fn from_config(config: &Config) -> StsSettings {
        StsSettings {
            port: config.outbound.mta_sts_port,
            ca_file: config.outbound.mta_sts_ca_file.clone(),
        }
    }
}

impl MtaSts {
    /// `store` is the shard's aux tree for the cache; None keeps it in memory only.
    pub fn new(
        config: &Config,
        store: Option<AuxTree>,
        background: bool,
    ) -> Result<MtaSts, SetupError> {
        MtaSts::with(
            &config.dns,
            &StsSettings::from_config(config),
            store,
            background,
        )
    }

    pub fn with(
        dns: &DnsConfig,
        settings: &StsSettings,
        store: Option<AuxTree>,
        background: bool,
    ) -> Result<MtaSts, SetupError> {
        Ok(MtaSts {
            dns: Dns::new(dns).map_err(|e| SetupError::Dns(e.to_string()))?,
            store,
            memory: RefCell::default(),
            refreshing: RefCell::default(),
            port: settings.port,
            tls: https_config(settings.ca_file.clone())?,
            background,
        })
    }

    /// The cached policy of `domain`, unexpired at `now_ms`, parsed.
    fn cached(&self, domain: &str, now_ms: u64) -> Option<(Cached, StsPolicy)> {
        let c = match self.memory.borrow().get(domain).cloned() {
            Some(c) => Some(c),
            None => self.load(domain),
        }?;
        let policy = StsPolicy::parse(&c.text).ok()?;
        let expires = c
            .fetched_ms
            .saturating_add(policy.max_age.saturating_mul(1000));
        if now_ms >= expires {
            return None;
        }
        self.memory
            .borrow_mut()
            .insert(domain.to_string(), c.clone());
        Some((c, policy))
    }

    fn load(&self, domain: &str) -> Option<Cached> {
        let bytes = match self.store.as_ref()?.get(domain.as_bytes()) {
            Ok(b) => b?,
            Err(e) => {
                tracing::warn!(domain, error = %e, "cannot read the MTA-STS cache");
                return None;
            }
        };
        serde_json::from_slice(&bytes).ok()
    }

    fn keep(&self, domain: &str, c: Cached) {
        if let Some(store) = &self.store {
            let bytes = serde_json::to_vec(&c).expect("plain struct");
            if let Err(e) = store.insert(domain.as_bytes(), &bytes) {
                tracing::warn!(domain, error = %e, "cannot write the MTA-STS cache; kept in memory");
            }
        }
        self.memory.borrow_mut().insert(domain.to_string(), c);
    }

    /// Fetch and parse the policy now; on success it is cached under `id`.
    async fn fetch_policy(&self, domain: &str, id: &str) -> Result<Active, Problem> {
        let host = format!("mta-sts.{domain}");
        let addrs = self.dns.addresses(&host).await.map_err(|e| Problem {
            result_type: "sts-policy-fetch-error",
            text: format!("cannot resolve {host}: {}", e.text()),
        })?;
        let text = fetch(domain, &addrs, self.port, self.tls.clone())
            .await
            .map_err(|e| Problem {
                result_type: if e.webpki {
                    "sts-webpki-invalid"
                } else {
                    "sts-policy-fetch-error"
                },
                text: e.text,
            })?;
        let policy = StsPolicy::parse(&text).map_err(|e| Problem {
            result_type: "sts-policy-invalid",
            text: format!("{}: {e}", policy_url(domain, self.port)),
        })?;
        let fetched_ms = now_ms();
        tracing::info!(
            domain,
            id,
            mode = policy.mode.name(),
            max_age = policy.max_age,
            "MTA-STS policy fetched"
        );
        self.keep(
            domain,
            Cached {
                id: id.to_string(),
                text,
                fetched_ms,
            },
        );
        Ok(Active {
            id: id.to_string(),
            policy,
            fetched_ms,
            from_cache: false,
        })
    }

    /// The policy in force for `domain` now.
    pub async fn lookup(self: &Rc<Self>, domain: &str) -> StsView {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        let txt = self
            .dns
            .txt(&format!("_mta-sts.{domain}"))
            .await
            .map(|records| parse_txt(&records));
        let now = now_ms();
        let cached = self.cached(&domain, now);
        let mut view = StsView {
            domain: domain.clone(),
            txt: txt.clone(),
            active: None,
            problem: None,
        };
        let from_cache = |c: &Cached, p: &StsPolicy| Active {
            id: c.id.clone(),
            policy: p.clone(),
            fetched_ms: c.fetched_ms,
            from_cache: true,
        };
        match (&txt, cached) {
            (Ok(StsTxt::Id(id)), Some((c, p))) if *id == c.id => {
                // Same version: keep it, refreshing it once it is half-way to
                // expiry so it never lapses while the domain still publishes it.
                if now.saturating_sub(c.fetched_ms) > p.max_age * 500 {
                    self.refresh(&domain, id);
                }
                view.active = Some(from_cache(&c, &p));
            }
            (Ok(StsTxt::Id(id)), cached) => match self.fetch_policy(&domain, id).await {
                Ok(a) => view.active = Some(a),
                Err(problem) => {
                    tracing::warn!(domain = %domain, error = %problem.text, kept_cached = cached.is_some(), "MTA-STS policy fetch failed");
                    view.active = cached.map(|(c, p)| from_cache(&c, &p));
                    view.problem = Some(problem);
                }
            },
            (Ok(StsTxt::Invalid(why)), cached) => {
                view.problem = Some(Problem {
                    result_type: "sts-policy-invalid",
                    text: format!("_mta-sts.{domain}: {why}"),
                });
                view.active = cached.map(|(c, p)| from_cache(&c, &p));
            }
            // No record now, or no answer: a policy cached earlier holds until its
            // max_age (§5.1; a domain withdraws one by publishing mode none).
            (_, cached) => view.active = cached.map(|(c, p)| from_cache(&c, &p)),
        }
        view
    }

    /// Fetch `domain`'s policy again without holding up the caller.
    fn refresh(self: &Rc<Self>, domain: &str, id: &str) {
        if !self.background || !self.refreshing.borrow_mut().insert(domain.to_string()) {
            return;
        }
        let (me, domain, id) = (self.clone(), domain.to_string(), id.to_string());
        tokio::task::spawn_local(async move {
            if let Err(p) = me.fetch_policy(&domain, &id).await {
                tracing::warn!(domain = %domain, error = %p.text, "MTA-STS policy refresh failed; the cached policy stays in force until it expires");
            }
            me.refreshing.borrow_mut().remove(&domain);
        });
    }
}
