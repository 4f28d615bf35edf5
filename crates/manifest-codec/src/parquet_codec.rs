//! The manifest file: one Parquet file, exactly one row (design §5).
//!
//! Decoding never trusts the file. Cheap structural checks (magic, footer, format version,
//! row count, column types) run before any page is read, every decoded array is validated
//! in full before a value is taken from it, and the whole decode runs under `catch_unwind`
//! because the Parquet reader still panics on some corrupt inputs.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use arrow_array::builder::{Int64Builder, StringBuilder};
use arrow_array::{
    Array, ArrayRef, Int64Array, ListArray, RecordBatch, StringArray, StructArray,
    TimestampMicrosecondArray,
};
use arrow_buffer::OffsetBuffer;
use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
use bytes::Bytes;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::arrow_writer::ArrowWriterOptions;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties};

use crate::error::{DecodeError, EncodeError};
use crate::manifest::{ObjectRef, ObjectSize, SchemaFingerprint, Timestamp};
use crate::{dataset_id, DatasetName, Manifest, ObjectKey};

/// The key-value metadata entry that holds the format version.
pub const FORMAT_VERSION_KEY: &str = "catalogd.manifest.format_version";

/// The format version this release writes. Older versions keep decoding forever.
pub const FORMAT_VERSION: &str = "1";

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

/// Encodes `manifest` as a one-row, snappy-compressed Parquet file.
///
/// Fails only for a manifest that would not decode: an id that is not derived from the
/// name, a version below 1, or a negative size or row count.
pub fn encode(manifest: &Manifest) -> Result<Bytes, EncodeError> {
    check_invariants(manifest)?;
    let schema = manifest_schema();
    let batch = manifest_batch(&schema, &[manifest], Vec::new())?;
    write_file(
        schema,
        &batch,
        FORMAT_VERSION_KEY,
        1024 + manifest.objects.len() * 48,
    )
}

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
/// `format_key` = [`FORMAT_VERSION`].
pub(crate) fn write_file(
    schema: SchemaRef,
    batch: &RecordBatch,
    format_key: &str,
    capacity: usize,
) -> Result<Bytes, EncodeError> {
    // Column statistics, dictionaries and the embedded Arrow schema cost more to write
    // and read than they could ever save a reader of these files.
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_statistics_enabled(EnabledStatistics::None)
        .set_dictionary_enabled(false)
        .set_offset_index_disabled(true)
        .set_key_value_metadata(Some(vec![KeyValue::new(
            format_key.to_owned(),
            FORMAT_VERSION.to_owned(),
        )]))
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

/// Decodes a manifest file, checking every rule of the format and the model.
///
/// Never panics: a panic inside the Parquet reader becomes [`DecodeError::Panicked`].
pub fn decode(bytes: &[u8]) -> Result<Manifest, DecodeError> {
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

fn decode_unguarded(bytes: &[u8]) -> Result<Manifest, DecodeError> {
    let expected = manifest_schema();
    let batches = read_file(bytes, FORMAT_VERSION_KEY, &expected, Some(1), 2)?;
    let total: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let batch = match batches.into_iter().find(|b| b.num_rows() > 0) {
        Some(batch) if total == 1 => batch,
        _ => {
            return Err(DecodeError::RowCount {
                rows: i64::try_from(total).unwrap_or(i64::MAX),
            })
        }
    };
    Columns::of(&batch)?.manifest(0)
}

/// Checks the magic, the format version under `format_key`, the row count (when `rows` is
/// given) and every column of `expected`, then reads the file's batches.
pub(crate) fn read_file(
    bytes: &[u8],
    format_key: &'static str,
    expected: &SchemaRef,
    rows: Option<i64>,
    batch_size: usize,
) -> Result<Vec<RecordBatch>, DecodeError> {
    check_magic(bytes)?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(Bytes::copy_from_slice(bytes))
        .map_err(|e| DecodeError::Parquet(e.to_string()))?;

    let file_metadata = builder.metadata().file_metadata();
    let version = file_metadata
        .key_value_metadata()
        .and_then(|kvs| kvs.iter().find(|kv| kv.key == format_key))
        .ok_or(DecodeError::MissingFormatVersion { key: format_key })?;
    match version.value.as_deref() {
        Some(FORMAT_VERSION) => {}
        other => {
            return Err(DecodeError::UnknownFormatVersion {
                found: other.unwrap_or("<null>").to_owned(),
            })
        }
    }
    if let Some(required_rows) = rows {
        let found = file_metadata.num_rows();
        if found != required_rows {
            return Err(DecodeError::RowCount { rows: found });
        }
    }
    for field in expected.fields() {
        let column = column_name(field.name());
        let found = builder
            .schema()
            .field_with_name(field.name())
            .map_err(|_| DecodeError::MissingColumn { column })?;
        if !same_shape(found.data_type(), field.data_type()) {
            return Err(DecodeError::ColumnType {
                column,
                found: found.data_type().to_string(),
                expected: field.data_type().to_string(),
            });
        }
    }

    let reader = builder
        .with_batch_size(batch_size)
        .build()
        .map_err(|e| DecodeError::Parquet(e.to_string()))?;
    reader
        .map(|batch| batch.map_err(|e| DecodeError::Parquet(e.to_string())))
        .collect()
}

fn check_magic(bytes: &[u8]) -> Result<(), DecodeError> {
    if bytes.len() < 12 {
        return Err(DecodeError::Parquet(format!(
            "{} bytes is too short for a parquet file (at least 12)",
            bytes.len()
        )));
    }
    if &bytes[..4] != PARQUET_MAGIC {
        return Err(DecodeError::Parquet(
            "bad magic at the start: expected PAR1".to_owned(),
        ));
    }
    if &bytes[bytes.len() - 4..] != PARQUET_MAGIC {
        return Err(DecodeError::Parquet(
            "bad magic at the end: the footer is missing or truncated".to_owned(),
        ));
    }
    Ok(())
}

/// Compares types ignoring nullability and list item names, which other writers choose
/// differently; everything that affects values must match exactly.
fn same_shape(found: &DataType, expected: &DataType) -> bool {
    match (found, expected) {
        (DataType::List(f), DataType::List(e)) => same_shape(f.data_type(), e.data_type()),
        (DataType::Struct(f), DataType::Struct(e)) => {
            f.len() == e.len()
                && f.iter()
                    .zip(e.iter())
                    .all(|(f, e)| f.name() == e.name() && same_shape(f.data_type(), e.data_type()))
        }
        (DataType::Timestamp(fu, Some(ftz)), DataType::Timestamp(eu, Some(_))) => {
            fu == eu && matches!(ftz.as_ref(), "UTC" | "+00:00" | "Z" | "Etc/UTC")
        }
        _ => found == expected,
    }
}

fn column_name(name: &str) -> &'static str {
    match name {
        "dataset_id" => "dataset_id",
        "name" => "name",
        "schema_fingerprint" => "schema_fingerprint",
        "version" => "version",
        "objects" => "objects",
        "row_count" => "row_count",
        "created_at" => "created_at",
        "updated_at" => "updated_at",
        "etag" => "etag",
        _ => "<unknown>",
    }
}

/// Takes column `name` of `batch` as a fully validated `T`.
pub(crate) fn column<'a, T: Array + 'static>(
    batch: &'a RecordBatch,
    name: &'static str,
) -> Result<&'a T, DecodeError> {
    let array = batch
        .column_by_name(name)
        .ok_or(DecodeError::MissingColumn { column: name })?;
    array
        .to_data()
        .validate_full()
        .map_err(|e| DecodeError::Malformed {
            column: name,
            reason: e.to_string(),
        })?;
    array
        .as_any()
        .downcast_ref::<T>()
        .ok_or_else(|| DecodeError::ColumnType {
            column: name,
            found: array.data_type().to_string(),
            expected: std::any::type_name::<T>().to_owned(),
        })
}

pub(crate) fn required<A: Array>(
    array: &A,
    row: usize,
    column: &'static str,
) -> Result<(), DecodeError> {
    if array.is_null(row) {
        return Err(DecodeError::Null { column });
    }
    Ok(())
}

fn invalid(column: &'static str, reason: impl std::fmt::Display) -> DecodeError {
    DecodeError::InvalidValue {
        column,
        reason: reason.to_string(),
    }
}

fn non_negative(value: i64, column: &'static str) -> Result<i64, DecodeError> {
    if value < 0 {
        return Err(invalid(column, format!("{value} is negative")));
    }
    Ok(value)
}

/// The manifest columns of one batch, each validated in full once.
pub(crate) struct Columns<'a> {
    ids: &'a StringArray,
    names: &'a StringArray,
    fingerprints: &'a StringArray,
    versions: &'a Int64Array,
    objects: &'a ListArray,
    row_counts: &'a Int64Array,
    created: &'a TimestampMicrosecondArray,
    updated: &'a TimestampMicrosecondArray,
}

impl<'a> Columns<'a> {
    pub(crate) fn of(batch: &'a RecordBatch) -> Result<Self, DecodeError> {
        Ok(Self {
            ids: column(batch, "dataset_id")?,
            names: column(batch, "name")?,
            fingerprints: column(batch, "schema_fingerprint")?,
            versions: column(batch, "version")?,
            objects: column(batch, "objects")?,
            row_counts: column(batch, "row_count")?,
            created: column(batch, "created_at")?,
            updated: column(batch, "updated_at")?,
        })
    }

    fn str(array: &'a StringArray, row: usize, name: &'static str) -> Result<&'a str, DecodeError> {
        required(array, row, name)?;
        Ok(array.value(row))
    }

    fn timestamp(
        array: &TimestampMicrosecondArray,
        row: usize,
        name: &'static str,
    ) -> Result<Timestamp, DecodeError> {
        required(array, row, name)?;
        let micros = array.value(row);
        Timestamp::from_micros(micros).ok_or_else(|| {
            invalid(
                name,
                format!("{micros} µs is outside the representable range"),
            )
        })
    }

    /// The manifest in `row`, checked against every rule of the model.
    pub(crate) fn manifest(&self, row: usize) -> Result<Manifest, DecodeError> {
        let name = DatasetName::parse(Self::str(self.names, row, "name")?)
            .map_err(|e| invalid("name", e))?;

        let raw_id = Self::str(self.ids, row, "dataset_id")?;
        let id = uuid::Uuid::try_parse(raw_id).map_err(|e| invalid("dataset_id", e))?;
        if id.hyphenated().to_string() != raw_id {
            return Err(invalid(
                "dataset_id",
                format!("{raw_id:?} is not a canonical lowercase hyphenated uuid"),
            ));
        }
        let expected = dataset_id(&name);
        if id != expected {
            return Err(invalid(
                "dataset_id",
                format!("{id} is not the id of name {name:?} ({expected})"),
            ));
        }

        let fingerprint =
            SchemaFingerprint::parse(Self::str(self.fingerprints, row, "schema_fingerprint")?)
                .map_err(|e| invalid("schema_fingerprint", e))?;

        required(self.versions, row, "version")?;
        let version = self.versions.value(row);
        if version < 1 {
            return Err(invalid("version", format!("{version} is below 1")));
        }

        let row_count = if self.row_counts.is_null(row) {
            None
        } else {
            Some(non_negative(self.row_counts.value(row), "row_count")?)
        };

        Ok(Manifest {
            dataset_id: id,
            name,
            schema_fingerprint: fingerprint,
            version,
            objects: self.objects(row)?,
            row_count,
            created_at: Self::timestamp(self.created, row, "created_at")?,
            updated_at: Self::timestamp(self.updated, row, "updated_at")?,
        })
    }

    fn objects(&self, row: usize) -> Result<Vec<ObjectRef>, DecodeError> {
        required(self.objects, row, "objects")?;
        let items = self.objects.value(row);
        let items = items
            .as_any()
            .downcast_ref::<StructArray>()
            .ok_or_else(|| invalid("objects", "list items are not structs"))?;
        if items.null_count() > 0 {
            return Err(DecodeError::Null { column: "objects" });
        }
        let keys = items
            .column_by_name("key")
            .and_then(|a| a.as_any().downcast_ref::<StringArray>())
            .ok_or(DecodeError::MissingColumn {
                column: "objects.key",
            })?;
        let sizes = items
            .column_by_name("size")
            .and_then(|a| a.as_any().downcast_ref::<Int64Array>())
            .ok_or(DecodeError::MissingColumn {
                column: "objects.size",
            })?;
        if keys.null_count() > 0 {
            return Err(DecodeError::Null {
                column: "objects.key",
            });
        }
        if sizes.null_count() > 0 {
            return Err(DecodeError::Null {
                column: "objects.size",
            });
        }
        keys.iter()
            .zip(sizes.values().iter())
            .map(|(key, &size)| {
                let key = ObjectKey::parse(key.unwrap_or_default())
                    .map_err(|e| invalid("objects.key", e))?;
                let size = ObjectSize::new(size)
                    .ok_or_else(|| invalid("objects.size", format!("{size} is negative")))?;
                Ok(ObjectRef { key, size })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
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
