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
}
