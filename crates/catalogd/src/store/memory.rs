//! In-memory [`ManifestStore`] with injectable faults, for tests.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use async_trait::async_trait;
use bytes::Bytes;
use manifest_codec::{DatasetName, Manifest};

use super::{ListedManifest, Listing, ManifestStore, StoreError, StoredManifest, WriteCondition};

/// A fault the next put suffers.
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

/// Manifests stored as encoded Parquet bytes, as storaged would hold them.
#[derive(Debug, Default)]
pub struct MemoryStore {
    objects: Mutex<HashMap<DatasetName, (Bytes, String)>>,
    faults: Mutex<VecDeque<Fault>>,
    hanging: Mutex<HashSet<DatasetName>>,
    next_etag: AtomicU64,
    puts: AtomicU64,
    gets: AtomicU64,
    checkpoint: Mutex<Option<Bytes>>,
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

    /// Stores raw bytes as `name`'s manifest (to plant a corrupt one).
    pub fn insert_raw(&self, name: &DatasetName, bytes: impl Into<Bytes>) {
        let etag = self.etag();
        self.objects
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.clone(), (bytes.into(), etag));
    }

    /// Number of stored manifest objects.
    pub fn len(&self) -> usize {
        self.objects
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
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
        self.checkpoint
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Puts attempted so far.
    pub fn puts(&self) -> u64 {
        self.puts.load(Ordering::SeqCst)
    }

    fn etag(&self) -> String {
        format!("\"{}\"", self.next_etag.fetch_add(1, Ordering::SeqCst))
    }

    fn write(&self, manifest: &Manifest, condition: &WriteCondition) -> Result<String, StoreError> {
        let bytes = manifest_codec::encode(manifest).map_err(StoreError::Encode)?;
        let mut objects = self.objects.lock().unwrap_or_else(PoisonError::into_inner);
        let current = objects.get(&manifest.name).map(|(_, etag)| etag.as_str());
        let holds = match (condition, current) {
            (WriteCondition::Absent, None) => true,
            (WriteCondition::Matches(want), Some(have)) => want == have,
            _ => false,
        };
        if !holds {
            return Err(StoreError::PreconditionFailed);
        }
        let etag = self.etag();
        objects.insert(manifest.name.clone(), (bytes, etag.clone()));
        Ok(etag)
    }
}

#[async_trait(?Send)]
impl ManifestStore for MemoryStore {
    async fn get(&self, name: &DatasetName) -> Result<Option<StoredManifest>, StoreError> {
        self.gets.fetch_add(1, Ordering::SeqCst);
        let stored = self
            .objects
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .cloned();
        stored
            .map(|(bytes, etag)| {
                let manifest =
                    manifest_codec::decode(&bytes).map_err(|source| StoreError::Corrupt {
                        key: manifest_codec::manifest_key(name).to_string(),
                        source,
                    })?;
                Ok(StoredManifest { manifest, etag })
            })
            .transpose()
    }

    async fn put(
        &self,
        manifest: &Manifest,
        condition: WriteCondition,
    ) -> Result<String, StoreError> {
        self.puts.fetch_add(1, Ordering::SeqCst);
        let hangs = self
            .hanging
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&manifest.name);
        if hangs {
            std::future::pending::<()>().await;
        }
        // Yield so concurrent callers interleave as they would over a network.
        tokio::task::yield_now().await;
        let fault = self
            .faults
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop_front();
        match fault {
            None => self.write(manifest, &condition),
            Some(Fault::Fail) => Err(StoreError::Unavailable("injected failure".into())),
            Some(Fault::UnknownNotWritten) => Err(StoreError::Unknown("injected timeout".into())),
            Some(Fault::UnknownWritten) => {
                self.write(manifest, &condition)?;
                Err(StoreError::Unknown("injected lost response".into()))
            }
            Some(Fault::PhantomWriter) => {
                let mut phantom = manifest.clone();
                phantom.objects.clear();
                let mut objects = self.objects.lock().unwrap_or_else(PoisonError::into_inner);
                if let Some(current) = objects.get(&manifest.name).map(|(b, _)| b.clone()) {
                    // The phantom advances the stored version by one.
                    if let Ok(mut stored) = manifest_codec::decode(&current) {
                        stored.version += 1;
                        phantom = stored;
                    }
                }
                let bytes = manifest_codec::encode(&phantom).map_err(StoreError::Encode)?;
                let etag = self.etag();
                objects.insert(manifest.name.clone(), (bytes, etag));
                Err(StoreError::PreconditionFailed)
            }
        }
    }

    async fn list(&self) -> Result<Listing, StoreError> {
        let mut listed: Vec<ListedManifest> = self
            .objects
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(name, (_, etag))| ListedManifest {
                name: name.clone(),
                etag: etag.clone(),
            })
            .collect();
        listed.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Listing {
            manifests: listed,
            foreign: Vec::new(),
        })
    }

    async fn get_checkpoint(&self) -> Result<Option<Bytes>, StoreError> {
        self.gets.fetch_add(1, Ordering::SeqCst);
        Ok(self
            .checkpoint
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone())
    }

    async fn put_checkpoint(&self, bytes: Bytes) -> Result<(), StoreError> {
        *self
            .checkpoint
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(bytes);
        Ok(())
    }

    async fn delete(&self, name: &DatasetName, etag: &str) -> Result<(), StoreError> {
        tokio::task::yield_now().await;
        let mut objects = self.objects.lock().unwrap_or_else(PoisonError::into_inner);
        match objects.get(name) {
            Some((_, current)) if current == etag => {
                objects.remove(name);
                Ok(())
            }
            Some(_) => Err(StoreError::PreconditionFailed),
            None => Ok(()),
        }
    }
}
