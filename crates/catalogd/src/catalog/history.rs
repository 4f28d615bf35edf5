//! Reading the history: a dataset's versions, one version, the version current at an
//! instant, and the answer a register with a remembered idempotency key gave.
//!
//! The head serves its own version from memory; earlier versions are read from their
//! kept records, which never change once written (docs/contracts.md, "History").

use std::sync::Arc;

use futures_util::{StreamExt, TryStreamExt};
use manifest_codec::{ChangeKind, DatasetName, Manifest, Record, SchemaFingerprint, Timestamp};
use serde::Serialize;

use super::feed::KeyState;
use super::index::Entry;
use super::register::not_found;
use super::{Catalog, CatalogError, RegisterRequest, Registered};
use crate::store::{Slot, StoreError};

/// Version records read at once for a listing.
const VERSION_READS: usize = 16;

/// One version of a dataset, as a listing shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VersionSummary {
    /// The version number.
    pub version: i64,
    /// The schema fingerprint it was registered with.
    pub schema_fingerprint: SchemaFingerprint,
    /// Its row count, if given.
    pub row_count: Option<i64>,
    /// How many objects it lists.
    pub object_count: usize,
    /// When it was registered.
    pub updated_at: Timestamp,
}

impl VersionSummary {
    fn of(m: &Manifest) -> Self {
        Self {
            version: m.version,
            schema_fingerprint: m.schema_fingerprint.clone(),
            row_count: m.row_count,
            object_count: m.objects.len(),
            updated_at: m.updated_at,
        }
    }
}

/// One page of a dataset's versions, newest first.
#[derive(Debug, Clone)]
pub struct VersionPage {
    /// The versions.
    pub versions: Vec<VersionSummary>,
    /// Pass as `before` for the next page; `None` after the oldest.
    pub next_before: Option<i64>,
}

impl Catalog {
    /// The head entry of a dataset whose history is readable (live or deleted).
    fn history_head(&self, name: &DatasetName) -> Result<Entry, CatalogError> {
        self.entry(name)
            .filter(|e| !e.is_purged())
            .ok_or_else(|| not_found(name))
    }

    /// Up to `limit` versions of `name` older than `before` (all when `None`), newest
    /// first.
    pub async fn versions(
        &self,
        name: &DatasetName,
        before: Option<i64>,
        limit: usize,
    ) -> Result<VersionPage, CatalogError> {
        let head = self.history_head(name)?;
        let head_version = head.manifest.version;
        let below = before.unwrap_or(i64::MAX);
        let mut numbers: Vec<i64> = self
            .store
            .list_versions(name)
            .await
            .map_err(Self::storage)?
            .into_iter()
            .filter(|v| *v < head_version && *v < below)
            .collect();
        if head_version < below {
            numbers.push(head_version);
        }
        numbers.sort_unstable_by(|a, b| b.cmp(a));
        let more = numbers.len() > limit;
        numbers.truncate(limit);
        let store = &self.store;
        let versions: Vec<VersionSummary> = futures_util::stream::iter(numbers)
            .map(|v| {
                let head = &head;
                async move {
                    if v == head_version {
                        return Ok(Some(VersionSummary::of(&head.manifest)));
                    }
                    let kept = store.get(name, Slot::Version(v)).await?;
                    Ok(kept.map(|k| VersionSummary::of(&k.record.manifest)))
                }
            })
            .buffered(VERSION_READS)
            // Expired between the listing and the read.
            .try_filter_map(|v| async move { Ok(v) })
            .try_collect()
            .await
            .map_err(Self::storage)?;
        let next_before = more.then(|| versions.last().map(|v| v.version)).flatten();
        Ok(VersionPage {
            versions,
            next_before,
        })
    }

    /// Version `version` of `name` as it was registered.
    pub async fn version(
        &self,
        name: &DatasetName,
        version: i64,
    ) -> Result<Arc<Manifest>, CatalogError> {
        let head = self.history_head(name)?;
        if version == head.manifest.version {
            return Ok(head.manifest);
        }
        if version > head.manifest.version || version < 1 {
            return Err(no_version(name, version));
        }
        self.kept(name, version)
            .await?
            .map(|r| Arc::new(r.manifest))
            .ok_or_else(|| no_version(name, version))
    }

    async fn kept(&self, name: &DatasetName, version: i64) -> Result<Option<Record>, CatalogError> {
        Ok(self
            .store
            .get(name, Slot::Version(version))
            .await
            .map_err(Self::storage)?
            .map(|k| k.record))
    }

    /// The version of `name` that was current at `at`: the newest kept version registered
    /// at or before `at`, unless the dataset was deleted then. Reads O(log n) records.
    pub async fn as_of(
        &self,
        name: &DatasetName,
        at: Timestamp,
    ) -> Result<Arc<Manifest>, CatalogError> {
        let head = self.history_head(name)?;
        let absent = || CatalogError::NotAt {
            name: name.to_string(),
            at,
        };
        let candidate: Record = if head.manifest.updated_at <= at {
            head.record()
        } else {
            let head_version = head.manifest.version;
            let kept: Vec<i64> = self
                .store
                .list_versions(name)
                .await
                .map_err(Self::storage)?
                .into_iter()
                .filter(|v| *v < head_version)
                .collect();
            // Registration times grow with the version: find the last one at or before `at`.
            let (mut lo, mut hi) = (0, kept.len());
            let mut found = None;
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                match self.kept(name, kept[mid]).await? {
                    Some(r) if r.manifest.updated_at <= at => {
                        found = Some(r);
                        lo = mid + 1;
                    }
                    Some(_) => hi = mid,
                    // Expired meanwhile: what is older is gone too.
                    None => lo = mid + 1,
                }
            }
            found.ok_or_else(absent)?
        };
        let deleted_then = candidate
            .changes
            .iter()
            .filter(|c| c.at <= at)
            .filter_map(|c| match c.kind {
                ChangeKind::Deleted | ChangeKind::Purged => Some(true),
                ChangeKind::Undropped | ChangeKind::Registered => Some(false),
                ChangeKind::Expired => None,
            })
            .next_back()
            .unwrap_or(false);
        if deleted_then {
            return Err(absent());
        }
        Ok(Arc::new(candidate.manifest))
    }

    /// The answer to replay for `request`'s idempotency key, if a register with that key
    /// committed; an error if the key came with another body.
    pub(super) async fn replay(
        &self,
        request: &RegisterRequest,
    ) -> Result<Option<Registered>, CatalogError> {
        let Some(idempotency) = &request.idempotency else {
            return Ok(None);
        };
        let prior = match self.core.feed.by_key(&idempotency.key) {
            KeyState::Committed(prior) => prior,
            KeyState::Unknown => return Ok(None),
            // An earlier register with this key has an unknown outcome; its name is
            // another one (this name was re-read before), so the body differs.
            KeyState::Unresolved { request_sha256 } => {
                if request_sha256 == idempotency.request_sha256 {
                    return Err(Self::storage(StoreError::Unknown(
                        "an earlier register with this idempotency key is unresolved".into(),
                    )));
                }
                return Err(CatalogError::IdempotencyKeyReused {
                    key: idempotency.key.clone(),
                });
            }
        };
        let tag = prior.request.as_ref().expect("keys index tagged changes");
        if tag.request_sha256 != idempotency.request_sha256 {
            return Err(CatalogError::IdempotencyKeyReused {
                key: idempotency.key.clone(),
            });
        }
        let manifest = match self.entry(&prior.name) {
            Some(head) if head.manifest.version == prior.version && !head.is_purged() => {
                head.manifest
            }
            _ => self
                .kept(&prior.name, prior.version)
                .await?
                .map(|r| Arc::new(r.manifest))
                .ok_or_else(|| CatalogError::ReplayGone {
                    key: idempotency.key.clone(),
                })?,
        };
        Ok(Some(Registered {
            existing: tag.existing,
            manifest,
            replayed: true,
        }))
    }
}

fn no_version(name: &DatasetName, version: i64) -> CatalogError {
    CatalogError::NoVersion {
        name: name.to_string(),
        version,
    }
}
