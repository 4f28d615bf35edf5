//! The published manifests in memory, and the reads served from them. Readers get
//! `Arc<Manifest>` snapshots that nothing mutates (no aliasing: a caller can never change
//! the index without the writer path).

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};

use manifest_codec::{DatasetName, Manifest};
use uuid::Uuid;

use super::Catalog;
use crate::store::StoredManifest;

/// A published manifest with the store's entity tag of that version.
#[derive(Debug, Clone)]
pub(super) struct Entry {
    pub(super) manifest: Arc<Manifest>,
    pub(super) etag: String,
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

/// One page of [`Catalog::list`].
#[derive(Debug, Clone)]
pub struct Page {
    /// Manifests sorted by name.
    pub datasets: Vec<Arc<Manifest>>,
    /// True when more names match after the last one returned.
    pub has_more: bool,
}

impl Catalog {
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

    /// Makes `entry` (or, with `None`, the absence of `name`) what readers see, and counts
    /// the change for the checkpoint.
    pub(super) fn publish(&self, name: &DatasetName, entry: Option<Entry>) {
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
        let entry = Entry {
            manifest: Arc::new(manifest),
            etag,
        };
        index.insert(&name, entry);
        self.0.changes.fetch_add(1, Ordering::AcqRel);
    }
}
