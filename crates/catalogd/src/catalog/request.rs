//! A register call, and the checks its newtypes cannot make alone.

use std::collections::HashSet;
use std::sync::Arc;

use manifest_codec::{DatasetName, Manifest, ObjectRef, SchemaFingerprint};

use super::CatalogError;

/// A register call, already parsed into valid newtypes.
#[derive(Debug, Clone)]
pub struct RegisterRequest {
    /// The dataset's name.
    pub name: DatasetName,
    /// Fixed at creation; another one is a conflict.
    pub schema_fingerprint: SchemaFingerprint,
    /// The data objects; replaces the previous list.
    pub objects: Vec<ObjectRef>,
    /// Optional row count.
    pub row_count: Option<i64>,
    /// The client's idempotency key, if it sent one.
    pub idempotency: Option<Idempotency>,
}

/// An `Idempotency-Key` and the request it came with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idempotency {
    /// 1–255 visible ASCII characters.
    pub key: String,
    /// Hex SHA-256 of the request body.
    pub request_sha256: String,
}

impl Idempotency {
    /// Longest key accepted.
    pub const MAX_KEY_LEN: usize = 255;

    /// Checks `key` (1–255 visible ASCII characters) and pairs it with the body's hash.
    pub fn new(key: &str, body: &[u8]) -> Result<Self, CatalogError> {
        if key.is_empty() || key.len() > Self::MAX_KEY_LEN {
            return Err(CatalogError::Invalid(format!(
                "Idempotency-Key is {} bytes: it must be 1 to 255",
                key.len()
            )));
        }
        if let Some(at) = key.bytes().position(|b| !b.is_ascii_graphic()) {
            return Err(CatalogError::Invalid(format!(
                "Idempotency-Key has a character at byte {at} that is not visible ASCII"
            )));
        }
        Ok(Self {
            key: key.to_owned(),
            request_sha256: service_kit::credentials::sha256_hex(body),
        })
    }
}

impl RegisterRequest {
    /// Checks the rules the newtypes cannot: no object in the reserved `_catalog/` prefix,
    /// no key twice, no negative row count.
    pub fn validate(&self) -> Result<(), CatalogError> {
        let mut seen = HashSet::with_capacity(self.objects.len());
        for (i, object) in self.objects.iter().enumerate() {
            if object.key.is_catalog_reserved() {
                return Err(CatalogError::Invalid(format!(
                    "objects[{i}].key {:?} is in the reserved _catalog/ prefix",
                    object.key.as_str()
                )));
            }
            if !seen.insert(object.key.as_str()) {
                return Err(CatalogError::Invalid(format!(
                    "objects[{i}].key {:?} appears more than once",
                    object.key.as_str()
                )));
            }
        }
        if self.row_count.is_some_and(|r| r < 0) {
            return Err(CatalogError::Invalid("row_count is negative".into()));
        }
        Ok(())
    }
}

/// The result of a successful register.
#[derive(Debug, Clone)]
pub struct Registered {
    /// True when the dataset existed before (an update, HTTP 200).
    pub existing: bool,
    /// The manifest now stored and published.
    pub manifest: Arc<Manifest>,
    /// True when this answers a retry with a remembered idempotency key (nothing was
    /// written by this call).
    pub replayed: bool,
}
