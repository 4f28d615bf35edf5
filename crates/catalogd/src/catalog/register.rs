//! The write path (docs/contracts.md, "Register" and "History"): lock the name, decide on
//! a copy, conditional put, publish on success.
//!
//! - **One writer per name**: lookup, checks, writes and publish for one name run under
//!   that name's lock; different names never wait for each other.
//! - **Persist, then publish**: a candidate head is written with `If-None-Match: *`
//!   (create) or `If-Match: <etag>` (update); only after the store acknowledged it does the
//!   index change. A failed write leaves memory exactly as it was.
//! - **Versions**: before a register replaces head version *n*, the head's record is kept
//!   as version *n* (create-only), so a crash between the two writes leaves the old head
//!   (whose version is readable from the head itself) or the new one with every earlier
//!   version kept; never a head without its history.
//! - **Unknown outcomes**: when the store may or may not have written, the name is marked
//!   stale and re-read from the store before the next write trusts memory.
//! - **Lost races**: a 412 means another process wrote first; re-read and decide again.

use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};

use manifest_codec::{
    dataset_id, Change, ChangeKind, DatasetName, DatasetState, Manifest, Record, RequestTag,
};

use super::index::Entry;
use super::{Catalog, CatalogError, RegisterRequest, Registered};
use crate::store::{Slot, StoreError, WriteCondition};

/// How often a write is retried after losing a race (412) before giving up.
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

/// What a register will write, decided from the current head.
struct Plan {
    manifest: Manifest,
    condition: WriteCondition,
    existing: bool,
    /// The head to keep as a version first.
    keep: Option<Record>,
    /// A purged head: its leftover versions go before the name starts again at 1.
    clear_versions: bool,
}

impl Catalog {
    /// Creates or updates `request.name` per the register contract. With an idempotency
    /// key, a retry of a register that committed answers what it answered.
    pub async fn register(&self, request: RegisterRequest) -> Result<Registered, CatalogError> {
        request.validate()?;
        let name = request.name.clone();
        let _writer = self.core.writers.lock(&name).await;
        let mut current = self.current_for_write(&name).await?;
        if let Some(replayed) = self.replay(&request).await? {
            return Ok(replayed);
        }
        for attempt in 0..MAX_ATTEMPTS {
            let mut plan = self.plan(current.as_ref(), &request)?;
            if !self.core.keeps_versions.load(Ordering::Acquire) {
                plan.keep = None;
            }
            if let Some(keep) = &plan.keep {
                match self.keep_version(keep).await {
                    Ok(()) => {}
                    Err(StoreError::PreconditionFailed) => {
                        back_off(attempt).await;
                        current = self.reload(&name).await?;
                        continue;
                    }
                    Err(e) => return Err(Self::storage(e)),
                }
            }
            if plan.clear_versions {
                self.clear_versions(&name).await?;
            }
            let now = plan.manifest.updated_at;
            let seq = self
                .core
                .feed
                .allocate(&name, now, request.idempotency.as_ref());
            let version = plan.manifest.version;
            let record = Record {
                manifest: plan.manifest,
                state: DatasetState::Live,
                changes: vec![Change {
                    seq,
                    kind: ChangeKind::Registered,
                    version,
                    at: now,
                    request: request.idempotency.as_ref().map(|i| RequestTag {
                        idempotency_key: i.key.clone(),
                        request_sha256: i.request_sha256.clone(),
                        existing: plan.existing,
                    }),
                }],
            };
            match self.store.put(&record, Slot::Head, plan.condition).await {
                Ok(etag) => {
                    let entry = Entry::new(record, etag);
                    let manifest = entry.manifest.clone();
                    self.publish(&name, Some(entry));
                    return Ok(Registered {
                        existing: plan.existing,
                        manifest,
                        replayed: false,
                    });
                }
                Err(StoreError::PreconditionFailed) => {
                    self.core.feed.release(seq);
                    back_off(attempt).await;
                    current = self.reload(&name).await?;
                }
                Err(e) => return Err(self.failed(&name, e, seq)),
            }
        }
        Err(CatalogError::Contended {
            name: name.to_string(),
            attempts: MAX_ATTEMPTS,
        })
    }

    /// Soft-deletes `name`: readers no longer see it; its history stays.
    pub async fn delete(&self, name: &DatasetName) -> Result<(), CatalogError> {
        self.change_state(name, |entry, at, seq| {
            if !entry.is_live() {
                return Err(not_found(name));
            }
            let mut record = entry.record();
            record.state = DatasetState::Deleted { at };
            record
                .changes
                .push(change(seq, ChangeKind::Deleted, &record, at));
            Ok(record)
        })
        .await
        .map(drop)
    }

    /// Brings a soft-deleted `name` back as it was.
    pub async fn undrop(&self, name: &DatasetName) -> Result<Arc<Manifest>, CatalogError> {
        self.change_state(name, |entry, at, seq| match entry.state {
            DatasetState::Live => Err(CatalogError::NotDeleted {
                name: name.to_string(),
            }),
            DatasetState::Purged { .. } => Err(not_found(name)),
            DatasetState::Deleted { .. } => {
                let mut record = entry.record();
                record.state = DatasetState::Live;
                record
                    .changes
                    .push(change(seq, ChangeKind::Undropped, &record, at));
                Ok(record)
            }
        })
        .await
    }

    /// Removes `name` (live or deleted) and its whole history. The head becomes a purged
    /// record (which keeps the purge in the feed until the feed forgets it), a checkpoint
    /// saves the feed (the kept versions hold changes it still serves), then every kept
    /// version goes. Purging a purged name finishes a purge that was interrupted.
    pub async fn purge(&self, name: &DatasetName) -> Result<(), CatalogError> {
        let result = self
            .change_state(name, |entry, at, seq| {
                if entry.is_purged() {
                    return Err(CatalogError::AlreadyPurged);
                }
                let mut record = entry.record();
                record.state = DatasetState::Purged { at };
                record.manifest.objects.clear();
                record.manifest.row_count = None;
                record
                    .changes
                    .push(change(seq, ChangeKind::Purged, &record, at));
                Ok(record)
            })
            .await;
        match result {
            Ok(_) | Err(CatalogError::AlreadyPurged) => {
                self.checkpoint_if_changed().await?;
                let _writer = self.core.writers.lock(name).await;
                self.clear_versions(name).await
            }
            Err(e) => Err(e),
        }
    }

    /// Expires the kept versions of `name` older than `before` (never the head), recording
    /// the expiry in the feed and saving the feed in a checkpoint first (the versions hold
    /// changes it still serves). Returns how many versions went.
    pub async fn expire(&self, name: &DatasetName, before: i64) -> Result<usize, CatalogError> {
        let doomed: Vec<i64> = {
            let head = self
                .entry(name)
                .filter(|e| !e.is_purged())
                .ok_or_else(|| not_found(name))?;
            let limit = before.min(head.manifest.version);
            self.store
                .list_versions(name)
                .await
                .map_err(Self::storage)?
                .into_iter()
                .filter(|v| *v < limit)
                .collect()
        };
        let Some(newest) = doomed.iter().max().copied() else {
            return Ok(0);
        };
        self.change_state(name, |entry, at, seq| {
            if entry.is_purged() {
                return Err(not_found(name));
            }
            let mut record = entry.record();
            record.changes.push(Change {
                seq,
                kind: ChangeKind::Expired,
                version: newest,
                at,
                request: None,
            });
            Ok(record)
        })
        .await?;
        self.checkpoint_if_changed().await?;
        for version in &doomed {
            self.store
                .delete(name, Slot::Version(*version), None)
                .await
                .map_err(Self::storage)?;
        }
        Ok(doomed.len())
    }

    /// Rewrites the head of `name` as `change` makes it from the current entry (under the
    /// name's lock, conditional on the entry's tag, retried on lost races), and publishes
    /// it. `change` gets the entry, the instant and the change's sequence number.
    async fn change_state(
        &self,
        name: &DatasetName,
        change: impl Fn(&Entry, manifest_codec::Timestamp, u64) -> Result<Record, CatalogError>,
    ) -> Result<Arc<Manifest>, CatalogError> {
        let _writer = self.core.writers.lock(name).await;
        let mut current = self.current_for_write(name).await?;
        for attempt in 0..MAX_ATTEMPTS {
            let Some(entry) = &current else {
                return Err(not_found(name));
            };
            let at = self.core.clock.now().max(entry.manifest.updated_at);
            let seq = self.core.feed.allocate(name, at, None);
            let record = match change(entry, at, seq) {
                Ok(record) => record,
                Err(e) => {
                    self.core.feed.release(seq);
                    return Err(e);
                }
            };
            let condition = WriteCondition::Matches(entry.etag.clone());
            match self.store.put(&record, Slot::Head, condition).await {
                Ok(etag) => {
                    let entry = Entry::new(record, etag);
                    let manifest = entry.manifest.clone();
                    self.publish(name, Some(entry));
                    return Ok(manifest);
                }
                Err(StoreError::PreconditionFailed) => {
                    self.core.feed.release(seq);
                    back_off(attempt).await;
                    current = self.reload(name).await?;
                }
                Err(e) => return Err(self.failed(name, e, seq)),
            }
        }
        Err(CatalogError::Contended {
            name: name.to_string(),
            attempts: MAX_ATTEMPTS,
        })
    }

    fn plan(
        &self,
        current: Option<&Entry>,
        request: &RegisterRequest,
    ) -> Result<Plan, CatalogError> {
        let now = self.core.clock.now();
        let fresh = |version: i64, condition, keep, clear_versions| Plan {
            manifest: Manifest {
                dataset_id: dataset_id(&request.name),
                name: request.name.clone(),
                schema_fingerprint: request.schema_fingerprint.clone(),
                version,
                objects: request.objects.clone(),
                row_count: request.row_count,
                created_at: now,
                updated_at: now,
            },
            condition,
            existing: false,
            keep,
            clear_versions,
        };
        let Some(entry) = current else {
            return Ok(fresh(1, WriteCondition::Absent, None, false));
        };
        let head = &entry.manifest;
        let condition = WriteCondition::Matches(entry.etag.clone());
        let next = head.version.checked_add(1).ok_or_else(|| {
            CatalogError::Invalid(format!("dataset {} is at the last version", request.name))
        })?;
        match entry.state {
            // A purged name starts again: its history is gone.
            DatasetState::Purged { .. } => Ok(fresh(1, condition, None, true)),
            // A deleted name is registered anew; its history goes on.
            DatasetState::Deleted { .. } => {
                let mut plan = fresh(next, condition, Some(entry.record()), false);
                plan.manifest.updated_at = now.max(head.updated_at);
                plan.manifest.created_at = plan.manifest.updated_at;
                Ok(plan)
            }
            DatasetState::Live => {
                if head.schema_fingerprint != request.schema_fingerprint {
                    return Err(CatalogError::FingerprintConflict {
                        name: request.name.to_string(),
                        existing: head.schema_fingerprint.to_string(),
                        requested: request.schema_fingerprint.to_string(),
                    });
                }
                Ok(Plan {
                    manifest: Manifest {
                        version: next,
                        objects: request.objects.clone(),
                        row_count: request.row_count,
                        updated_at: now.max(head.updated_at),
                        ..(**head).clone()
                    },
                    condition,
                    existing: true,
                    keep: Some(entry.record()),
                    clear_versions: false,
                })
            }
        }
    }

    /// Keeps `head` as its version, create-only. When that version is already kept (an
    /// earlier attempt, or another process), the record holding more changes stays: a
    /// version's record only grows while it is the head, so the fuller one is the later.
    async fn keep_version(&self, head: &Record) -> Result<(), StoreError> {
        let slot = Slot::Version(head.manifest.version);
        match self.store.put(head, slot, WriteCondition::Absent).await {
            Ok(_) => Ok(()),
            Err(StoreError::PreconditionFailed) => {
                let name = &head.manifest.name;
                match self.store.get(name, slot).await? {
                    Some(kept) if kept.record.last_seq() >= head.last_seq() => Ok(()),
                    Some(kept) => self
                        .store
                        .put(head, slot, WriteCondition::Matches(kept.etag))
                        .await
                        .map(drop),
                    None => Err(StoreError::PreconditionFailed),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Removes every kept version of `name`.
    async fn clear_versions(&self, name: &DatasetName) -> Result<(), CatalogError> {
        let versions = self
            .store
            .list_versions(name)
            .await
            .map_err(Self::storage)?;
        for version in versions {
            self.store
                .delete(name, Slot::Version(version), None)
                .await
                .map_err(Self::storage)?;
        }
        Ok(())
    }

    /// The entry a writer may trust: re-read from the store when an earlier outcome was
    /// unknown.
    pub(super) async fn current_for_write(
        &self,
        name: &DatasetName,
    ) -> Result<Option<Entry>, CatalogError> {
        let stale = self
            .core
            .stale
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(name);
        if stale {
            let entry = self.reload(name).await?;
            self.core
                .stale
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(name);
            return Ok(entry);
        }
        Ok(self.entry(name))
    }

    /// Reads `name`'s head from the store and publishes what is there.
    pub(super) async fn reload(&self, name: &DatasetName) -> Result<Option<Entry>, CatalogError> {
        match self.store.get(name, Slot::Head).await {
            Ok(stored) => {
                let entry = stored.map(Entry::from);
                self.publish(name, entry.clone());
                Ok(entry)
            }
            Err(e) => Err(self.failed_read(name, e)),
        }
    }

    /// Re-reads every name whose last write had an unknown outcome, so that the feed
    /// resolves it even if nobody writes the name again. Errors are left for the next try.
    pub async fn resolve_stale(&self) {
        let names: Vec<DatasetName> = self
            .core
            .stale
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .cloned()
            .collect();
        for name in names {
            let _writer = self.core.writers.lock(&name).await;
            if self.current_for_write(&name).await.is_err() {
                return;
            }
        }
    }

    /// A failed write of change `seq`: certainly not written → the number is released;
    /// unknown → it stays pending and the name stale until re-read.
    fn failed(&self, name: &DatasetName, error: StoreError, seq: u64) -> CatalogError {
        if error.is_certainly_not_written() {
            self.core.feed.release(seq);
        } else {
            tracing::warn!(dataset = %name, error = %error, "storage outcome unknown; will re-read before the next write");
            self.mark_stale(name);
        }
        Self::storage(error)
    }

    /// A failed re-read: the name stays stale while a write of it is unresolved.
    fn failed_read(&self, name: &DatasetName, error: StoreError) -> CatalogError {
        if self.core.feed.has_pending(name) {
            self.mark_stale(name);
        }
        Self::storage(error)
    }

    fn mark_stale(&self, name: &DatasetName) {
        self.core
            .stale
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.clone());
    }

    pub(super) fn storage(error: StoreError) -> CatalogError {
        match error {
            StoreError::Encode(source) => CatalogError::Encode {
                what: "a manifest",
                source,
            },
            other => CatalogError::Storage(other),
        }
    }
}

fn change(seq: u64, kind: ChangeKind, record: &Record, at: manifest_codec::Timestamp) -> Change {
    Change {
        seq,
        kind,
        version: record.manifest.version,
        at,
        request: None,
    }
}

pub(super) fn not_found(name: &DatasetName) -> CatalogError {
    CatalogError::NotFound {
        name: name.to_string(),
    }
}
