//! Small keyed state that belongs to a shard and must survive a restart, beside
//! its queue slice: the MTA-STS policy cache, TLS report counters. Each user
//! names its own tree (`shard{N}/aux/{name}`); values are opaque bytes, so no
//! caller sees sled. Writes become durable with the slice's next group commit.

use std::sync::Arc;

use super::store::Shared;
use super::{QueueView, StoreError};

/// A key and its value, as `scan` returns them.
pub type AuxEntry = (Vec<u8>, Vec<u8>);

/// One named tree of a shard's auxiliary state.
#[derive(Clone)]
pub struct AuxTree {
    shared: Arc<Shared>,
    tree: String,
}

impl QueueView {
    /// The shard's aux tree `name` (created on first use).
    pub fn aux(&self, name: &str) -> Result<AuxTree, StoreError> {
        let (slice, shared) = self.slice_name();
        let t = AuxTree {
            shared: shared.clone(),
            tree: format!("{slice}/aux/{name}"),
        };
        // Opened once here so a spool that can't hold it fails early, not at use.
        t.shared.run(|db| db.open_tree(&t.tree).map(|_| ()))?;
        Ok(t)
    }
}

impl AuxTree {
    fn tree(&self) -> Result<sled::Tree, StoreError> {
        self.shared.run(|db| db.open_tree(&self.tree))
    }

    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let t = self.tree()?;
        let v = t.get(key).map_err(|e| self.shared.failed(e))?;
        Ok(v.map(|v| v.to_vec()))
    }

    pub fn insert(&self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        let t = self.tree()?;
        t.insert(key, value).map_err(|e| self.shared.failed(e))?;
        Ok(())
    }

    pub fn remove(&self, key: &[u8]) -> Result<(), StoreError> {
        let t = self.tree()?;
        t.remove(key).map_err(|e| self.shared.failed(e))?;
        Ok(())
    }

    /// Every (key, value) whose key starts with `prefix`, in key order.
    pub fn scan(&self, prefix: &[u8]) -> Result<Vec<AuxEntry>, StoreError> {
        let t = self.tree()?;
        let mut out = Vec::new();
        for kv in t.scan_prefix(prefix) {
            let (k, v) = kv.map_err(|e| self.shared.failed(e))?;
            out.push((k.to_vec(), v.to_vec()));
        }
        Ok(out)
    }
}
