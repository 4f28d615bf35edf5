//! The catalog: an in-memory index of manifests, kept in step with the store by the
//! register contract (design §3, "ADR-020").
//!
//! - **One writer per name**: lookup, fingerprint check, write and publish for one name run
//!   under that name's lock; different names never wait for each other.
//! - **Persist, then publish**: a candidate manifest is written with `If-None-Match: *`
//!   (create) or `If-Match: <etag>` (update); only after the store acknowledged it does the
//!   index change. A failed write leaves memory exactly as it was.
//! - **Unknown outcomes**: when the store may or may not have written, the name is marked
//!   stale and re-read from the store before the next write trusts memory.
//! - **No aliasing**: readers get `Arc<Manifest>` snapshots that nothing mutates.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::ops::Bound;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use keylock::KeyLocks;
use manifest_codec::{
    dataset_id, CheckpointEntry, DatasetName, Manifest, ObjectRef, SchemaFingerprint, Timestamp,
};
use uuid::Uuid;

use crate::store::{ManifestStore, StoreError, StoredManifest, WriteCondition};

#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod tests;

/// Manifests fetched at once during rehydration.
const REHYDRATE_PARALLELISM: usize = 32;

/// How often a write is retried after losing a race (412) before giving up with 503.
const MAX_ATTEMPTS: u32 = 32;

/// A short, jittered pause after losing a race to another catalogd process, so that the
/// winner (which needs no re-read) cannot starve the loser forever.
async fn back_off(attempt: u32) {
    let jitter = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() % 2_000);
    let micros = 500 * u64::from(attempt.min(20)) + u64::from(jitter);
    tokio::time::sleep(std::time::Duration::from_micros(micros)).await;
}

/// The source of "now"; a seam so tests can move time backwards.
pub trait Clock: fmt::Debug + Send + Sync {
    /// The current time.
    fn now(&self) -> Timestamp;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A register call, already parsed into valid newtypes.
#[derive(Debug, Clone)]
pub struct RegisterRequest {
    /// The dataset's name.
    pub name: DatasetName,
    /// Fixed at creation; another one is a conflict.
    pub schema_fingerprint: SchemaFingerprint,
    /// The data objects; replaces the previous list.
    pub objects: Vec<ObjectRef>,
    /// Optional row count.
    pub row_count: Option<i64>,
}

impl RegisterRequest {
    /// Checks the rules the newtypes cannot: no object in the reserved `_catalog/` prefix,
    /// no key twice, no negative size or row count.
    pub fn validate(&self) -> Result<(), CatalogError> {
        let mut seen = HashSet::with_capacity(self.objects.len());
        for (i, object) in self.objects.iter().enumerate() {
            if object.key.is_catalog_reserved() {
                return Err(CatalogError::Invalid(format!(
                    "objects[{i}].key {:?} is in the reserved _catalog/ prefix",
                    object.key.as_str()
                )));
            }
            if object.size < 0 {
                return Err(CatalogError::Invalid(format!(
                    "objects[{i}].size is negative"
                )));
            }
            if !seen.insert(object.key.as_str()) {
                return Err(CatalogError::Invalid(format!(
                    "objects[{i}].key {:?} appears more than once",
                    object.key.as_str()
                )));
            }
        }
        if self.row_count.is_some_and(|r| r < 0) {
            return Err(CatalogError::Invalid("row_count is negative".into()));
        }
        Ok(())
    }
}

/// What a rebuild of the index loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rehydrated {
    /// Datasets in the rebuilt index.
    pub datasets: usize,
    /// Manifests fetched one by one (not current in the checkpoint).
    pub fetched: usize,
}

/// The result of a successful register.
#[derive(Debug, Clone)]
pub struct Registered {
    /// True when the dataset existed before (an update, HTTP 200).
    pub existing: bool,
    /// The manifest now stored and published.
    pub manifest: Arc<Manifest>,
}

/// Why a catalog operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The request breaks a rule; nothing changed.
    #[error("{0}")]
    Invalid(String),
    /// The name exists with another schema fingerprint; nothing changed.
    #[error("dataset {name} exists with schema fingerprint {existing:?}, not {requested:?}")]
    FingerprintConflict {
        name: String,
        existing: String,
        requested: String,
    },
    /// No dataset of that name.
    #[error("no dataset named {name}")]
    NotFound { name: String },
    /// No dataset has that id.
    #[error("no dataset with id {id}")]
    IdNotFound { id: Uuid },
    /// The store failed or its outcome is unknown; memory is unchanged.
    #[error("storage unavailable")]
    Storage(#[source] StoreError),
}

#[derive(Debug, Clone)]
struct Entry {
    manifest: Arc<Manifest>,
    etag: String,
}

impl From<StoredManifest> for Entry {
    fn from(stored: StoredManifest) -> Self {
        Self {
            manifest: Arc::new(stored.manifest),
            etag: stored.etag,
        }
    }
}

/// The published manifests, by name (sorted, for listing) and by id.
#[derive(Debug, Default)]
struct Index {
    by_name: BTreeMap<DatasetName, Entry>,
    by_id: HashMap<Uuid, DatasetName>,
}

impl Index {
    fn insert(&mut self, name: &DatasetName, entry: Entry) {
        self.by_id.insert(entry.manifest.dataset_id, name.clone());
        self.by_name.insert(name.clone(), entry);
    }

    fn remove(&mut self, name: &DatasetName) {
        if let Some(entry) = self.by_name.remove(name) {
            self.by_id.remove(&entry.manifest.dataset_id);
        }
    }
}

/// One page of [`Catalog::list`].
#[derive(Debug, Clone)]
pub struct Page {
    /// Manifests sorted by name.
    pub datasets: Vec<Arc<Manifest>>,
    /// True when more names match after the last one returned.
    pub has_more: bool,
}

/// What every handle of one catalog shares: the index, the per-name writer locks, the
/// names whose stored state is unknown, and the clock.
#[derive(Debug)]
struct Shared {
    index: RwLock<Index>,
    changes: AtomicU64,
    /// The change count the stored checkpoint reflects (`None`: stale or unknown); held
    /// while a checkpoint is written, so writers take turns.
    checkpointed: tokio::sync::Mutex<Option<u64>>,
    stale: Mutex<HashSet<DatasetName>>,
    writers: KeyLocks<DatasetName>,
    clock: Arc<dyn Clock>,
    /// A deliberately broken register for the state-machine test to catch.
    #[cfg(test)]
    publish_before_persist: bool,
}

/// The part of a catalog that is shared between threads; [`CatalogState::attach`] gives
/// a worker its own [`Catalog`] handle over its own store client.
#[derive(Debug, Clone)]
pub struct CatalogState(Arc<Shared>);

impl CatalogState {
    /// A handle on this catalog writing through `store`.
    pub fn attach(&self, store: Rc<dyn ManifestStore>) -> Catalog {
        Catalog {
            shared: self.0.clone(),
            store,
        }
    }
}

/// A handle on the dataset catalog.
///
/// The state is shared by every handle of one catalog (one per process); the store is per
/// handle, because the storaged client is not `Send` and lives on one worker thread. Get a
/// handle for another worker with [`Catalog::with_store`].
#[derive(Debug, Clone)]
pub struct Catalog {
    shared: Arc<Shared>,
    store: Rc<dyn ManifestStore>,
}

impl Catalog {
    /// An empty catalog over `store`.
    pub fn new(store: Rc<dyn ManifestStore>, clock: Arc<dyn Clock>) -> Self {
        Self {
            shared: Arc::new(Shared {
                index: RwLock::default(),
                changes: AtomicU64::new(0),
                checkpointed: tokio::sync::Mutex::new(None),
                stale: Mutex::default(),
                writers: KeyLocks::default(),
                clock,
                #[cfg(test)]
                publish_before_persist: false,
            }),
            store,
        }
    }

    /// The same catalog with the broken "publish before persist" register, for tests.
    #[cfg(test)]
    fn broken_publish_before_persist(store: Rc<dyn ManifestStore>) -> Self {
        let mut catalog = Self::new(store, Arc::new(SystemClock));
        Arc::get_mut(&mut catalog.shared)
            .expect("fresh catalog")
            .publish_before_persist = true;
        catalog
    }

    /// Another handle on the same catalog, writing through `store`.
    #[must_use]
    pub fn with_store(&self, store: Rc<dyn ManifestStore>) -> Self {
        Self {
            shared: self.shared.clone(),
            store,
        }
    }

    /// The thread-safe shared state, to attach other workers' handles to.
    pub fn state(&self) -> CatalogState {
        CatalogState(self.shared.clone())
    }

    /// The published manifest of `name`.
    pub fn get(&self, name: &DatasetName) -> Option<Arc<Manifest>> {
        self.read_index()
            .by_name
            .get(name)
            .map(|e| e.manifest.clone())
    }

    /// The published manifest whose `dataset_id` is `id`.
    pub fn get_by_id(&self, id: &Uuid) -> Option<Arc<Manifest>> {
        let index = self.read_index();
        let name = index.by_id.get(id)?;
        index.by_name.get(name).map(|e| e.manifest.clone())
    }

    /// Up to `limit` manifests whose names start with `prefix` and sort after `after`, in
    /// name order.
    pub fn list(&self, prefix: &str, after: Option<&str>, limit: usize) -> Page {
        let index = self.read_index();
        let lower = match after {
            Some(after) if after >= prefix => Bound::Excluded(after),
            _ => Bound::Included(prefix),
        };
        let mut matching = index
            .by_name
            .range::<str, _>((lower, Bound::Unbounded))
            .take_while(|(name, _)| name.as_str().starts_with(prefix))
            .map(|(_, entry)| entry.manifest.clone());
        let datasets: Vec<_> = matching.by_ref().take(limit).collect();
        let has_more = matching.next().is_some();
        Page { datasets, has_more }
    }

    /// Number of datasets in the index.
    pub fn len(&self) -> usize {
        self.read_index().by_name.len()
    }

    /// True when the index is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Rebuilds the index from the store: lists every manifest (all pages) with its
    /// entity tag, takes from the checkpoint every manifest whose tag the listing confirms,
    /// fetches and decodes the others with bounded parallelism, and only then swaps the
    /// finished index in at once. Any listed manifest that cannot be fetched or decoded
    /// fails the whole rebuild with an error naming its key, and the index is left as it
    /// was. An unreadable checkpoint is ignored (it is only a cache). Writes nothing.
    pub async fn rehydrate(&self) -> Result<Rehydrated, CatalogError> {
        use futures_util::{StreamExt, TryStreamExt};

        let listed = self.store.list().await.map_err(CatalogError::Storage)?;
        let mut checkpoint = self.read_checkpoint().await?;
        let mut entries = Vec::with_capacity(listed.len());
        let mut missing = Vec::new();
        for item in listed {
            match checkpoint.remove(&item.name) {
                Some(c) if c.etag == item.etag && c.manifest.name == item.name => {
                    entries.push((
                        item.name,
                        Entry {
                            manifest: Arc::new(c.manifest),
                            etag: c.etag,
                        },
                    ));
                }
                _ => missing.push(item.name),
            }
        }
        let fetched = missing.len();
        let store = &self.store;
        let fetched_entries: Vec<(DatasetName, Entry)> = futures_util::stream::iter(missing)
            .map(|name| async move {
                match store.get(&name).await {
                    Ok(Some(stored)) => Ok(Some((name, Entry::from(stored)))),
                    // Deleted between the listing and the fetch.
                    Ok(None) => Ok(None),
                    Err(e) => Err(e),
                }
            })
            .buffer_unordered(REHYDRATE_PARALLELISM)
            .try_filter_map(|entry| async move { Ok(entry) })
            .try_collect()
            .await
            .map_err(CatalogError::Storage)?;
        let mut index = Index::default();
        for (name, entry) in entries.into_iter().chain(fetched_entries) {
            index.insert(&name, entry);
        }
        let datasets = index.by_name.len();
        *self
            .shared
            .index
            .write()
            .unwrap_or_else(PoisonError::into_inner) = index;
        // A checkpoint that served every manifest is current; otherwise it is stale.
        *self.shared.checkpointed.lock().await = (fetched == 0).then(|| self.changes());
        Ok(Rehydrated { datasets, fetched })
    }

    /// The checkpoint's entries by name; empty when there is none or it cannot be decoded.
    async fn read_checkpoint(&self) -> Result<HashMap<DatasetName, CheckpointEntry>, CatalogError> {
        let Some(bytes) = self
            .store
            .get_checkpoint()
            .await
            .map_err(CatalogError::Storage)?
        else {
            return Ok(HashMap::new());
        };
        match manifest_codec::decode_checkpoint(&bytes) {
            Ok(entries) => Ok(entries
                .into_iter()
                .map(|e| (e.manifest.name.clone(), e))
                .collect()),
            Err(e) => {
                tracing::warn!(error = %e, "ignoring an unreadable checkpoint; fetching every manifest");
                Ok(HashMap::new())
            }
        }
    }

    /// Changes published so far (registers and deletes); a checkpoint written at one
    /// value is current until it moves.
    fn changes(&self) -> u64 {
        self.shared.changes.load(Ordering::Acquire)
    }

    /// Writes a checkpoint unless the stored one is current. Returns the number of
    /// manifests written, or `None` when nothing changed since the last one.
    pub async fn checkpoint_if_changed(&self) -> Result<Option<usize>, CatalogError> {
        let mut checkpointed = self.shared.checkpointed.lock().await;
        let changes = self.changes();
        if *checkpointed == Some(changes) {
            return Ok(None);
        }
        let written = self.write_checkpoint().await?;
        *checkpointed = Some(changes);
        Ok(Some(written))
    }

    /// Writes a checkpoint of the published index (every manifest with its entity tag).
    /// Returns the number of manifests written.
    pub async fn write_checkpoint(&self) -> Result<usize, CatalogError> {
        let snapshot: Vec<(Arc<Manifest>, String)> = self
            .read_index()
            .by_name
            .values()
            .map(|e| (e.manifest.clone(), e.etag.clone()))
            .collect();
        let count = snapshot.len();
        let bytes = tokio::task::spawn_blocking(move || {
            let entries: Vec<(&Manifest, &str)> = snapshot
                .iter()
                .map(|(m, e)| (m.as_ref(), e.as_str()))
                .collect();
            manifest_codec::encode_checkpoint(&entries)
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("encoding the checkpoint: {e}")))
        .and_then(|r| {
            r.map_err(|e| StoreError::Unavailable(format!("encoding the checkpoint: {e}")))
        })
        .map_err(CatalogError::Storage)?;
        self.store
            .put_checkpoint(bytes)
            .await
            .map_err(CatalogError::Storage)?;
        Ok(count)
    }

    /// Creates or updates `request.name` per the register contract.
    pub async fn register(&self, request: RegisterRequest) -> Result<Registered, CatalogError> {
        request.validate()?;
        let name = request.name.clone();
        let _writer = self.shared.writers.lock(&name).await;
        let mut current = self.current_for_write(&name).await?;
        for attempt in 0..MAX_ATTEMPTS {
            let (candidate, condition) = match &current {
                None => (self.created(&request), WriteCondition::Absent),
                Some(entry) => (
                    self.updated(&entry.manifest, &request)?,
                    WriteCondition::Matches(entry.etag.clone()),
                ),
            };
            #[cfg(test)]
            if self.shared.publish_before_persist {
                self.publish(
                    &name,
                    Some(Entry {
                        manifest: Arc::new(candidate.clone()),
                        etag: current.as_ref().map(|e| e.etag.clone()).unwrap_or_default(),
                    }),
                );
            }
            match self.store.put(&candidate, condition).await {
                Ok(etag) => {
                    let manifest = Arc::new(candidate);
                    self.publish(
                        &name,
                        Some(Entry {
                            manifest: manifest.clone(),
                            etag,
                        }),
                    );
                    return Ok(Registered {
                        existing: current.is_some(),
                        manifest,
                    });
                }
                Err(StoreError::PreconditionFailed) => {
                    back_off(attempt).await;
                    current = self.reload(&name).await?;
                }
                Err(e) => return Err(self.failed(&name, e)),
            }
        }
        Err(CatalogError::Storage(StoreError::Unavailable(format!(
            "gave up on {name} after {MAX_ATTEMPTS} conflicting concurrent writes"
        ))))
    }

    /// Removes `name`: the manifest object goes first, then the index entry.
    pub async fn delete(&self, name: &DatasetName) -> Result<(), CatalogError> {
        let _writer = self.shared.writers.lock(name).await;
        let mut current = self.current_for_write(name).await?;
        for _ in 0..MAX_ATTEMPTS {
            let Some(entry) = &current else {
                return Err(CatalogError::NotFound {
                    name: name.to_string(),
                });
            };
            match self.store.delete(name, &entry.etag).await {
                Ok(()) => {
                    self.publish(name, None);
                    return Ok(());
                }
                Err(StoreError::PreconditionFailed) => current = self.reload(name).await?,
                Err(e) => return Err(self.failed(name, e)),
            }
        }
        Err(CatalogError::Storage(StoreError::Unavailable(format!(
            "gave up deleting {name} after {MAX_ATTEMPTS} conflicting concurrent writes"
        ))))
    }

    fn created(&self, request: &RegisterRequest) -> Manifest {
        let now = self.shared.clock.now();
        Manifest {
            dataset_id: dataset_id(&request.name),
            name: request.name.clone(),
            schema_fingerprint: request.schema_fingerprint.clone(),
            version: 1,
            objects: request.objects.clone(),
            row_count: request.row_count,
            created_at: now,
            updated_at: now,
        }
    }

    fn updated(
        &self,
        current: &Manifest,
        request: &RegisterRequest,
    ) -> Result<Manifest, CatalogError> {
        if current.schema_fingerprint != request.schema_fingerprint {
            return Err(CatalogError::FingerprintConflict {
                name: request.name.to_string(),
                existing: current.schema_fingerprint.to_string(),
                requested: request.schema_fingerprint.to_string(),
            });
        }
        let version = current.version.checked_add(1).ok_or_else(|| {
            CatalogError::Invalid(format!("dataset {} is at the last version", request.name))
        })?;
        Ok(Manifest {
            version,
            objects: request.objects.clone(),
            row_count: request.row_count,
            updated_at: self.shared.clock.now().max(current.updated_at),
            ..current.clone()
        })
    }

    /// The entry a writer may trust: re-read from the store when an earlier outcome was
    /// unknown.
    async fn current_for_write(&self, name: &DatasetName) -> Result<Option<Entry>, CatalogError> {
        let stale = self
            .shared
            .stale
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(name);
        if stale {
            let entry = self.reload(name).await?;
            self.shared
                .stale
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(name);
            return Ok(entry);
        }
        Ok(self.read_index().by_name.get(name).cloned())
    }

    /// Reads `name` from the store and publishes what is there.
    async fn reload(&self, name: &DatasetName) -> Result<Option<Entry>, CatalogError> {
        match self.store.get(name).await {
            Ok(stored) => {
                let entry = stored.map(Entry::from);
                self.publish(name, entry.clone());
                Ok(entry)
            }
            Err(e) => Err(self.failed(name, e)),
        }
    }

    fn failed(&self, name: &DatasetName, error: StoreError) -> CatalogError {
        if !error.is_certainly_not_written() {
            tracing::warn!(dataset = %name, error = %error, "storage outcome unknown; will re-read before the next write");
            self.shared
                .stale
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(name.clone());
        }
        CatalogError::Storage(error)
    }

    fn publish(&self, name: &DatasetName, entry: Option<Entry>) {
        let mut index = self
            .shared
            .index
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        match entry {
            Some(entry) => index.insert(name, entry),
            None => index.remove(name),
        }
        self.shared.changes.fetch_add(1, Ordering::AcqRel);
    }

    fn read_index(&self) -> std::sync::RwLockReadGuard<'_, Index> {
        self.shared
            .index
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }
}
