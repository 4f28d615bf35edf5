//! The published heads in memory, and the reads served from them. Readers get
//! `Arc<Manifest>` snapshots that nothing mutates (no aliasing: a caller can never change
//! the index without the writer path). Deleted and purged heads stay in the index (so that
//! undrop, version numbering and the history work) but reads only see live ones.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};

use manifest_codec::{Change, DatasetName, DatasetState, Manifest, Record, Timestamp};
use uuid::Uuid;

use super::Catalog;
use crate::store::StoredRecord;

/// A published head record with the store's entity tag of that object.
#[derive(Debug, Clone)]
pub(super) struct Entry {
    pub(super) manifest: Arc<Manifest>,
    pub(super) state: DatasetState,
    pub(super) changes: Arc<[Change]>,
    pub(super) etag: String,
}

impl Entry {
    pub(super) fn new(record: Record, etag: String) -> Self {
        Self {
            manifest: Arc::new(record.manifest),
            state: record.state,
            changes: record.changes.into(),
            etag,
        }
    }

    /// The record this entry was read from or written as.
    pub(super) fn record(&self) -> Record {
        Record {
            manifest: (*self.manifest).clone(),
            state: self.state,
            changes: self.changes.to_vec(),
        }
    }

    pub(super) fn is_live(&self) -> bool {
        self.state == DatasetState::Live
    }

    pub(super) fn is_purged(&self) -> bool {
        matches!(self.state, DatasetState::Purged { .. })
    }

    fn deleted_at(&self) -> Option<Timestamp> {
        match self.state {
            DatasetState::Deleted { at } => Some(at),
            _ => None,
        }
    }
}

impl From<StoredRecord> for Entry {
    fn from(stored: StoredRecord) -> Self {
        Self::new(stored.record, stored.etag)
    }
}

/// The published heads, by name (sorted, for listing) and by id.
#[derive(Debug, Default)]
pub(super) struct Index {
    pub(super) by_name: BTreeMap<DatasetName, Entry>,
    by_id: HashMap<Uuid, DatasetName>,
}

impl Index {
    pub(super) fn insert(&mut self, name: &DatasetName, entry: Entry) {
        self.by_id.insert(entry.manifest.dataset_id, name.clone());
        self.by_name.insert(name.clone(), entry);
    }

    fn remove(&mut self, name: &DatasetName) {
        if let Some(entry) = self.by_name.remove(name) {
            self.by_id.remove(&entry.manifest.dataset_id);
        }
    }
}

/// Which datasets a listing shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visibility {
    /// Live datasets (the default).
    Live,
    /// Soft-deleted datasets, which can be undropped.
    Deleted,
}

/// One dataset of a listing.
#[derive(Debug, Clone)]
pub struct Listed {
    /// Its head manifest.
    pub manifest: Arc<Manifest>,
    /// When it was deleted, for a listing of deleted datasets.
    pub deleted_at: Option<Timestamp>,
}

/// One page of [`Catalog::list`].
#[derive(Debug, Clone)]
pub struct Page {
    /// Datasets sorted by name.
    pub datasets: Vec<Listed>,
    /// True when more names match after the last one returned.
    pub has_more: bool,
}

impl Catalog {
    /// The manifest of live dataset `name`.
    pub fn get(&self, name: &DatasetName) -> Option<Arc<Manifest>> {
        self.read_index()
            .by_name
            .get(name)
            .filter(|e| e.is_live())
            .map(|e| e.manifest.clone())
    }

    /// The manifest of the live dataset whose `dataset_id` is `id`.
    pub fn get_by_id(&self, id: &Uuid) -> Option<Arc<Manifest>> {
        let index = self.read_index();
        let name = index.by_id.get(id)?;
        index
            .by_name
            .get(name)
            .filter(|e| e.is_live())
            .map(|e| e.manifest.clone())
    }

    /// Up to `limit` datasets of `visibility` whose names start with `prefix` and sort after
    /// `after`, in name order.
    pub fn list(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
        visibility: Visibility,
    ) -> Page {
        let index = self.read_index();
        let lower = match after {
            Some(after) if after >= prefix => Bound::Excluded(after),
            _ => Bound::Included(prefix),
        };
        let mut matching = index
            .by_name
            .range::<str, _>((lower, Bound::Unbounded))
            .take_while(|(name, _)| name.as_str().starts_with(prefix))
            .filter(|(_, e)| match visibility {
                Visibility::Live => e.is_live(),
                Visibility::Deleted => e.deleted_at().is_some(),
            })
            .map(|(_, entry)| Listed {
                manifest: entry.manifest.clone(),
                deleted_at: entry.deleted_at(),
            });
        let datasets: Vec<_> = matching.by_ref().take(limit).collect();
        let has_more = matching.next().is_some();
        Page { datasets, has_more }
    }

    /// Number of live datasets.
    pub fn len(&self) -> usize {
        self.read_index()
            .by_name
            .values()
            .filter(|e| e.is_live())
            .count()
    }

    /// True when no dataset is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The head entry of `name` in any state.
    pub(super) fn entry(&self, name: &DatasetName) -> Option<Entry> {
        self.read_index().by_name.get(name).cloned()
    }

    /// Makes `entry` (or, with `None`, the absence of `name`) what readers see, resolves
    /// the name's pending changes against it (see `feed`), and counts the change for the
    /// checkpoint.
    pub(super) fn publish(&self, name: &DatasetName, entry: Option<Entry>) {
        self.core
            .feed
            .resolve(name, entry.as_ref().map(|e| (&*e.manifest, &e.changes[..])));
        let mut index = self
            .core
            .index
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        match entry {
            Some(entry) => index.insert(name, entry),
            None => index.remove(name),
        }
        self.core.changes.fetch_add(1, Ordering::AcqRel);
    }

    /// Swaps a rebuilt index in at once.
    pub(super) fn replace_index(&self, index: Index) {
        *self
            .core
            .index
            .write()
            .unwrap_or_else(PoisonError::into_inner) = index;
    }

    pub(super) fn read_index(&self) -> std::sync::RwLockReadGuard<'_, Index> {
        self.core
            .index
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
impl super::CatalogState {
    /// Publishes `manifest` without any store write, keeping the entry's entity tag: what
    /// a broken "publish before persist" register would do (see `model_tests`).
    pub(super) fn publish_unpersisted(&self, manifest: Manifest) {
        let mut index = self.0.index.write().unwrap_or_else(PoisonError::into_inner);
        let name = manifest.name.clone();
        let etag = index
            .by_name
            .get(&name)
            .map(|e| e.etag.clone())
            .unwrap_or_default();
        index.insert(&name, Entry::new(Record::live(manifest), etag));
        self.0.changes.fetch_add(1, Ordering::AcqRel);
    }
}
