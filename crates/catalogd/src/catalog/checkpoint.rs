//! The checkpoint: every published manifest with its entity tag in one file, so a restart
//! reads one object plus what changed since (docs/adr/0008). It is only a cache: the
//! manifests stay the truth, and an unreadable or stale checkpoint costs time, not data.
//!
//! The policy: after the index is rebuilt, and then every `interval`, write one if the
//! index changed since the stored one; once more at shutdown.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use manifest_codec::{FeedEntry, Record};

use super::feed::FeedChange;
use super::{Catalog, CatalogError};
use crate::metrics::Metrics;
use crate::store::CatalogFile;

impl Catalog {
    /// Changes published so far (registers and deletes); a checkpoint written at one
    /// value is current until it moves.
    pub(super) fn changes(&self) -> u64 {
        self.core.changes.load(Ordering::Acquire)
    }

    /// Records which change count the stored checkpoint reflects (`None`: stale).
    pub(super) async fn mark_checkpoint(&self, changes: Option<u64>) {
        *self.core.checkpointed.lock().await = changes;
    }

    /// Writes a checkpoint unless the stored one is current. Returns the number of
    /// manifests written, or `None` when nothing changed since the last one.
    pub async fn checkpoint_if_changed(&self) -> Result<Option<usize>, CatalogError> {
        // Held while writing, so writers take turns.
        let mut checkpointed = self.core.checkpointed.lock().await;
        let changes = self.changes();
        if *checkpointed == Some(changes) {
            return Ok(None);
        }
        let written = self.write_checkpoint().await?;
        *checkpointed = Some(changes);
        Ok(Some(written))
    }

    /// Writes a checkpoint: the change feed first, then every head record with its entity
    /// tag (the heads are read before the feed, so every change a checkpointed head holds
    /// is in the feed file). Returns the number of heads written.
    pub async fn write_checkpoint(&self) -> Result<usize, CatalogError> {
        let heads: Vec<(Record, String)> = self
            .read_index()
            .by_name
            .values()
            .map(|e| (e.record(), e.etag.clone()))
            .collect();
        let (changes, horizon) = self.core.feed.snapshot();
        let count = heads.len();
        let encoded = tokio::task::spawn_blocking(move || {
            let entries: Vec<FeedEntry> = changes.iter().map(FeedChange::to_entry).collect();
            let entries: Vec<&FeedEntry> = entries.iter().collect();
            let changes = manifest_codec::encode_changes(&entries, horizon)?;
            let heads: Vec<(&Record, &str)> = heads.iter().map(|(r, e)| (r, e.as_str())).collect();
            Ok((changes, manifest_codec::encode_checkpoint(&heads)?))
        })
        .await
        .expect("encoding a checkpoint does not panic");
        let (changes, heads) = encoded.map_err(|source| CatalogError::Encode {
            what: "the checkpoint",
            source,
        })?;
        self.store
            .put_file(CatalogFile::Changes, changes)
            .await
            .map_err(CatalogError::Storage)?;
        self.store
            .put_file(CatalogFile::Checkpoint, heads)
            .await
            .map_err(CatalogError::Storage)?;
        Ok(count)
    }
}

/// Writes a checkpoint whenever the index changed since the stored one (at once when
/// start-up found it stale), checking every `interval`. A failed write is logged and
/// retried at the next tick. Runs until dropped.
pub async fn keep_checkpoint(catalog: Catalog, metrics: Metrics, interval: Duration) {
    loop {
        checkpoint_once(&catalog, &metrics).await;
        tokio::time::sleep(interval).await;
    }
}

/// One checkpoint if the index changed since the stored one; logs and counts the outcome.
pub async fn checkpoint_once(catalog: &Catalog, metrics: &Metrics) {
    let started = Instant::now();
    match catalog.checkpoint_if_changed().await {
        Ok(None) => {}
        Ok(Some(datasets)) => {
            metrics.checkpoints.with_label_values(&["ok"]).inc();
            tracing::info!(
                datasets,
                seconds = started.elapsed().as_secs_f64(),
                "checkpoint written"
            );
        }
        Err(e) => {
            metrics.checkpoints.with_label_values(&["error"]).inc();
            tracing::warn!(error = %service_kit::ErrorChain(&e), "cannot write the checkpoint; retrying later");
        }
    }
}

#[cfg(test)]
#[path = "checkpoint_tests.rs"]
mod tests;
