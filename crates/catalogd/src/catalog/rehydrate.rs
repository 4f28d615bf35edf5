//! Rebuilding the index from the store at start-up (docs/contracts.md, "Manifest storage
//! and rehydration"): all network I/O happens without the index lock, and the finished
//! index is swapped in at once, or not at all.

use std::collections::HashMap;
use std::sync::Arc;

use manifest_codec::{CheckpointEntry, DatasetName};

use super::index::{Entry, Index};
use super::{Catalog, CatalogError};

/// Manifests fetched at once during rehydration.
const REHYDRATE_PARALLELISM: usize = 32;

/// What a rebuild of the index loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rehydrated {
    /// Datasets in the rebuilt index.
    pub datasets: usize,
    /// Manifests fetched one by one (not current in the checkpoint).
    pub fetched: usize,
    /// Keys under the manifest prefix that are not manifests, skipped (each logged).
    pub foreign_keys: usize,
}

impl Catalog {
    /// Rebuilds the index from the store: lists every manifest (all pages) with its
    /// entity tag, takes from the checkpoint every manifest whose tag the listing confirms,
    /// fetches and decodes the others with bounded parallelism, and only then swaps the
    /// finished index in at once. Any listed manifest that cannot be fetched or decoded
    /// fails the whole rebuild with an error naming its key, and the index is left as it
    /// was. A key under the prefix that is not `<valid name>.parquet` is no manifest: it is
    /// skipped with a warning naming it, so a stray file cannot take the catalog down. An
    /// unreadable checkpoint is ignored (it is only a cache). Writes nothing.
    pub async fn rehydrate(&self) -> Result<Rehydrated, CatalogError> {
        use futures_util::{StreamExt, TryStreamExt};

        let listing = self.store.list().await.map_err(CatalogError::Storage)?;
        for key in &listing.foreign {
            tracing::warn!(key = %key, "skipping a key under the manifest prefix that is not <name>.parquet");
        }
        let mut checkpoint = self.read_checkpoint().await?;
        let mut entries = Vec::with_capacity(listing.manifests.len());
        let mut missing = Vec::new();
        for item in listing.manifests {
            match checkpoint.remove(&item.name) {
                Some(c) if c.etag == item.etag && c.record.manifest.name == item.name => {
                    let entry = Entry {
                        manifest: Arc::new(c.record.manifest),
                        etag: c.etag,
                    };
                    entries.push((item.name, entry));
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
        self.replace_index(index);
        // A checkpoint that served every manifest is current; otherwise it is stale.
        self.mark_checkpoint((fetched == 0).then(|| self.changes()))
            .await;
        Ok(Rehydrated {
            datasets,
            fetched,
            foreign_keys: listing.foreign.len(),
        })
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
                .map(|e| (e.record.manifest.name.clone(), e))
                .collect()),
            Err(e) => {
                tracing::warn!(error = %e, "ignoring an unreadable checkpoint; fetching every manifest");
                Ok(HashMap::new())
            }
        }
    }
}
