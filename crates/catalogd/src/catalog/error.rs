//! Why a catalog operation failed.

use uuid::Uuid;

use crate::store::StoreError;

/// Why a catalog operation failed. Every variant leaves memory as it was.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The request breaks a rule; nothing changed.
    #[error("{0}")]
    Invalid(String),
    /// The name exists with another schema fingerprint; nothing changed.
    #[error("dataset {name} exists with schema fingerprint {existing:?}, not {requested:?}")]
    FingerprintConflict {
        name: String,
        existing: String,
        requested: String,
    },
    /// No dataset of that name.
    #[error("no dataset named {name}")]
    NotFound { name: String },
    /// The dataset has no such version (never had, or it expired).
    #[error("dataset {name} has no version {version}")]
    NoVersion { name: String, version: i64 },
    /// The dataset did not exist (or was deleted) at that instant, or no version current
    /// then is kept.
    #[error("dataset {name} had no version at {at}")]
    NotAt {
        name: String,
        at: manifest_codec::Timestamp,
    },
    /// Undrop of a dataset that is live.
    #[error("dataset {name} is not deleted")]
    NotDeleted { name: String },
    /// The dataset is already purged (purge then only finishes removing its history).
    #[error("dataset already purged")]
    AlreadyPurged,
    /// An idempotency key sent again with another request body; nothing changed.
    #[error("idempotency key {key:?} was used for another request body")]
    IdempotencyKeyReused { key: String },
    /// The version a remembered idempotency key produced has expired, so its answer
    /// cannot be repeated; nothing changed.
    #[error("the version registered with idempotency key {key:?} has expired")]
    ReplayGone { key: String },
    /// No dataset has that id.
    #[error("no dataset with id {id}")]
    IdNotFound { id: Uuid },
    /// Other writers (other catalogd processes on the same store) changed the manifest
    /// on every one of `attempts` tries; nothing was written by this call.
    #[error("gave up on {name} after {attempts} conflicting concurrent writes")]
    Contended { name: String, attempts: u32 },
    /// A manifest or checkpoint could not be encoded (a bug: nothing was written).
    #[error("encoding {what} failed")]
    Encode {
        what: &'static str,
        #[source]
        source: manifest_codec::EncodeError,
    },
    /// The store failed, its outcome is unknown, or what it holds cannot be read; memory
    /// is unchanged. Displayed as the store's own error, which says what happened.
    #[error(transparent)]
    Storage(StoreError),
    /// `verify=true`: objects of the request are missing from storaged or have another
    /// size there (the first [`super::MAX_OFFENDERS`] of `count`); nothing changed.
    #[error("{count} of the listed objects are missing from storaged or have another size there; nothing was changed")]
    ObjectsInvalid {
        offenders: Vec<super::Offender>,
        count: usize,
    },
    /// `verify=true`: storaged could not be asked about the objects; nothing changed.
    #[error("could not check the listed objects in storaged: {0}")]
    Verify(StoreError),
}
