//! A stored record of one dataset version: the manifest, the dataset's state, and the
//! changes that happened while this version was the head (docs/adr/0012).
//!
//! The head object of a dataset and every kept version object hold one record each. A
//! version's record only grows while it is the head (a delete or an undrop appends a
//! change); once a newer version is registered it never changes again. Every change the
//! catalog acknowledged lives in exactly one record, which is what makes the change feed
//! durable without a log of its own.

use std::fmt;

use serde::Serialize;

use crate::{Manifest, Timestamp};

/// What happened to a dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// A register created a version.
    Registered,
    /// The dataset was soft-deleted.
    Deleted,
    /// A soft-deleted dataset came back.
    Undropped,
    /// The dataset and its history were removed.
    Purged,
    /// Versions up to `version` (inclusive) were expired.
    Expired,
}

impl ChangeKind {
    /// Every kind, in declaration order.
    pub const ALL: [Self; 5] = [
        Self::Registered,
        Self::Deleted,
        Self::Undropped,
        Self::Purged,
        Self::Expired,
    ];

    /// The stored and wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Registered => "registered",
            Self::Deleted => "deleted",
            Self::Undropped => "undropped",
            Self::Purged => "purged",
            Self::Expired => "expired",
        }
    }

    /// The kind spelled `s`, if any.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for ChangeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The request a register answered, kept so that a retry with the same
/// `Idempotency-Key` gets the same answer.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct RequestTag {
    /// The client's `Idempotency-Key` (1–255 visible ASCII characters).
    pub idempotency_key: String,
    /// Hex SHA-256 of the request body, to tell a retry from a reuse of the key.
    pub request_sha256: String,
    /// Whether the dataset existed before (the answer's `existing`; 200 rather than 201).
    pub existing: bool,
}

/// One change to a dataset. `seq` orders every change of a catalog.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Change {
    /// Strictly increasing across the catalog and its restarts.
    pub seq: u64,
    /// What happened.
    #[serde(rename = "type")]
    pub kind: ChangeKind,
    /// The version the change concerns: the registered, deleted, undropped or purged head,
    /// or the newest expired version.
    pub version: i64,
    /// When it happened.
    pub at: Timestamp,
    /// For a register sent with an `Idempotency-Key`.
    pub request: Option<RequestTag>,
}

/// Whether a dataset is visible.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum DatasetState {
    /// Readers see it.
    Live,
    /// Soft-deleted at this instant: hidden, history kept, can be undropped.
    Deleted { at: Timestamp },
    /// Purged at this instant: history gone; the record only keeps the purge in the feed
    /// until the feed forgets it.
    Purged { at: Timestamp },
}

/// The stored record of one dataset version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Record {
    /// The version's manifest.
    pub manifest: Manifest,
    /// The dataset's state while this record was (or is) the head.
    pub state: DatasetState,
    /// The changes made while this version was the head, oldest first.
    pub changes: Vec<Change>,
}

impl Record {
    /// A live record with no recorded changes: what a format-1 file decodes to.
    pub fn live(manifest: Manifest) -> Self {
        Self {
            manifest,
            state: DatasetState::Live,
            changes: Vec::new(),
        }
    }

    /// True when the dataset is visible to readers.
    pub fn is_live(&self) -> bool {
        self.state == DatasetState::Live
    }

    /// The highest `seq` this record holds.
    pub fn last_seq(&self) -> Option<u64> {
        self.changes.iter().map(|c| c.seq).max()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn change_kinds_round_trip_their_spelling() {
        for kind in ChangeKind::ALL {
            assert_eq!(ChangeKind::parse(kind.as_str()), Some(kind));
            assert_eq!(
                serde_json::to_value(kind).unwrap(),
                serde_json::Value::from(kind.as_str())
            );
        }
        assert_eq!(ChangeKind::parse("Registered"), None);
    }
}
