//! The catalog checkpoint: every manifest of a catalog in one Parquet file, one row each,
//! with the storaged ETag of the manifest object it was read from.
//!
//! A checkpoint is a cache, never the truth: catalogd uses a row only when the listing of
//! the manifest objects shows the same ETag (ETags are content hashes, so the same ETag
//! means the same bytes), and fetches every other manifest itself. Its columns are the
//! manifest's plus `etag`; its format version lives under its own key-value metadata key,
//! so a checkpoint never decodes as a manifest nor a manifest as a checkpoint.

use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use bytes::Bytes;

use crate::parquet_codec::{
    check_invariants, column, contain_panics, manifest_batch, manifest_schema, read_file, required,
    write_file, Columns,
};
use crate::{DecodeError, EncodeError, Manifest};

/// The key-value metadata entry that holds a checkpoint's format version.
pub const CHECKPOINT_FORMAT_VERSION_KEY: &str = "catalogd.checkpoint.format_version";

/// One row of a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointEntry {
    /// The manifest.
    pub manifest: Manifest,
    /// The ETag of the manifest object it was read from or written as.
    pub etag: String,
}

/// The Arrow schema of a checkpoint: the manifest's columns, then `etag`.
pub fn checkpoint_schema() -> SchemaRef {
    let mut fields: Vec<Field> = manifest_schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new("etag", DataType::Utf8, false));
    Arc::new(Schema::new(fields))
}

/// Encodes `entries` as one Parquet file, in the order given.
pub fn encode_checkpoint(entries: &[(&Manifest, &str)]) -> Result<Bytes, EncodeError> {
    for (manifest, _) in entries {
        check_invariants(manifest)?;
    }
    let schema = checkpoint_schema();
    let manifests: Vec<&Manifest> = entries.iter().map(|(m, _)| *m).collect();
    let etags: ArrayRef = Arc::new(StringArray::from(
        entries.iter().map(|(_, e)| *e).collect::<Vec<_>>(),
    ));
    let batch = manifest_batch(&schema, &manifests, vec![etags])?;
    let capacity = 1024
        + manifests
            .iter()
            .map(|m| 128 + m.objects.len() * 48)
            .sum::<usize>();
    write_file(schema, &batch, CHECKPOINT_FORMAT_VERSION_KEY, capacity)
}

/// Decodes a checkpoint, checking every row against the model as a manifest is checked.
/// Never panics.
pub fn decode_checkpoint(bytes: &[u8]) -> Result<Vec<CheckpointEntry>, DecodeError> {
    if bytes.is_empty() {
        return Err(DecodeError::Empty);
    }
    contain_panics(|| {
        let batches = read_file(
            bytes,
            CHECKPOINT_FORMAT_VERSION_KEY,
            &checkpoint_schema(),
            None,
            8192,
        )?;
        let mut entries = Vec::with_capacity(batches.iter().map(RecordBatch::num_rows).sum());
        for batch in &batches {
            let columns = Columns::of(batch)?;
            let etags = column::<StringArray>(batch, "etag")?;
            for row in 0..batch.num_rows() {
                required(etags, row, "etag")?;
                entries.push(CheckpointEntry {
                    manifest: columns.manifest(row)?,
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
    use crate::{dataset_id, DatasetName, ObjectKey, ObjectRef, SchemaFingerprint, Timestamp};

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
        let manifests: Vec<Manifest> = (0..300)
            .map(|i| manifest(&format!("d.n{i}"), i % 7))
            .collect();
        let etags: Vec<String> = (0..300).map(|i| format!("etag-{i}")).collect();
        let entries: Vec<(&Manifest, &str)> = manifests
            .iter()
            .zip(&etags)
            .map(|(m, e)| (m, e.as_str()))
            .collect();
        let decoded = decode_checkpoint(&encode_checkpoint(&entries).unwrap()).unwrap();
        assert_eq!(decoded.len(), 300);
        for ((m, e), d) in entries.iter().zip(&decoded) {
            assert_eq!(&d.manifest, *m);
            assert_eq!(d.etag, *e);
        }
        assert!(decode_checkpoint(&encode_checkpoint(&[]).unwrap())
            .unwrap()
            .is_empty());
    }

    #[test]
    fn a_checkpoint_and_a_manifest_never_pass_for_each_other() {
        let m = manifest("orders", 2);
        let checkpoint = encode_checkpoint(&[(&m, "e")]).unwrap();
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
