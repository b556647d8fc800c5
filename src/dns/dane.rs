//! The DANE lookups of one MX host (RFC 7672 2.2): its TLSA records with their
//! DNSSEC status, and what they mean given the MX and address answers.

use hickory_resolver::proto::rr::{RData, RecordType};

use super::{Addresses, Dns};
use crate::dane::{DaneSet, DaneState, Tlsa};

impl Dns {
    /// The TLSA records at `_port._tcp.name` and whether they validated; none for
    /// NXDOMAIN or NODATA.
    pub async fn tlsa(&self, name: &str, port: u16) -> Result<(Vec<Tlsa>, bool), String> {
        let owner = format!("_{port}._tcp.{}", name.trim_end_matches('.'));
        let Some(stub) = &self.stub else {
            return Ok((vec![], false));
        };
        let a = stub
            .query(&owner, RecordType::TLSA)
            .await
            .map_err(|e| format!("TLSA lookup of {owner} failed: {e}"))?;
        let records = a
            .records
            .iter()
            .filter_map(|r| match r {
                RData::TLSA(t) => Some(Tlsa::new(
                    t.cert_usage().into(),
                    t.selector().into(),
                    t.matching().into(),
                    t.cert_data().to_vec(),
                )),
                _ => None,
            })
            .collect();
        Ok((records, a.secure))
    }

    /// What DNS says about DANE for `host` (RFC 7672 2.2): it applies only when the
    /// MX RRset and the host's addresses validated; then the TLSA records at the
    /// CNAME target (when there is one and it has secure records), else at the
    /// host as named in the MX record.
    pub async fn dane_state(
        &self,
        mx_secure: bool,
        host: &str,
        addrs: &Addresses,
        port: u16,
    ) -> DaneState {
        if self.stub.is_none() {
            return DaneState::NotApplicable("[dns] dnssec is off".into());
        }
        if !mx_secure {
            return DaneState::NotApplicable(format!(
                "the MX records pointing to {host} are not DNSSEC-validated"
            ));
        }
        if !addrs.secure {
            return DaneState::NotApplicable(format!(
                "the address records of {host} are not DNSSEC-validated"
            ));
        }
        let mut bases = Vec::new();
        if let Some(target) = &addrs.cname_target {
            bases.push(target.clone());
        }
        bases.push(host.to_string());
        let mut why = String::new();
        for base in &bases {
            let (records, secure) = match self.tlsa(base, port).await {
                Ok(x) => x,
                Err(e) => return DaneState::Failed(e),
            };
            if records.is_empty() {
                why = format!("no TLSA records at _{port}._tcp.{base}");
                continue;
            }
            if !secure {
                why = format!("the TLSA records at _{port}._tcp.{base} are not DNSSEC-validated");
                continue;
            }
            let usable: Vec<Tlsa> = records.iter().filter(|r| r.usable()).cloned().collect();
            if usable.is_empty() {
                return DaneState::Unusable {
                    base: base.clone(),
                    records,
                };
            }
            let mut names = vec![host.to_string()];
            if base != host {
                names.push(base.clone());
            }
            return DaneState::Usable(DaneSet {
                base: base.clone(),
                names,
                records: usable,
            });
        }
        DaneState::NotApplicable(why)
    }
}
