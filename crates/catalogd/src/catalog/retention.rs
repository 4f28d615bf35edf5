//! Retention: what the catalog forgets, and when (docs/contracts.md, "History").
//!
//! Each pass re-reads names with unknown write outcomes (so the feed never waits on them
//! for long), forgets changes older than the feed keeps, purges datasets deleted longer
//! ago than `deleted`, expires versions beyond `max_versions`, and removes purge records
//! the feed no longer serves.

use std::collections::HashMap;
use std::sync::PoisonError;
use std::time::Duration;

use manifest_codec::{DatasetName, DatasetState, Timestamp};

use super::{Catalog, CatalogError};
use crate::store::{Slot, StoreError};

/// How long the catalog keeps what.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Changes older than this leave the feed.
    pub changes: Duration,
    /// Idempotency keys older than this are forgotten (the feed keeps their changes at
    /// least this long too).
    pub idempotency_window: Duration,
    /// Soft-deleted datasets are purged after this.
    pub deleted: Duration,
    /// Versions kept per dataset, the head included (`None`: all).
    pub max_versions: Option<u32>,
}

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Maintained {
    /// Changes forgotten by the feed.
    pub forgotten: usize,
    /// Deleted datasets purged.
    pub purged: usize,
    /// Versions expired.
    pub expired: usize,
    /// Purge records removed.
    pub removed: usize,
}

fn before(now: Timestamp, age: Duration) -> Timestamp {
    let micros = i64::try_from(age.as_micros()).unwrap_or(i64::MAX);
    Timestamp::from_micros(now.as_micros().saturating_sub(micros))
        .unwrap_or_else(|| Timestamp::from_micros(0).expect("the epoch is representable"))
}

impl Catalog {
    /// One retention pass; a failure stops the pass (the next one carries on).
    pub async fn maintain(&self, retention: &Retention) -> Result<Maintained, CatalogError> {
        self.resolve_stale().await;
        let now = self.core.clock.now();
        let mut done = Maintained {
            forgotten: self.core.feed.forget_before(before(
                now,
                retention.changes.max(retention.idempotency_window),
            )),
            ..Maintained::default()
        };
        let deleted_before = before(now, retention.deleted);
        let forgotten_before = before(now, retention.changes);
        let heads: Vec<(DatasetName, DatasetState, i64, String)> = self
            .read_index()
            .by_name
            .iter()
            .map(|(n, e)| (n.clone(), e.state, e.manifest.version, e.etag.clone()))
            .collect();
        for (name, state, version, etag) in heads {
            match state {
                DatasetState::Deleted { at } if at < deleted_before => {
                    self.purge(&name).await?;
                    done.purged += 1;
                }
                DatasetState::Purged { at } if at < forgotten_before => {
                    if self.remove_purged(&name, &etag).await? {
                        done.removed += 1;
                    }
                }
                DatasetState::Live | DatasetState::Deleted { .. } => {
                    done.expired += self.keep_at_most(&name, version, retention).await?;
                }
                DatasetState::Purged { .. } => {}
            }
        }
        Ok(done)
    }

    /// Expires the versions of `name` beyond `max_versions`, listing its versions only when
    /// some may be due since the last pass.
    async fn keep_at_most(
        &self,
        name: &DatasetName,
        head: i64,
        retention: &Retention,
    ) -> Result<usize, CatalogError> {
        let Some(max) = retention.max_versions else {
            return Ok(0);
        };
        let keep_from = head - i64::from(max) + 1;
        let done_below = self
            .core
            .expired_below
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .copied()
            .unwrap_or(1);
        if keep_from <= done_below {
            return Ok(0);
        }
        let expired = self.expire(name, keep_from).await?;
        self.core
            .expired_below
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.clone(), keep_from);
        Ok(expired)
    }

    /// Removes the purge record of `name` if it is still `etag`.
    async fn remove_purged(&self, name: &DatasetName, etag: &str) -> Result<bool, CatalogError> {
        let _writer = self.core.writers.lock(name).await;
        let current = self.current_for_write(name).await?;
        if current.as_ref().map(|e| e.etag.as_str()) != Some(etag) {
            return Ok(false);
        }
        match self.store.delete(name, Slot::Head, Some(etag)).await {
            Ok(()) => {
                self.publish(name, None);
                Ok(true)
            }
            Err(StoreError::PreconditionFailed) => Ok(false),
            Err(e) => Err(Self::storage(e)),
        }
    }
}

/// Applies `retention` every `interval`, logging each pass that did something. Runs until
/// dropped.
pub async fn keep_retention(catalog: Catalog, retention: Retention, interval: Duration) {
    loop {
        tokio::time::sleep(interval).await;
        match catalog.maintain(&retention).await {
            Ok(done) if done == Maintained::default() => {}
            Ok(done) => tracing::info!(
                forgotten_changes = done.forgotten,
                purged = done.purged,
                expired_versions = done.expired,
                removed_purge_records = done.removed,
                "retention applied"
            ),
            Err(e) => {
                tracing::warn!(error = %service_kit::ErrorChain(&e), "retention pass failed; retrying later");
            }
        }
    }
}

/// Names whose versions below the number were expired already.
pub(super) type ExpiredBelow = std::sync::Mutex<HashMap<DatasetName, i64>>;
