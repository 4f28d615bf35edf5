//! The storage seam: where manifests are persisted (storaged in production).

use std::fmt;

use async_trait::async_trait;
use bytes::Bytes;
use manifest_codec::{DatasetName, Manifest};

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

/// A manifest as stored, with the entity tag that conditional writes refer to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredManifest {
    /// The decoded manifest.
    pub manifest: Manifest,
    /// The store's entity tag of that version.
    pub etag: String,
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
    /// The outcome is unknown (timeout after sending, reset mid-response): the write may
    /// or may not have happened.
    #[error("storage outcome unknown: {0}")]
    Unknown(String),
    /// A stored manifest belongs to another name than its key says.
    #[error("manifest {key} holds the dataset {found:?}, not the one its key names")]
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
            Self::Unknown(_) => "unknown",
            Self::Encode(_) => "encode",
            Self::NameMismatch { .. } | Self::Corrupt { .. } => "corrupt",
        }
    }
}

/// Persists manifests, one per dataset name.
#[async_trait(?Send)]
pub trait ManifestStore: fmt::Debug {
    /// The stored manifest of `name`, if any.
    async fn get(&self, name: &DatasetName) -> Result<Option<StoredManifest>, StoreError>;

    /// Writes `manifest` if `condition` holds; returns the new entity tag. Atomic: on
    /// [`StoreError::PreconditionFailed`] nothing changed.
    async fn put(
        &self,
        manifest: &Manifest,
        condition: WriteCondition,
    ) -> Result<String, StoreError>;

    /// Removes the manifest of `name` if it is still version `etag`.
    async fn delete(&self, name: &DatasetName, etag: &str) -> Result<(), StoreError>;

    /// Every stored manifest's name and entity tag, walking every page of the listing.
    /// Keys under the manifest prefix that are not `<valid name>.parquet` are not
    /// manifests: they come back apart, in `foreign`.
    async fn list(&self) -> Result<Listing, StoreError>;

    /// The stored checkpoint file, if any (see [`manifest_codec::decode_checkpoint`]).
    async fn get_checkpoint(&self) -> Result<Option<Bytes>, StoreError>;

    /// Replaces the checkpoint file (unconditionally: any checkpoint is only a cache).
    async fn put_checkpoint(&self, bytes: Bytes) -> Result<(), StoreError>;
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
    /// The object's entity tag, in the form [`StoredManifest::etag`] has.
    pub etag: String,
}
