//! Decoding: structural checks before any page is read, then columns validated in full.

use arrow_array::{
    Array, Int64Array, ListArray, RecordBatch, StringArray, StructArray, TimestampMicrosecondArray,
};
use arrow_schema::{DataType, SchemaRef};
use bytes::Bytes;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::PARQUET_MAGIC;
use crate::error::DecodeError;
use crate::manifest::{ObjectRef, ObjectSize, SchemaFingerprint, Timestamp};
use crate::{dataset_id, DatasetName, Manifest, ObjectKey};

/// Checks the magic, the format version under `format_key` (one `schema_of` knows), the
/// row count (when `rows` is given) and every column of that version's schema, then reads
/// the file's batches. Returns the format version with them.
pub(crate) fn read_file(
    bytes: &[u8],
    format_key: &'static str,
    schema_of: impl Fn(&str) -> Option<SchemaRef>,
    rows: Option<i64>,
    batch_size: usize,
) -> Result<(String, Vec<RecordBatch>), DecodeError> {
    check_magic(bytes)?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(Bytes::copy_from_slice(bytes))
        .map_err(|e| DecodeError::Parquet(e.to_string()))?;

    let file_metadata = builder.metadata().file_metadata();
    let version = file_metadata
        .key_value_metadata()
        .and_then(|kvs| kvs.iter().find(|kv| kv.key == format_key))
        .ok_or(DecodeError::MissingFormatVersion { key: format_key })?;
    let version = version.value.clone().unwrap_or_else(|| "<null>".to_owned());
    let Some(expected) = schema_of(&version) else {
        return Err(DecodeError::UnknownFormatVersion { found: version });
    };
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
    let batches = reader
        .map(|batch| batch.map_err(|e| DecodeError::Parquet(e.to_string())))
        .collect::<Result<_, _>>()?;
    Ok((version, batches))
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
pub(super) fn same_shape(found: &DataType, expected: &DataType) -> bool {
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
        "deleted_at" => "deleted_at",
        "purged_at" => "purged_at",
        "changes" => "changes",
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

pub(crate) fn invalid(column: &'static str, reason: impl std::fmt::Display) -> DecodeError {
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

/// The required timestamp in `row` of `array`.
pub(crate) fn timestamp_at(
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
            created_at: timestamp_at(self.created, row, "created_at")?,
            updated_at: timestamp_at(self.updated, row, "updated_at")?,
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
