//! The catalog checkpoint: every head record of a catalog in one Parquet file, one row
//! each, with the storaged ETag of the head object it was read from.
//!
//! A checkpoint is a cache, never the truth: catalogd uses a row only when the listing of
//! the manifest objects shows the same ETag (ETags are content hashes, so the same ETag
//! means the same bytes), and fetches every other manifest itself. Its columns are the
//! record's plus `etag` (format 1, written by release 0.1: the manifest's plus `etag`); its
//! format version lives under its own key-value metadata key, so a checkpoint never decodes
//! as a manifest nor a manifest as a checkpoint.

use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use bytes::Bytes;

use crate::parquet_codec::{
    check_invariants, check_record, column, contain_panics, manifest_batch, manifest_schema,
    read_file, record_columns, record_schema, required, write_file, Columns, RecordColumns,
    FORMAT_VERSION, MANIFEST_FORMAT_VERSION,
};
use crate::{DecodeError, EncodeError, Record};

/// The key-value metadata entry that holds a checkpoint's format version.
pub const CHECKPOINT_FORMAT_VERSION_KEY: &str = "catalogd.checkpoint.format_version";

/// One row of a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointEntry {
    /// The head record.
    pub record: Record,
    /// The ETag of the head object it was read from or written as.
    pub etag: String,
}

fn with_etag(base: &SchemaRef) -> SchemaRef {
    let mut fields: Vec<Field> = base.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(Field::new("etag", DataType::Utf8, false));
    Arc::new(Schema::new(fields))
}

/// The Arrow schema of a checkpoint: the record's columns, then `etag`.
pub fn checkpoint_schema() -> SchemaRef {
    with_etag(&record_schema())
}

fn schema_of_version(version: &str) -> Option<SchemaRef> {
    match version {
        MANIFEST_FORMAT_VERSION => Some(with_etag(&manifest_schema())),
        FORMAT_VERSION => Some(checkpoint_schema()),
        _ => None,
    }
}

/// Encodes `entries` as one Parquet file, in the order given.
pub fn encode_checkpoint(entries: &[(&Record, &str)]) -> Result<Bytes, EncodeError> {
    for (record, _) in entries {
        check_invariants(&record.manifest)?;
        check_record(record)?;
    }
    let schema = checkpoint_schema();
    let records: Vec<&Record> = entries.iter().map(|(r, _)| *r).collect();
    let manifests: Vec<_> = records.iter().map(|r| &r.manifest).collect();
    let etags: ArrayRef = Arc::new(StringArray::from(
        entries.iter().map(|(_, e)| *e).collect::<Vec<_>>(),
    ));
    let mut extra = record_columns(&records);
    extra.push(etags);
    let batch = manifest_batch(&schema, &manifests, extra)?;
    let capacity = 1024
        + records
            .iter()
            .map(|r| 128 + r.manifest.objects.len() * 48 + r.changes.len() * 64)
            .sum::<usize>();
    write_file(
        schema,
        &batch,
        CHECKPOINT_FORMAT_VERSION_KEY,
        FORMAT_VERSION,
        capacity,
    )
}

/// Decodes a checkpoint, checking every row against the model as a manifest is checked.
/// Never panics.
pub fn decode_checkpoint(bytes: &[u8]) -> Result<Vec<CheckpointEntry>, DecodeError> {
    if bytes.is_empty() {
        return Err(DecodeError::Empty);
    }
    contain_panics(|| {
        let (version, batches) = read_file(
            bytes,
            CHECKPOINT_FORMAT_VERSION_KEY,
            schema_of_version,
            None,
            8192,
        )?;
        let mut entries = Vec::with_capacity(batches.iter().map(RecordBatch::num_rows).sum());
        for batch in &batches {
            let columns = Columns::of(batch)?;
            let records = (version == FORMAT_VERSION)
                .then(|| RecordColumns::of(batch))
                .transpose()?;
            let etags = column::<StringArray>(batch, "etag")?;
            for row in 0..batch.num_rows() {
                required(etags, row, "etag")?;
                let manifest = columns.manifest(row)?;
                let record = match &records {
                    None => Record::live(manifest),
                    Some(r) => {
                        let (state, changes) = r.state_and_changes(row)?;
                        Record {
                            manifest,
                            state,
                            changes,
                        }
                    }
                };
                entries.push(CheckpointEntry {
                    record,
                    etag: etags.value(row).to_owned(),
                });
            }
        }
        Ok(entries)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Change, ChangeKind, DatasetState, RequestTag};
    use crate::{
        dataset_id, DatasetName, Manifest, ObjectKey, ObjectRef, SchemaFingerprint, Timestamp,
    };

    fn record(name: &str, objects: usize) -> Record {
        let m = manifest(name, objects);
        let at = m.updated_at;
        let state = match objects % 3 {
            0 => DatasetState::Live,
            1 => DatasetState::Deleted { at },
            _ => DatasetState::Purged { at },
        };
        let changes = (0..objects)
            .map(|i| Change {
                seq: 10 + i as u64,
                kind: ChangeKind::ALL[i % 5],
                version: 3,
                at,
                request: (i % 2 == 0).then(|| RequestTag {
                    idempotency_key: format!("key-{i}"),
                    request_sha256: "ab".repeat(32),
                    existing: i % 4 == 0,
                }),
            })
            .collect();
        Record {
            manifest: m,
            state,
            changes,
        }
    }

    fn manifest(name: &str, objects: usize) -> Manifest {
        let name = DatasetName::parse(name).unwrap();
        Manifest {
            dataset_id: dataset_id(&name),
            name,
            schema_fingerprint: SchemaFingerprint::parse("sha256:x").unwrap(),
            version: 3,
            objects: (0..objects)
                .map(|i| ObjectRef {
                    key: ObjectKey::parse(&format!("lake/p-{i}")).unwrap(),
                    size: crate::ObjectSize::try_from(i as u64).unwrap(),
                })
                .collect(),
            row_count: objects.is_multiple_of(2).then_some(7),
            created_at: Timestamp::from_micros(1_700_000_000_000_000).unwrap(),
            updated_at: Timestamp::from_micros(1_700_000_000_000_001).unwrap(),
        }
    }

    #[test]
    fn round_trips_many_rows_with_varied_object_lists() {
        let records: Vec<Record> = (0..300)
            .map(|i| record(&format!("d.n{i}"), i % 7))
            .collect();
        let etags: Vec<String> = (0..300).map(|i| format!("etag-{i}")).collect();
        let entries: Vec<(&Record, &str)> = records
            .iter()
            .zip(&etags)
            .map(|(m, e)| (m, e.as_str()))
            .collect();
        let decoded = decode_checkpoint(&encode_checkpoint(&entries).unwrap()).unwrap();
        assert_eq!(decoded.len(), 300);
        for ((m, e), d) in entries.iter().zip(&decoded) {
            assert_eq!(&d.record, *m);
            assert_eq!(d.etag, *e);
        }
        assert!(decode_checkpoint(&encode_checkpoint(&[]).unwrap())
            .unwrap()
            .is_empty());
    }

    #[test]
    fn a_checkpoint_and_a_manifest_never_pass_for_each_other() {
        let m = manifest("orders", 2);
        let checkpoint = encode_checkpoint(&[(&Record::live(m.clone()), "e")]).unwrap();
        assert!(matches!(
            crate::decode(&checkpoint),
            Err(DecodeError::MissingFormatVersion { .. })
        ));
        assert!(matches!(
            decode_checkpoint(&crate::encode(&m).unwrap()),
            Err(DecodeError::MissingFormatVersion { .. })
        ));
        assert!(decode_checkpoint(b"garbage").is_err());
        assert!(decode_checkpoint(&checkpoint[..checkpoint.len() / 2]).is_err());
    }
}
