//! Rebuilding the index from the store at start-up (docs/contracts.md, "Manifest storage
//! and rehydration"): all network I/O happens without the index lock, and the finished
//! index is swapped in at once, or not at all.

use std::collections::HashMap;

use futures_util::{StreamExt, TryStreamExt};
use manifest_codec::{CheckpointEntry, DatasetName, DatasetState, FeedEntry};

use super::feed::{Feed, FeedChange};
use super::index::{Entry, Index};
use super::{Catalog, CatalogError};
use crate::store::{CatalogFile, Slot};

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
    /// Whether a readable checkpoint was found (without one, the change feed starts after
    /// the newest change the heads hold, and a checkpoint should be written before serving).
    pub checkpoint_found: bool,
}

impl Catalog {
    /// Rebuilds the index and the change feed from the store: lists every head (all
    /// pages) with its entity tag, takes from the checkpoint every head whose tag the
    /// listing confirms, fetches and decodes the others with bounded parallelism, and only
    /// then swaps the finished index in at once. Any listed head that cannot be fetched or
    /// decoded fails the whole rebuild with an error naming its key, and the index is left
    /// as it was. A key under the prefix that is not `<valid name>.parquet` is no manifest:
    /// it is skipped with a warning naming it, so a stray file cannot take the catalog
    /// down. An unreadable checkpoint is ignored (it is only a cache). Writes nothing.
    ///
    /// The feed comes from the changes file written with the checkpoint, plus the changes
    /// of every head fetched and of the versions registered since the checkpoint; without
    /// a usable checkpoint it restarts after the newest change the heads hold.
    pub async fn rehydrate(&self) -> Result<Rehydrated, CatalogError> {
        let listing = self.store.list().await.map_err(CatalogError::Storage)?;
        for key in &listing.foreign {
            tracing::warn!(key = %key, "skipping a key under the manifest prefix that is not <name>.parquet");
        }
        let checkpoint = self.read_checkpoint().await?;
        let checkpoint_found = checkpoint.is_some();
        let feed_file = match checkpoint {
            Some(_) => self.read_changes().await?,
            None => None,
        };
        let mut checkpoint = checkpoint.unwrap_or_default();
        if let Some((file, horizon)) = &feed_file {
            if !covers(file, *horizon, &checkpoint) {
                tracing::warn!("the changes file does not cover the checkpoint (a checkpoint write cut short by a crash, or two writers at once): reading every head and its kept versions");
                checkpoint.clear();
            }
        }
        let mut entries = Vec::with_capacity(listing.manifests.len());
        let mut missing = Vec::new();
        for item in listing.manifests {
            match checkpoint.remove(&item.name) {
                Some(c) if c.etag == item.etag && c.record.manifest.name == item.name => {
                    entries.push((item.name, Entry::new(c.record, c.etag)));
                }
                // After a purge the name's versions start again at 1.
                Some(c) => {
                    let purged = matches!(c.record.state, DatasetState::Purged { .. });
                    missing.push((item.name, (!purged).then_some(c.record.manifest.version)));
                }
                None => missing.push((item.name, None)),
            }
        }
        let fetched = missing.len();
        let fetched_entries = self.fetch_heads(missing).await?;
        let (changes, horizon) = if let Some((file, horizon)) = feed_file {
            let mut changes: Vec<FeedChange> = Feed::restored(file).collect();
            for (_, entry, since) in &fetched_entries {
                changes.extend(self.changes_since(entry, *since).await?);
            }
            (changes, horizon)
        } else {
            let newest = entries
                .iter()
                .map(|(_, e)| e)
                .chain(fetched_entries.iter().map(|(_, e, _)| e))
                .flat_map(|e| e.changes.iter().map(|c| c.seq))
                .max()
                .unwrap_or(0);
            (Vec::new(), newest)
        };
        let mut index = Index::default();
        for (name, entry) in entries
            .into_iter()
            .chain(fetched_entries.into_iter().map(|(n, e, _)| (n, e)))
        {
            index.insert(&name, entry);
        }
        let datasets = index.by_name.values().filter(|e| e.is_live()).count();
        self.replace_index(index);
        self.core.feed.restore(changes, horizon);
        // A checkpoint that served every manifest is current; otherwise it is stale.
        self.mark_checkpoint((fetched == 0).then(|| self.changes()))
            .await;
        Ok(Rehydrated {
            datasets,
            fetched,
            foreign_keys: listing.foreign.len(),
            checkpoint_found,
        })
    }

    /// Fetches the heads of `missing` (with the version the checkpoint knew, if any).
    async fn fetch_heads(
        &self,
        missing: Vec<(DatasetName, Option<i64>)>,
    ) -> Result<Vec<(DatasetName, Entry, Option<i64>)>, CatalogError> {
        let store = &self.store;
        futures_util::stream::iter(missing)
            .map(|(name, since)| async move {
                match store.get(&name, Slot::Head).await {
                    Ok(Some(stored)) => Ok(Some((name, Entry::from(stored), since))),
                    // Deleted between the listing and the fetch.
                    Ok(None) => Ok(None),
                    Err(e) => Err(e),
                }
            })
            .buffer_unordered(REHYDRATE_PARALLELISM)
            .try_filter_map(|entry| async move { Ok(entry) })
            .try_collect()
            .await
            .map_err(CatalogError::Storage)
    }

    /// The changes `head` holds, and those of the versions kept since version `since` (the
    /// one the checkpoint knew; every version when the name is new since).
    async fn changes_since(
        &self,
        head: &Entry,
        since: Option<i64>,
    ) -> Result<Vec<FeedChange>, CatalogError> {
        let name = &head.manifest.name;
        let mut changes: Vec<FeedChange> = head
            .changes
            .iter()
            .map(|c| FeedChange::of(&head.manifest, c))
            .collect();
        let from = since.unwrap_or(1);
        let kept = self
            .store
            .list_versions(name)
            .await
            .map_err(CatalogError::Storage)?;
        for version in kept
            .into_iter()
            .filter(|v| *v >= from && *v < head.manifest.version)
        {
            if let Some(stored) = self
                .store
                .get(name, Slot::Version(version))
                .await
                .map_err(CatalogError::Storage)?
            {
                let record = stored.record;
                changes.extend(
                    record
                        .changes
                        .iter()
                        .map(|c| FeedChange::of(&record.manifest, c)),
                );
            }
        }
        Ok(changes)
    }

    /// The checkpoint's entries by name; `None` when there is none or it cannot be decoded.
    async fn read_checkpoint(
        &self,
    ) -> Result<Option<HashMap<DatasetName, CheckpointEntry>>, CatalogError> {
        let Some(bytes) = self
            .store
            .get_file(CatalogFile::Checkpoint)
            .await
            .map_err(CatalogError::Storage)?
        else {
            return Ok(None);
        };
        match manifest_codec::decode_checkpoint(&bytes) {
            Ok(entries) => Ok(Some(
                entries
                    .into_iter()
                    .map(|e| (e.record.manifest.name.clone(), e))
                    .collect(),
            )),
            Err(e) => {
                tracing::warn!(error = %e, "ignoring an unreadable checkpoint; fetching every manifest");
                Ok(None)
            }
        }
    }

    /// The changes file's entries and horizon; `None` when there is none or it cannot be
    /// decoded.
    async fn read_changes(&self) -> Result<Option<(Vec<FeedEntry>, u64)>, CatalogError> {
        let Some(bytes) = self
            .store
            .get_file(CatalogFile::Changes)
            .await
            .map_err(CatalogError::Storage)?
        else {
            return Ok(None);
        };
        match manifest_codec::decode_changes(&bytes) {
            Ok(file) => Ok(Some(file)),
            Err(e) => {
                tracing::warn!(error = %e, "ignoring an unreadable changes file; the change feed restarts");
                Ok(None)
            }
        }
    }
}

/// Whether the changes file holds every change above its horizon that the checkpoint's
/// records hold. A checkpoint is written after its changes file from one snapshot, so a
/// pair from one writer always passes; a pair that does not (an older changes file that
/// landed late beside a newer checkpoint, or two writers) would hide every change made
/// between the two snapshots from a rebuild that trusts the checkpoint's rows.
fn covers(
    file: &[FeedEntry],
    horizon: u64,
    checkpoint: &HashMap<DatasetName, CheckpointEntry>,
) -> bool {
    let held: std::collections::HashSet<u64> = file.iter().map(|e| e.change.seq).collect();
    checkpoint.values().all(|c| {
        c.record
            .changes
            .iter()
            .all(|change| change.seq <= horizon || held.contains(&change.seq))
    })
}
