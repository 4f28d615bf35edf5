//! The shared vocabulary of catalogd and storaged: dataset names and ids, object keys, the
//! manifest model and its one-row Parquet encoding. No HTTP, no async runtime.
//!
//! # Why a crate of its own
//!
//! Three contracts are load-bearing and must be identical wherever they are applied:
//!
//! - **Identity**: a dataset's id is UUIDv5 of its name ([`dataset_id`]). Every id ever
//!   issued depends on the namespace constant and on the name having exactly one spelling,
//!   which is why [`DatasetName::parse`] rejects rather than normalises.
//! - **Keys**: catalogd validates a dataset's object list with the very rules storaged
//!   enforces ([`ObjectKey::parse`]), so a register can never point at an unstorable key.
//! - **The manifest file**: one Parquet row that any Parquet reader can open; [`decode`]
//!   treats every file as hostile and never panics.

mod changes;
mod checkpoint;
mod error;
pub mod fingerprint;
mod id;
pub mod key;
pub mod layout;
pub mod manifest;
pub mod name;
mod parquet_codec;
pub mod record;

pub use changes::{
    changes_schema, decode_changes, encode_changes, FeedEntry, CHANGES_FORMAT_VERSION_KEY,
    CHANGES_HORIZON_KEY,
};
pub use checkpoint::{
    checkpoint_schema, decode_checkpoint, encode_checkpoint, CheckpointEntry,
    CHECKPOINT_FORMAT_VERSION_KEY,
};
pub use error::{DecodeError, EncodeError, FingerprintError, KeyError, NameError};
pub use fingerprint::{
    canonical_schema, decode_footer, footer_metadata_len, read_footer, schema_fingerprint,
    FooterInfo, SchemaError, FOOTER_TAIL_LEN,
};
pub use id::{dataset_id, DATASET_NAMESPACE};
pub use key::ObjectKey;
pub use layout::{manifest_key, name_from_manifest_key};
pub use manifest::{Manifest, ObjectRef, ObjectSize, SchemaFingerprint, Timestamp};
pub use name::DatasetName;
pub use parquet_codec::{
    decode, decode_record, encode, encode_record, manifest_schema, record_schema, FORMAT_VERSION,
    FORMAT_VERSION_KEY, MANIFEST_FORMAT_VERSION,
};
pub use record::{Change, ChangeKind, DatasetState, Record, RequestTag};
