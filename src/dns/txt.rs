//! TXT lookups (the `_mta-sts` and `_smtp._tls` records): each record's strings
//! joined, as RFC 8461 §3.1 and RFC 8460 §3 read them. NXDOMAIN and NODATA are
//! an empty set; anything else that failed is an error (temporary).

use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{RData, RecordType};

use super::{classify, Dns, Lookup};

fn joined(t: &hickory_resolver::proto::rr::rdata::TXT) -> String {
    t.txt_data()
        .iter()
        .map(|s| String::from_utf8_lossy(s))
        .collect::<Vec<_>>()
        .concat()
}

impl Dns {
    /// The TXT records at `name`.
    pub async fn txt(&self, name: &str) -> Result<Vec<String>, String> {
        let name = name.trim_end_matches('.');
        if let Some(stub) = &self.stub {
            let a = stub
                .query(name, RecordType::TXT)
                .await
                .map_err(|e| format!("TXT lookup of {name} failed: {e}"))?;
            if a.rcode == ResponseCode::NXDomain {
                return Ok(vec![]);
            }
            return Ok(a
                .records
                .iter()
                .filter_map(|r| match r {
                    RData::TXT(t) => Some(joined(t)),
                    _ => None,
                })
                .collect());
        }
        match self.resolver.txt_lookup(format!("{name}.")).await {
            Ok(answer) => Ok(answer.iter().map(joined).collect()),
            Err(e) => match classify(&e) {
                Lookup::NoSuchDomain | Lookup::NoRecords => Ok(vec![]),
                Lookup::Failed(text) => Err(format!("TXT lookup of {name} failed: {text}")),
            },
        }
    }
}
