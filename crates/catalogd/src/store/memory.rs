//! In-memory [`ManifestStore`] with injectable faults, for tests.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use async_trait::async_trait;
use bytes::Bytes;
use manifest_codec::layout::{version_from_key, versions_prefix};
use manifest_codec::{name_from_manifest_key, DatasetName, ObjectKey, Record};

use super::{
    CatalogFile, ListedManifest, Listing, ManifestStore, Slot, StoreError, StoredRecord,
    WriteCondition,
};

/// A fault the next head put suffers (version puts take no faults).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Fails before writing ([`StoreError::Unavailable`]).
    Fail,
    /// Writes, then reports an unknown outcome (a response lost after the write).
    UnknownWritten,
    /// Does not write, and reports an unknown outcome (a timeout before the write).
    UnknownNotWritten,
    /// Another writer stores a new version of the same manifest first, so the put's
    /// condition fails with a 412 (a phantom writer).
    PhantomWriter,
}

/// Records stored as encoded Parquet bytes by object key, as storaged would hold them.
#[derive(Debug, Default)]
pub struct MemoryStore {
    objects: Mutex<HashMap<String, (Bytes, String)>>,
    faults: Mutex<VecDeque<Fault>>,
    hanging: Mutex<HashSet<DatasetName>>,
    next_etag: AtomicU64,
    puts: AtomicU64,
    gets: AtomicU64,
}

impl MemoryStore {
    /// An empty store with no faults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Queues `fault` for a coming put (faults apply in order, one per put).
    pub fn inject(&self, fault: Fault) {
        self.faults
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push_back(fault);
    }

    /// Makes every put of `name` hang forever (a frozen storaged).
    pub fn hang(&self, name: &DatasetName) {
        self.hanging
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.clone());
    }

    /// Stores raw bytes as `name`'s head (to plant a corrupt one).
    pub fn insert_raw(&self, name: &DatasetName, bytes: impl Into<Bytes>) {
        let etag = self.etag();
        self.objects
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(Slot::Head.key(name).to_string(), (bytes.into(), etag));
    }

    /// Stores a data object (what a producer uploads), for `verify`.
    pub fn insert_object(&self, key: &str, bytes: impl Into<Bytes>) {
        let etag = self.etag();
        self.objects
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key.to_owned(), (bytes.into(), etag));
    }

    /// Number of stored heads.
    pub fn len(&self) -> usize {
        self.objects
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .filter(|k| name_from_manifest_key(k).is_some())
            .count()
    }

    /// True when no manifest is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Reads (manifests and the checkpoint) so far.
    pub fn gets(&self) -> u64 {
        self.gets.load(Ordering::SeqCst)
    }

    /// The stored checkpoint, if any.
    pub fn checkpoint(&self) -> Option<Bytes> {
        self.bytes(CatalogFile::Checkpoint.key())
    }

    fn bytes(&self, key: &str) -> Option<Bytes> {
        self.objects
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .map(|(b, _)| b.clone())
    }

    /// Puts attempted so far.
    pub fn puts(&self) -> u64 {
        self.puts.load(Ordering::SeqCst)
    }

    fn etag(&self) -> String {
        format!("\"{}\"", self.next_etag.fetch_add(1, Ordering::SeqCst))
    }

    fn write(
        &self,
        record: &Record,
        slot: Slot,
        condition: &WriteCondition,
    ) -> Result<String, StoreError> {
        let bytes = manifest_codec::encode_record(record).map_err(StoreError::Encode)?;
        let key = slot.key(&record.manifest.name).to_string();
        let mut objects = self.objects.lock().unwrap_or_else(PoisonError::into_inner);
        let current = objects.get(&key).map(|(_, etag)| etag.as_str());
        let holds = match (condition, current) {
            (WriteCondition::Absent, None) => true,
            (WriteCondition::Matches(want), Some(have)) => want == have,
            _ => false,
        };
        if !holds {
            return Err(StoreError::PreconditionFailed);
        }
        let etag = self.etag();
        objects.insert(key, (bytes, etag.clone()));
        Ok(etag)
    }
}

#[async_trait(?Send)]
impl ManifestStore for MemoryStore {
    async fn get(
        &self,
        name: &DatasetName,
        slot: Slot,
    ) -> Result<Option<StoredRecord>, StoreError> {
        self.gets.fetch_add(1, Ordering::SeqCst);
        let key = slot.key(name);
        let stored = self
            .objects
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key.as_str())
            .cloned();
        let Some((bytes, etag)) = stored else {
            return Ok(None);
        };
        let record =
            manifest_codec::decode_record(&bytes).map_err(|source| StoreError::Corrupt {
                key: key.to_string(),
                source,
            })?;
        super::check_slot(&key, name, slot, &record)?;
        Ok(Some(StoredRecord { record, etag }))
    }

    async fn put(
        &self,
        record: &Record,
        slot: Slot,
        condition: WriteCondition,
    ) -> Result<String, StoreError> {
        self.puts.fetch_add(1, Ordering::SeqCst);
        let hangs = self
            .hanging
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&record.manifest.name);
        if hangs {
            std::future::pending::<()>().await;
        }
        // Yield so concurrent callers interleave as they would over a network.
        tokio::task::yield_now().await;
        if slot != Slot::Head {
            return self.write(record, slot, &condition);
        }
        let fault = self
            .faults
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop_front();
        match fault {
            None => self.write(record, slot, &condition),
            Some(Fault::Fail) => Err(StoreError::Unavailable("injected failure".into())),
            Some(Fault::UnknownNotWritten) => Err(StoreError::Unknown("injected timeout".into())),
            Some(Fault::UnknownWritten) => {
                self.write(record, slot, &condition)?;
                Err(StoreError::Unknown("injected lost response".into()))
            }
            Some(Fault::PhantomWriter) => {
                let key = slot.key(&record.manifest.name).to_string();
                let mut phantom = record.clone();
                phantom.manifest.objects.clear();
                phantom.changes.clear();
                let mut objects = self.objects.lock().unwrap_or_else(PoisonError::into_inner);
                if let Some(current) = objects.get(&key).map(|(b, _)| b.clone()) {
                    // The phantom advances the stored version by one.
                    if let Ok(mut stored) = manifest_codec::decode_record(&current) {
                        stored.manifest.version += 1;
                        stored.changes.clear();
                        phantom = stored;
                    }
                }
                let bytes = manifest_codec::encode_record(&phantom).map_err(StoreError::Encode)?;
                let etag = self.etag();
                objects.insert(key, (bytes, etag));
                Err(StoreError::PreconditionFailed)
            }
        }
    }

    async fn delete(
        &self,
        name: &DatasetName,
        slot: Slot,
        etag: Option<&str>,
    ) -> Result<(), StoreError> {
        tokio::task::yield_now().await;
        let key = slot.key(name).to_string();
        let mut objects = self.objects.lock().unwrap_or_else(PoisonError::into_inner);
        match (objects.get(&key), etag) {
            (Some((_, current)), Some(etag)) if current != etag => {
                Err(StoreError::PreconditionFailed)
            }
            _ => {
                objects.remove(&key);
                Ok(())
            }
        }
    }

    async fn list(&self) -> Result<Listing, StoreError> {
        let mut listed: Vec<ListedManifest> = self
            .objects
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter_map(|(key, (_, etag))| {
                name_from_manifest_key(key).map(|name| ListedManifest {
                    name,
                    etag: etag.clone(),
                })
            })
            .collect();
        listed.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Listing {
            manifests: listed,
            foreign: Vec::new(),
        })
    }

    async fn list_versions(&self, name: &DatasetName) -> Result<Vec<i64>, StoreError> {
        let prefix = versions_prefix(name);
        let mut versions: Vec<i64> = self
            .objects
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .filter(|k| k.starts_with(&prefix))
            .filter_map(|k| version_from_key(name, k))
            .collect();
        versions.sort_unstable();
        Ok(versions)
    }

    async fn get_file(&self, file: CatalogFile) -> Result<Option<Bytes>, StoreError> {
        self.gets.fetch_add(1, Ordering::SeqCst);
        Ok(self.bytes(file.key()))
    }

    async fn put_file(&self, file: CatalogFile, bytes: Bytes) -> Result<(), StoreError> {
        let etag = self.etag();
        self.objects
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(file.key().to_owned(), (bytes, etag));
        Ok(())
    }

    async fn object_size(&self, key: &ObjectKey) -> Result<Option<u64>, StoreError> {
        Ok(self
            .objects
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key.as_str())
            .map(|(bytes, _)| bytes.len() as u64))
    }
}
