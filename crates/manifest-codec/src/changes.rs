//! The change feed's checkpoint: every change the feed still serves, one row each, with
//! the dataset's name and schema fingerprint, and the feed's horizon (changes at or below
//! it may have been forgotten) in the key-value metadata.
//!
//! Like the catalog checkpoint it is a cache of what the records hold: written with it,
//! read at start-up so that rebuilding the feed needs no walk over the history.

use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use bytes::Bytes;
use parquet::file::metadata::KeyValue;

use crate::parquet_codec::{
    change_columns, change_fields, column, contain_panics, read_file, required, write_file_with,
    ChangeColumns,
};
use crate::{Change, DatasetName, DecodeError, EncodeError, SchemaFingerprint};

/// The key-value metadata entry that holds a changes file's format version.
pub const CHANGES_FORMAT_VERSION_KEY: &str = "catalogd.changes.format_version";

/// The key-value metadata entry that holds the feed's horizon.
pub const CHANGES_HORIZON_KEY: &str = "catalogd.changes.horizon";

const CHANGES_FORMAT_VERSION: &str = "1";

/// One change with the dataset it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedEntry {
    /// The dataset's name.
    pub name: DatasetName,
    /// The dataset's schema fingerprint at that change.
    pub schema_fingerprint: SchemaFingerprint,
    /// The change.
    pub change: Change,
}

/// The Arrow schema of a changes file.
pub fn changes_schema() -> SchemaRef {
    let mut fields = vec![
        Field::new("name", DataType::Utf8, false),
        Field::new("schema_fingerprint", DataType::Utf8, false),
    ];
    fields.extend(change_fields().iter().map(|f| f.as_ref().clone()));
    Arc::new(Schema::new(fields))
}

/// Encodes the feed: `entries` in the order given, and its `horizon`.
pub fn encode_changes(entries: &[&FeedEntry], horizon: u64) -> Result<Bytes, EncodeError> {
    let schema = changes_schema();
    let changes: Vec<&Change> = entries.iter().map(|e| &e.change).collect();
    if changes.iter().any(|c| i64::try_from(c.seq).is_err()) {
        return Err(EncodeError::OutOfRange {
            field: "changes.seq",
            value: i64::MAX,
            rule: "must fit in int64",
        });
    }
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(
            entries.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(),
        )),
        Arc::new(StringArray::from(
            entries
                .iter()
                .map(|e| e.schema_fingerprint.as_str())
                .collect::<Vec<_>>(),
        )),
    ];
    columns.extend(change_columns(&changes));
    let batch = RecordBatch::try_new(schema.clone(), columns)
        .map_err(|e| EncodeError::Parquet(parquet::errors::ParquetError::from(e)))?;
    write_file_with(
        schema,
        &batch,
        CHANGES_FORMAT_VERSION_KEY,
        CHANGES_FORMAT_VERSION,
        1024 + entries.len() * 128,
        vec![KeyValue::new(
            CHANGES_HORIZON_KEY.to_owned(),
            horizon.to_string(),
        )],
    )
}

/// Decodes a changes file into its entries (in file order) and its horizon. Never panics.
pub fn decode_changes(bytes: &[u8]) -> Result<(Vec<FeedEntry>, u64), DecodeError> {
    if bytes.is_empty() {
        return Err(DecodeError::Empty);
    }
    contain_panics(|| {
        let horizon = horizon_of(bytes)?;
        let (_, batches) = read_file(
            bytes,
            CHANGES_FORMAT_VERSION_KEY,
            |v| (v == CHANGES_FORMAT_VERSION).then(changes_schema),
            None,
            8192,
        )?;
        let mut entries = Vec::with_capacity(batches.iter().map(RecordBatch::num_rows).sum());
        for batch in &batches {
            let names = column::<StringArray>(batch, "name")?;
            let fingerprints = column::<StringArray>(batch, "schema_fingerprint")?;
            let changes = ChangeColumns::of(|name| batch.column_by_name(name))?;
            for row in 0..batch.num_rows() {
                required(names, row, "name")?;
                required(fingerprints, row, "schema_fingerprint")?;
                let invalid = |column, reason: String| DecodeError::InvalidValue { column, reason };
                entries.push(FeedEntry {
                    name: DatasetName::parse(names.value(row))
                        .map_err(|e| invalid("name", e.to_string()))?,
                    schema_fingerprint: SchemaFingerprint::parse(fingerprints.value(row))
                        .map_err(|e| invalid("schema_fingerprint", e.to_string()))?,
                    change: changes.change(row)?,
                });
            }
        }
        Ok((entries, horizon))
    })
}

fn horizon_of(bytes: &[u8]) -> Result<u64, DecodeError> {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let reader = SerializedFileReader::new(Bytes::copy_from_slice(bytes))
        .map_err(|e| DecodeError::Parquet(e.to_string()))?;
    let raw = reader
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .and_then(|kvs| kvs.iter().find(|kv| kv.key == CHANGES_HORIZON_KEY))
        .and_then(|kv| kv.value.clone())
        .ok_or(DecodeError::MissingFormatVersion {
            key: CHANGES_HORIZON_KEY,
        })?;
    raw.parse().map_err(|_| DecodeError::InvalidValue {
        column: "horizon",
        reason: format!("{raw:?} is not a sequence number"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ChangeKind, RequestTag, Timestamp};

    #[test]
    fn round_trips_entries_and_the_horizon() {
        let entries: Vec<FeedEntry> = (0..50_u8)
            .map(|i| FeedEntry {
                name: DatasetName::parse(&format!("d.n{}", i % 7)).unwrap(),
                schema_fingerprint: SchemaFingerprint::parse("sha256:x").unwrap(),
                change: Change {
                    seq: 100 + u64::from(i),
                    kind: ChangeKind::ALL[usize::from(i) % 5],
                    version: 1 + i64::from(i),
                    at: Timestamp::from_micros(1_700_000_000_000_000 + i64::from(i)).unwrap(),
                    request: (i % 3 == 0).then(|| RequestTag {
                        idempotency_key: format!("k{i}"),
                        request_sha256: "0".repeat(64),
                        existing: i % 2 == 0,
                    }),
                },
            })
            .collect();
        let refs: Vec<&FeedEntry> = entries.iter().collect();
        let (decoded, horizon) = decode_changes(&encode_changes(&refs, 99).unwrap()).unwrap();
        assert_eq!(decoded, entries);
        assert_eq!(horizon, 99);
        let (empty, horizon) = decode_changes(&encode_changes(&[], 7).unwrap()).unwrap();
        assert!(empty.is_empty());
        assert_eq!(horizon, 7);
        assert!(decode_changes(b"garbage").is_err());
        assert!(decode_changes(&crate::encode_checkpoint(&[]).unwrap()).is_err());
    }
}
