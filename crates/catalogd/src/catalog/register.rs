//! The write path (docs/contracts.md, "Register"): lock the name, decide on a copy,
//! conditional put, publish on success.
//!
//! - **One writer per name**: lookup, fingerprint check, write and publish for one name run
//!   under that name's lock; different names never wait for each other.
//! - **Persist, then publish**: a candidate manifest is written with `If-None-Match: *`
//!   (create) or `If-Match: <etag>` (update); only after the store acknowledged it does the
//!   index change. A failed write leaves memory exactly as it was.
//! - **Unknown outcomes**: when the store may or may not have written, the name is marked
//!   stale and re-read from the store before the next write trusts memory.
//! - **Lost races**: a 412 means another process wrote first; re-read and decide again.

use std::sync::{Arc, PoisonError};

use manifest_codec::{dataset_id, DatasetName, Manifest};

use super::index::Entry;
use super::{Catalog, CatalogError, RegisterRequest, Registered};
use crate::store::{StoreError, WriteCondition};

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

impl Catalog {
    /// Creates or updates `request.name` per the register contract.
    pub async fn register(&self, request: RegisterRequest) -> Result<Registered, CatalogError> {
        request.validate()?;
        let name = request.name.clone();
        let _writer = self.core.writers.lock(&name).await;
        let mut current = self.current_for_write(&name).await?;
        for attempt in 0..MAX_ATTEMPTS {
            let (candidate, condition) = match &current {
                None => (self.created(&request), WriteCondition::Absent),
                Some(entry) => (
                    self.updated(&entry.manifest, &request)?,
                    WriteCondition::Matches(entry.etag.clone()),
                ),
            };
            match self.store.put(&candidate, condition).await {
                Ok(etag) => {
                    let manifest = Arc::new(candidate);
                    let entry = Entry {
                        manifest: manifest.clone(),
                        etag,
                    };
                    self.publish(&name, Some(entry));
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
        Err(CatalogError::Contended {
            name: name.to_string(),
            attempts: MAX_ATTEMPTS,
        })
    }

    /// Removes `name`: the manifest object goes first, then the index entry.
    pub async fn delete(&self, name: &DatasetName) -> Result<(), CatalogError> {
        let _writer = self.core.writers.lock(name).await;
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
        Err(CatalogError::Contended {
            name: name.to_string(),
            attempts: MAX_ATTEMPTS,
        })
    }

    fn created(&self, request: &RegisterRequest) -> Manifest {
        let now = self.core.clock.now();
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
            updated_at: self.core.clock.now().max(current.updated_at),
            ..current.clone()
        })
    }

    /// The entry a writer may trust: re-read from the store when an earlier outcome was
    /// unknown.
    async fn current_for_write(&self, name: &DatasetName) -> Result<Option<Entry>, CatalogError> {
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
            self.core
                .stale
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(name.clone());
        }
        match error {
            StoreError::Encode(source) => CatalogError::Encode {
                what: "a manifest",
                source,
            },
            other => CatalogError::Storage(other),
        }
    }
}
