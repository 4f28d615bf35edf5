//! The storage seam: where manifests are persisted (storaged in production).

use std::fmt;

use async_trait::async_trait;
use bytes::Bytes;
use manifest_codec::layout::{CHANGES_CHECKPOINT_KEY, CHECKPOINT_KEY};
use manifest_codec::{DatasetName, ObjectKey, Record};

mod http;
mod instrumented;
#[cfg(test)]
mod memory;
#[cfg(test)]
mod tests;

pub use http::HttpManifestStore;
pub use instrumented::Instrumented;
#[cfg(test)]
pub use memory::{Fault, MemoryStore};

/// A record as stored, with the entity tag that conditional writes refer to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    /// The decoded record.
    pub record: Record,
    /// The store's entity tag of that object.
    pub etag: String,
}

/// Which record of a dataset: its head, or one of its kept versions
/// (docs/contracts.md, "History").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// `_catalog/manifests/<name>.parquet`: the current state, which rehydration reads.
    Head,
    /// `_catalog/versions/<name>/<version>.parquet`: an earlier version, never rewritten
    /// once a newer one is registered.
    Version(i64),
}

impl Slot {
    /// The object key of this slot of `name`.
    pub fn key(self, name: &DatasetName) -> ObjectKey {
        match self {
            Self::Head => manifest_codec::manifest_key(name),
            Self::Version(v) => manifest_codec::layout::version_key(name, v),
        }
    }
}

/// The catalog's own files beside the records: caches, never the truth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatalogFile {
    /// Every head record with its entity tag.
    Checkpoint,
    /// The change feed up to the checkpoint.
    Changes,
}

impl CatalogFile {
    /// The object key of the file.
    pub fn key(self) -> &'static str {
        match self {
            Self::Checkpoint => CHECKPOINT_KEY,
            Self::Changes => CHANGES_CHECKPOINT_KEY,
        }
    }
}

/// What a write requires of the current state, checked atomically by the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteCondition {
    /// `If-None-Match: *`: the name has no manifest.
    Absent,
    /// `If-Match: <etag>`: the manifest is still this version.
    Matches(String),
}

/// Why a store call failed, and whether the write may still have happened.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The condition did not hold: another writer got there first. Nothing was written.
    #[error("precondition failed: another writer changed the manifest")]
    PreconditionFailed,
    /// storaged refused or failed before writing (connection refused, an answer that
    /// proves nothing was stored). Nothing was written.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// storaged refused catalogd's credential for this one key (403): the credential's
    /// scopes do not cover it. Nothing was written.
    #[error("storaged refused catalogd's credential for {0} (403 Forbidden): its scopes do not cover the key")]
    Forbidden(String),
    /// The outcome is unknown (timeout after sending, reset mid-response): the write may
    /// or may not have happened.
    #[error("storage outcome unknown: {0}")]
    Unknown(String),
    /// A stored record belongs to another name or version than its key says.
    #[error("manifest {key} holds {found}, not the dataset version its key names")]
    NameMismatch { key: String, found: String },
    /// The manifest could not be encoded, so nothing was sent (a bug, not storaged's
    /// fault).
    #[error("the manifest cannot be encoded")]
    Encode(#[source] manifest_codec::EncodeError),
    /// A stored manifest could not be decoded.
    #[error("manifest {key} cannot be decoded")]
    Corrupt {
        key: String,
        #[source]
        source: manifest_codec::DecodeError,
    },
}

impl StoreError {
    /// True when the failed call certainly changed nothing in the store; false when it may
    /// have (the caller must then re-read before trusting its cache).
    pub fn is_certainly_not_written(&self) -> bool {
        match self {
            Self::PreconditionFailed
            | Self::Unavailable(_)
            | Self::Forbidden(_)
            | Self::NameMismatch { .. }
            | Self::Encode(_)
            | Self::Corrupt { .. } => true,
            Self::Unknown(_) => false,
        }
    }

    /// A stable label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::PreconditionFailed => "precondition_failed",
            Self::Unavailable(_) => "unavailable",
            Self::Forbidden(_) => "forbidden",
            Self::Unknown(_) => "unknown",
            Self::Encode(_) => "encode",
            Self::NameMismatch { .. } | Self::Corrupt { .. } => "corrupt",
        }
    }
}

/// Persists records: one head per dataset name, plus its kept versions.
#[async_trait(?Send)]
pub trait ManifestStore: fmt::Debug {
    /// The stored record in `slot` of `name`, if any.
    async fn get(&self, name: &DatasetName, slot: Slot)
        -> Result<Option<StoredRecord>, StoreError>;

    /// Writes `record` into `slot` of its dataset if `condition` holds; returns the new
    /// entity tag. Atomic: on [`StoreError::PreconditionFailed`] nothing changed. A
    /// [`Slot::Version`] must name the record's own version.
    async fn put(
        &self,
        record: &Record,
        slot: Slot,
        condition: WriteCondition,
    ) -> Result<String, StoreError>;

    /// Removes `slot` of `name`: only if it is still `etag` when one is given. Removing
    /// what is not there succeeds.
    async fn delete(
        &self,
        name: &DatasetName,
        slot: Slot,
        etag: Option<&str>,
    ) -> Result<(), StoreError>;

    /// Every stored head's name and entity tag, walking every page of the listing.
    /// Keys under the manifest prefix that are not `<valid name>.parquet` are not
    /// manifests: they come back apart, in `foreign`.
    async fn list(&self) -> Result<Listing, StoreError>;

    /// The kept versions of `name`, oldest first, walking every page.
    async fn list_versions(&self, name: &DatasetName) -> Result<Vec<i64>, StoreError>;

    /// The stored `file`, if any.
    async fn get_file(&self, file: CatalogFile) -> Result<Option<Bytes>, StoreError>;

    /// Replaces `file` (unconditionally: it is only a cache).
    async fn put_file(&self, file: CatalogFile, bytes: Bytes) -> Result<(), StoreError>;

    /// The size of the data object `key` (any key, not only the catalog's), `None` when
    /// there is none: what a register with `verify=true` checks. [`StoreError::Forbidden`]
    /// when catalogd's credential may not read that key.
    async fn object_size(&self, key: &ObjectKey) -> Result<Option<u64>, StoreError>;
}

/// Checks that the record read from `key` is the dataset version the key names.
pub(crate) fn check_slot(
    key: &ObjectKey,
    name: &DatasetName,
    slot: Slot,
    record: &Record,
) -> Result<(), StoreError> {
    let manifest = &record.manifest;
    let fits = manifest.name == *name
        && match slot {
            Slot::Head => true,
            Slot::Version(v) => manifest.version == v,
        };
    if fits {
        Ok(())
    } else {
        Err(StoreError::NameMismatch {
            key: key.to_string(),
            found: format!("{} version {}", manifest.name, manifest.version),
        })
    }
}

/// What the manifest prefix holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    /// The manifests, by key order.
    pub manifests: Vec<ListedManifest>,
    /// Keys under the prefix that are not `<valid name>.parquet` (a stray file some writer
    /// put there): never read, never a reason to stop.
    pub foreign: Vec<String>,
}

/// A manifest object as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedManifest {
    /// The dataset the key names.
    pub name: DatasetName,
    /// The object's entity tag, in the form [`StoredRecord::etag`] has.
    pub etag: String,
}
