//! The manifest file: one Parquet file, exactly one row (docs/contracts.md §5).
//!
//! Decoding never trusts the file. Cheap structural checks (magic, footer, format version,
//! row count, column types) run before any page is read, every decoded array is validated
//! in full before a value is taken from it, and the whole decode runs under `catch_unwind`
//! because the Parquet reader still panics on some corrupt inputs.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
use bytes::Bytes;

use crate::error::{DecodeError, EncodeError};
use crate::{Manifest, Record};

/// The key-value metadata entry that holds the format version.
pub const FORMAT_VERSION_KEY: &str = "catalogd.manifest.format_version";

/// The format of the files catalogd stores: a [`Record`] (the manifest's columns, then
/// `deleted_at`, `purged_at` and `changes`). Older versions keep decoding forever.
pub const FORMAT_VERSION: &str = "2";

/// The format of a manifest alone (its columns only), as [`encode`] writes it for readers
/// and as release 0.1 stored it.
pub const MANIFEST_FORMAT_VERSION: &str = "1";

mod read;
mod record;
mod write;

pub(crate) use read::{column, read_file, required, Columns};
pub(crate) use record::{
    change_columns, change_fields, check_record, record_columns, record_fields, ChangeColumns,
    RecordColumns,
};
pub(crate) use write::{check_invariants, manifest_batch, write_file, write_file_with};

const PARQUET_MAGIC: &[u8; 4] = b"PAR1";
const UTC: &str = "UTC";

/// The Arrow schema of a manifest file.
pub fn manifest_schema() -> SchemaRef {
    let timestamp = DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into()));
    Arc::new(Schema::new(vec![
        Field::new("dataset_id", DataType::Utf8, false),
        Field::new("name", DataType::Utf8, false),
        Field::new("schema_fingerprint", DataType::Utf8, false),
        Field::new("version", DataType::Int64, false),
        Field::new("objects", objects_type(), false),
        Field::new("row_count", DataType::Int64, true),
        Field::new("created_at", timestamp.clone(), false),
        Field::new("updated_at", timestamp, false),
    ]))
}

/// The Arrow schema of a record file (format 2): the manifest's columns, then the
/// record's.
pub fn record_schema() -> SchemaRef {
    let mut fields: Vec<Field> = manifest_schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.extend(record_fields());
    Arc::new(Schema::new(fields))
}

/// The schema a file of format `version` must have, for the files that hold manifests.
pub(crate) fn schema_of_version(version: &str) -> Option<SchemaRef> {
    match version {
        MANIFEST_FORMAT_VERSION => Some(manifest_schema()),
        FORMAT_VERSION => Some(record_schema()),
        _ => None,
    }
}

fn object_fields() -> Fields {
    Fields::from(vec![
        Field::new("key", DataType::Utf8, false),
        Field::new("size", DataType::Int64, false),
    ])
}

fn objects_type() -> DataType {
    DataType::List(Arc::new(Field::new(
        "item",
        DataType::Struct(object_fields()),
        false,
    )))
}

/// Encodes `manifest` alone (format 1) as a one-row, snappy-compressed Parquet file: what
/// a reader of a dataset is given.
///
/// Fails only for a manifest that would not decode: an id that is not derived from the
/// name, a version below 1, or a negative row count (sizes are `ObjectSize`s).
pub fn encode(manifest: &Manifest) -> Result<Bytes, EncodeError> {
    check_invariants(manifest)?;
    let schema = manifest_schema();
    let batch = manifest_batch(&schema, &[manifest], Vec::new())?;
    write_file(
        schema,
        &batch,
        FORMAT_VERSION_KEY,
        MANIFEST_FORMAT_VERSION,
        1024 + manifest.objects.len() * 48,
    )
}

/// Encodes `record` (format 2) as a one-row Parquet file: what catalogd stores.
pub fn encode_record(record: &Record) -> Result<Bytes, EncodeError> {
    check_invariants(&record.manifest)?;
    check_record(record)?;
    let schema = record_schema();
    let batch = manifest_batch(&schema, &[&record.manifest], record_columns(&[record]))?;
    write_file(
        schema,
        &batch,
        FORMAT_VERSION_KEY,
        FORMAT_VERSION,
        1536 + record.manifest.objects.len() * 48 + record.changes.len() * 64,
    )
}

/// Decodes the manifest of a manifest file of any format version, checking every rule of
/// the format and the model.
///
/// Never panics: a panic inside the Parquet reader becomes [`DecodeError::Panicked`].
pub fn decode(bytes: &[u8]) -> Result<Manifest, DecodeError> {
    decode_record(bytes).map(|r| r.manifest)
}

/// Decodes a record; a format-1 file is a live record with no recorded changes.
///
/// Never panics: a panic inside the Parquet reader becomes [`DecodeError::Panicked`].
pub fn decode_record(bytes: &[u8]) -> Result<Record, DecodeError> {
    if bytes.is_empty() {
        return Err(DecodeError::Empty);
    }
    contain_panics(|| decode_unguarded(bytes))
}

/// Runs `f`, turning a panic into [`DecodeError::Panicked`].
pub(crate) fn contain_panics<T>(
    f: impl FnOnce() -> Result<T, DecodeError>,
) -> Result<T, DecodeError> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|payload| {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic payload".to_owned());
        Err(DecodeError::Panicked(message))
    })
}

fn decode_unguarded(bytes: &[u8]) -> Result<Record, DecodeError> {
    let (version, batches) = read_file(bytes, FORMAT_VERSION_KEY, schema_of_version, Some(1), 2)?;
    let total: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let batch = match batches.into_iter().find(|b| b.num_rows() > 0) {
        Some(batch) if total == 1 => batch,
        _ => {
            return Err(DecodeError::RowCount {
                rows: i64::try_from(total).unwrap_or(i64::MAX),
            })
        }
    };
    let manifest = Columns::of(&batch)?.manifest(0)?;
    if version == MANIFEST_FORMAT_VERSION {
        return Ok(Record::live(manifest));
    }
    let (state, changes) = RecordColumns::of(&batch)?.state_and_changes(0)?;
    Ok(Record {
        manifest,
        state,
        changes,
    })
}

#[cfg(test)]
mod tests {
    use super::read::same_shape;
    use super::*;

    #[test]
    fn contain_panics_turns_a_panic_into_an_error() {
        let result: Result<(), _> = contain_panics(|| panic!("reader exploded at offset {}", 7));
        match result {
            Err(DecodeError::Panicked(msg)) => assert_eq!(msg, "reader exploded at offset 7"),
            other => panic!("expected Panicked, got {other:?}"),
        }
        let result: Result<(), _> = contain_panics(|| std::panic::panic_any(42_u8));
        assert!(matches!(result, Err(DecodeError::Panicked(_))));
        assert_eq!(contain_panics(|| Ok(5)).unwrap(), 5);
    }

    #[test]
    fn same_shape_ignores_nullability_and_item_names_only() {
        let pyarrow_style = DataType::List(Arc::new(Field::new(
            "element",
            DataType::Struct(Fields::from(vec![
                Field::new("key", DataType::Utf8, true),
                Field::new("size", DataType::Int64, true),
            ])),
            true,
        )));
        assert!(same_shape(&pyarrow_style, &objects_type()));
        let renamed = DataType::List(Arc::new(Field::new(
            "item",
            DataType::Struct(Fields::from(vec![
                Field::new("path", DataType::Utf8, false),
                Field::new("size", DataType::Int64, false),
            ])),
            false,
        )));
        assert!(!same_shape(&renamed, &objects_type()));
        let millis = DataType::Timestamp(TimeUnit::Millisecond, Some(UTC.into()));
        let micros = DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into()));
        let naive = DataType::Timestamp(TimeUnit::Microsecond, None);
        assert!(!same_shape(&millis, &micros));
        assert!(!same_shape(&naive, &micros));
        assert!(same_shape(&micros, &micros));
    }
}
