//! Replicas (docs/contracts.md, "Several catalogd replicas"): every replica writes through
//! the store's conditional writes, so the store decides every race; what a replica holds
//! in memory may lag another replica's writes. [`keep_refreshed`] catches it up every
//! `index_refresh`, and [`Catalog::get_fresh`] reads one name from the store first.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use manifest_codec::{DatasetName, Manifest};

use super::{Catalog, CatalogError};

/// What one refresh changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Refreshed {
    /// Names re-read because their stored ETag differs from the index's (written by
    /// another replica), including names new to this replica.
    pub reloaded: usize,
    /// Names no longer stored (purged through another replica).
    pub removed: usize,
}

impl Catalog {
    /// Lists every head's ETag and re-reads each name whose ETag differs from the one in
    /// the index, under the name's writer lock (so a local write in between is never
    /// undone: the re-read sees it). Names gone from the store leave the index.
    pub async fn refresh(&self) -> Result<Refreshed, CatalogError> {
        let listing = self.store.list().await.map_err(Self::storage)?;
        let stored: HashMap<DatasetName, String> = listing
            .manifests
            .into_iter()
            .map(|m| (m.name, m.etag))
            .collect();
        let known: HashMap<DatasetName, String> = self
            .read_index()
            .by_name
            .iter()
            .map(|(name, entry)| (name.clone(), entry.etag.clone()))
            .collect();
        let mut out = Refreshed::default();
        let changed = stored
            .iter()
            .filter(|(name, etag)| known.get(*name) != Some(*etag))
            .map(|(name, _)| name);
        let gone = known.keys().filter(|name| !stored.contains_key(*name));
        for name in changed.chain(gone) {
            let _writer = self.core.writers.lock(name).await;
            let before = self.entry(name).map(|e| e.etag);
            let after = self.reload(name).await?.map(|e| e.etag);
            match (before, after) {
                (Some(_), None) => out.removed += 1,
                (before, after) if before != after => out.reloaded += 1,
                _ => {}
            }
        }
        Ok(out)
    }

    /// The live manifest of `name` as stored now: read from the store (under the name's
    /// writer lock) and published, so it is never older than the last acknowledged write
    /// through any replica. For `Cache-Control: no-cache` reads.
    pub async fn get_fresh(
        &self,
        name: &DatasetName,
    ) -> Result<Option<Arc<Manifest>>, CatalogError> {
        let _writer = self.core.writers.lock(name).await;
        let entry = self.reload(name).await?;
        Ok(entry
            .filter(super::index::Entry::is_live)
            .map(|e| e.manifest))
    }
}

/// A refresh lists every head, so its cost grows with the catalog: the pause after one is
/// at least this many times what it took, which keeps refreshing under 5 % of a core
/// (with 100,000 datasets a listing takes about 0.3 s, so a refresh every 6 s or so).
const PAUSE_PER_REFRESH_TIME: u32 = 19;

/// Refreshes the index every `interval` (or, in a large catalog, every
/// [`PAUSE_PER_REFRESH_TIME`] times the last refresh's duration, if longer) until dropped;
/// a failed refresh is logged and tried again at the next tick.
pub async fn keep_refreshed(catalog: Catalog, interval: Duration) {
    let mut pause = interval;
    loop {
        tokio::time::sleep(pause).await;
        let started = std::time::Instant::now();
        match catalog.refresh().await {
            Ok(Refreshed {
                reloaded: 0,
                removed: 0,
            }) => {}
            Ok(done) => {
                tracing::debug!(
                    reloaded = done.reloaded,
                    removed = done.removed,
                    "index refreshed from the store"
                );
            }
            Err(e) => {
                tracing::warn!(error = %service_kit::ErrorChain(&e), "index refresh failed; retrying at the next tick");
            }
        }
        pause = interval.max(started.elapsed() * PAUSE_PER_REFRESH_TIME);
    }
}
