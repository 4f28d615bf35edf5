//! Encoding: manifests into Arrow columns, columns into a Parquet file.

use std::sync::Arc;

use arrow_array::builder::{Int64Builder, StringBuilder};
use arrow_array::{
    ArrayRef, Int64Array, ListArray, RecordBatch, StringArray, StructArray,
    TimestampMicrosecondArray,
};
use arrow_buffer::OffsetBuffer;
use arrow_schema::{DataType, SchemaRef};
use bytes::Bytes;
use parquet::arrow::arrow_writer::ArrowWriterOptions;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties};

use super::{object_fields, objects_type, UTC};
use crate::error::EncodeError;
use crate::manifest::Timestamp;
use crate::{dataset_id, Manifest};

/// The rows of `manifests` under `schema` (the manifest columns, then `extra` columns).
pub(crate) fn manifest_batch(
    schema: &SchemaRef,
    manifests: &[&Manifest],
    extra: Vec<ArrayRef>,
) -> Result<RecordBatch, EncodeError> {
    let all_objects = manifests.iter().flat_map(|m| m.objects.iter());
    let mut keys = StringBuilder::with_capacity(
        all_objects.clone().count(),
        all_objects.clone().map(|o| o.key.as_str().len()).sum(),
    );
    let mut sizes = Int64Builder::with_capacity(all_objects.clone().count());
    for object in all_objects {
        keys.append_value(object.key.as_str());
        sizes.append_value(object.size.get());
    }
    let objects = StructArray::new(
        object_fields(),
        vec![
            Arc::new(keys.finish()) as ArrayRef,
            Arc::new(sizes.finish()),
        ],
        None,
    );
    let DataType::List(item) = objects_type() else {
        unreachable!("objects_type is a list")
    };
    let objects = ListArray::new(
        item,
        OffsetBuffer::from_lengths(manifests.iter().map(|m| m.objects.len())),
        Arc::new(objects),
        None,
    );
    let timestamps = |at: fn(&Manifest) -> Timestamp| {
        Arc::new(
            TimestampMicrosecondArray::from(
                manifests
                    .iter()
                    .map(|m| at(m).as_micros())
                    .collect::<Vec<_>>(),
            )
            .with_timezone(UTC),
        ) as ArrayRef
    };
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(
            manifests
                .iter()
                .map(|m| m.dataset_id.hyphenated().to_string())
                .collect::<Vec<_>>(),
        )),
        Arc::new(StringArray::from(
            manifests
                .iter()
                .map(|m| m.name.as_str())
                .collect::<Vec<_>>(),
        )),
        Arc::new(StringArray::from(
            manifests
                .iter()
                .map(|m| m.schema_fingerprint.as_str())
                .collect::<Vec<_>>(),
        )),
        Arc::new(Int64Array::from(
            manifests.iter().map(|m| m.version).collect::<Vec<_>>(),
        )),
        Arc::new(objects),
        Arc::new(Int64Array::from(
            manifests.iter().map(|m| m.row_count).collect::<Vec<_>>(),
        )),
        timestamps(|m| m.created_at),
        timestamps(|m| m.updated_at),
    ];
    columns.extend(extra);
    RecordBatch::try_new(schema.clone(), columns)
        .map_err(|e| EncodeError::Parquet(parquet::errors::ParquetError::from(e)))
}

/// Writes `batch` as a snappy-compressed Parquet file whose key-value metadata holds
/// `format_key` = `format_version`.
pub(crate) fn write_file(
    schema: SchemaRef,
    batch: &RecordBatch,
    format_key: &str,
    format_version: &str,
    capacity: usize,
) -> Result<Bytes, EncodeError> {
    write_file_with(
        schema,
        batch,
        format_key,
        format_version,
        capacity,
        Vec::new(),
    )
}

/// [`write_file`] with more key-value metadata entries.
pub(crate) fn write_file_with(
    schema: SchemaRef,
    batch: &RecordBatch,
    format_key: &str,
    format_version: &str,
    capacity: usize,
    metadata: Vec<KeyValue>,
) -> Result<Bytes, EncodeError> {
    let mut metadata = metadata;
    metadata.push(KeyValue::new(
        format_key.to_owned(),
        format_version.to_owned(),
    ));
    // Column statistics, dictionaries and the embedded Arrow schema cost more to write
    // and read than they could ever save a reader of these files.
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_statistics_enabled(EnabledStatistics::None)
        .set_dictionary_enabled(false)
        .set_offset_index_disabled(true)
        .set_key_value_metadata(Some(metadata))
        .build();
    let mut out = Vec::with_capacity(capacity);
    let options = ArrowWriterOptions::new()
        .with_properties(props)
        .with_skip_arrow_metadata(true);
    let mut writer = ArrowWriter::try_new_with_options(&mut out, schema, options)
        .map_err(EncodeError::Parquet)?;
    writer.write(batch).map_err(EncodeError::Parquet)?;
    writer.close().map_err(EncodeError::Parquet)?;
    Ok(Bytes::from(out))
}

pub(crate) fn check_invariants(manifest: &Manifest) -> Result<(), EncodeError> {
    let expected = dataset_id(&manifest.name);
    if manifest.dataset_id != expected {
        return Err(EncodeError::IdMismatch {
            name: manifest.name.to_string(),
            found: manifest.dataset_id,
            expected,
        });
    }
    let out_of_range = |field, value, rule| EncodeError::OutOfRange { field, value, rule };
    if manifest.version < 1 {
        return Err(out_of_range(
            "version",
            manifest.version,
            "must be at least 1",
        ));
    }
    if let Some(rows) = manifest.row_count.filter(|r| *r < 0) {
        return Err(out_of_range("row_count", rows, "must not be negative"));
    }
    Ok(())
}
