//! The schema fingerprint of a Parquet file: `sha256:` + the hex SHA-256 of a canonical
//! text form of its Arrow schema (ADR 0013 defines it byte for byte; `docs/schema-fingerprint.md`
//! has a pyarrow snippet that computes the same value).
//!
//! The schema is the one arrow-rs and pyarrow read from the footer: the embedded Arrow
//! schema when the writer stored one, else the one derived from the Parquet schema. The
//! canonical form keeps what a reader of the data depends on — field names (length-prefixed,
//! so any character is safe), logical types with their parameters, nullability, order — and
//! drops what two writers of the same table may legitimately differ in: metadata, list
//! element and map entry names, string/binary/list offset widths and views, dictionary and
//! run-end encoding.

use std::fmt::Write as _;

use arrow_schema::{DataType, Field, Fields, IntervalUnit, Schema, TimeUnit};
use parquet::file::metadata::{FooterTail, ParquetMetaDataReader};
use sha2::{Digest, Sha256};

/// The 8 bytes at the end of every Parquet file: metadata length and `PAR1`.
pub const FOOTER_TAIL_LEN: usize = 8;

/// Why a schema has no fingerprint, or a footer could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    /// The file does not end like a Parquet file (or uses an encrypted footer).
    #[error("not a Parquet file: {0}")]
    NotParquet(String),
    /// The footer's metadata does not decode.
    #[error("the Parquet footer is corrupt: {0}")]
    CorruptFooter(String),
    /// A type the canonical form has no spelling for (Parquet cannot store unions).
    #[error("field {field:?} has type {ty}, which a Parquet schema fingerprint does not cover")]
    Unsupported { field: String, ty: String },
}

/// What the footer of a Parquet file says: enough to register it.
#[derive(Debug, Clone, PartialEq)]
pub struct FooterInfo {
    /// The Arrow schema, as arrow-rs reads it (the embedded one when present).
    pub schema: Schema,
    /// Rows in the file.
    pub num_rows: i64,
}

impl FooterInfo {
    /// The schema fingerprint (`sha256:` + 64 hex digits).
    pub fn fingerprint(&self) -> Result<String, SchemaError> {
        schema_fingerprint(&self.schema)
    }
}

/// From the last [`FOOTER_TAIL_LEN`] bytes of a file: how many bytes of metadata precede
/// them.
pub fn footer_metadata_len(tail: &[u8]) -> Result<usize, SchemaError> {
    let tail: &[u8; FOOTER_TAIL_LEN] = tail
        .get(tail.len().saturating_sub(FOOTER_TAIL_LEN)..)
        .and_then(|t| t.try_into().ok())
        .ok_or_else(|| SchemaError::NotParquet("shorter than 8 bytes".into()))?;
    let footer = FooterTail::try_new(tail).map_err(|e| SchemaError::NotParquet(e.to_string()))?;
    if footer.is_encrypted_footer() {
        return Err(SchemaError::NotParquet("the footer is encrypted".into()));
    }
    Ok(footer.metadata_length())
}

/// Decodes the footer metadata (the bytes before the 8-byte tail).
pub fn decode_footer(metadata: &[u8]) -> Result<FooterInfo, SchemaError> {
    let meta = ParquetMetaDataReader::decode_metadata(metadata)
        .map_err(|e| SchemaError::CorruptFooter(e.to_string()))?;
    let file = meta.file_metadata();
    let schema =
        parquet::arrow::parquet_to_arrow_schema(file.schema_descr(), file.key_value_metadata())
            .map_err(|e| SchemaError::CorruptFooter(e.to_string()))?;
    Ok(FooterInfo {
        schema,
        num_rows: file.num_rows(),
    })
}

/// Reads the footer of a whole file held in memory.
pub fn read_footer(file: &[u8]) -> Result<FooterInfo, SchemaError> {
    let len = footer_metadata_len(file)?;
    let end = file.len() - FOOTER_TAIL_LEN;
    let start = end
        .checked_sub(len)
        .ok_or_else(|| SchemaError::NotParquet(format!("metadata of {len} bytes does not fit")))?;
    decode_footer(&file[start..end])
}

/// `sha256:` + the hex SHA-256 of [`canonical_schema`].
pub fn schema_fingerprint(schema: &Schema) -> Result<String, SchemaError> {
    let canonical = canonical_schema(schema)?;
    let digest = Sha256::digest(canonical.as_bytes());
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256:");
    for byte in digest {
        let _ = write!(out, "{byte:02x}");
    }
    Ok(out)
}

/// The canonical text form of a schema (ADR 0013):
/// `{` fields joined by `,` `}`, a field being `<name bytes>:<name> <type><? or !>`.
pub fn canonical_schema(schema: &Schema) -> Result<String, SchemaError> {
    let mut out = String::new();
    fields(&mut out, schema.fields())?;
    Ok(out)
}

fn fields(out: &mut String, fields: &Fields) -> Result<(), SchemaError> {
    out.push('{');
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{}:{} ", f.name().len(), f.name());
        item(out, f, f.name())?;
    }
    out.push('}');
    Ok(())
}

/// A type and its nullability, without the field's name.
fn item(out: &mut String, f: &Field, path: &str) -> Result<(), SchemaError> {
    ty(out, f.data_type(), path)?;
    out.push(if f.is_nullable() { '?' } else { '!' });
    Ok(())
}

fn unit(u: TimeUnit) -> &'static str {
    match u {
        TimeUnit::Second => "s",
        TimeUnit::Millisecond => "ms",
        TimeUnit::Microsecond => "us",
        TimeUnit::Nanosecond => "ns",
    }
}

fn ty(out: &mut String, t: &DataType, path: &str) -> Result<(), SchemaError> {
    let simple = match t {
        DataType::Null => "null",
        DataType::Boolean => "bool",
        DataType::Int8 => "int8",
        DataType::Int16 => "int16",
        DataType::Int32 => "int32",
        DataType::Int64 => "int64",
        DataType::UInt8 => "uint8",
        DataType::UInt16 => "uint16",
        DataType::UInt32 => "uint32",
        DataType::UInt64 => "uint64",
        DataType::Float16 => "float16",
        DataType::Float32 => "float32",
        DataType::Float64 => "float64",
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "string",
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => "binary",
        DataType::Date32 => "date32",
        DataType::Date64 => "date64",
        DataType::Interval(IntervalUnit::YearMonth) => "interval(year_month)",
        DataType::Interval(IntervalUnit::DayTime) => "interval(day_time)",
        DataType::Interval(IntervalUnit::MonthDayNano) => "interval(month_day_nano)",
        DataType::FixedSizeBinary(n) => {
            let _ = write!(out, "fixed_size_binary({n})");
            return Ok(());
        }
        DataType::Time32(u) => {
            let _ = write!(out, "time32({})", unit(*u));
            return Ok(());
        }
        DataType::Time64(u) => {
            let _ = write!(out, "time64({})", unit(*u));
            return Ok(());
        }
        DataType::Duration(u) => {
            let _ = write!(out, "duration({})", unit(*u));
            return Ok(());
        }
        DataType::Timestamp(u, tz) => {
            match tz {
                Some(tz) => write!(out, "timestamp({},{tz})", unit(*u)),
                None => write!(out, "timestamp({})", unit(*u)),
            }
            .ok();
            return Ok(());
        }
        DataType::Decimal32(p, s)
        | DataType::Decimal64(p, s)
        | DataType::Decimal128(p, s)
        | DataType::Decimal256(p, s) => {
            let _ = write!(out, "decimal({p},{s})");
            return Ok(());
        }
        DataType::List(f)
        | DataType::LargeList(f)
        | DataType::ListView(f)
        | DataType::LargeListView(f) => {
            out.push_str("list<");
            item(out, f, path)?;
            out.push('>');
            return Ok(());
        }
        DataType::FixedSizeList(f, n) => {
            let _ = write!(out, "fixed_size_list<{n},");
            item(out, f, path)?;
            out.push('>');
            return Ok(());
        }
        DataType::Struct(children) => {
            out.push_str("struct");
            return fields(out, children);
        }
        DataType::Map(entries, _sorted) => {
            let DataType::Struct(kv) = entries.data_type() else {
                return Err(unsupported(path, t));
            };
            let [key, value] = kv.iter().collect::<Vec<_>>()[..] else {
                return Err(unsupported(path, t));
            };
            out.push_str("map<");
            item(out, key, path)?;
            out.push(',');
            item(out, value, path)?;
            out.push('>');
            return Ok(());
        }
        DataType::Dictionary(_, values) => return ty(out, values, path),
        DataType::RunEndEncoded(_, values) => return ty(out, values.data_type(), path),
        DataType::Union(..) => return Err(unsupported(path, t)),
    };
    out.push_str(simple);
    Ok(())
}

fn unsupported(path: &str, t: &DataType) -> SchemaError {
    SchemaError::Unsupported {
        field: path.to_owned(),
        ty: t.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn schema(fields: Vec<Field>) -> Schema {
        Schema::new(fields)
    }

    #[test]
    fn canonical_form_spells_names_types_and_nullability() {
        let s = schema(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("prix €", DataType::Decimal128(10, 2), true),
            Field::new(
                "at",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                true,
            ),
            Field::new(
                "tags",
                DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
                true,
            ),
            Field::new(
                "s",
                DataType::Struct(Fields::from(vec![Field::new("a", DataType::Date32, false)])),
                false,
            ),
        ]);
        assert_eq!(
            canonical_schema(&s).unwrap(),
            "{2:id int64!,8:prix € decimal(10,2)?,2:at timestamp(us,UTC)?,\
             4:tags list<string?>?,1:s struct{1:a date32!}!}"
        );
    }

    #[test]
    fn encodings_and_widths_do_not_change_the_fingerprint() {
        let a = schema(vec![
            Field::new("s", DataType::Utf8, true),
            Field::new(
                "l",
                DataType::List(Arc::new(Field::new("item", DataType::Int32, true))),
                true,
            ),
        ]);
        let b = schema(vec![
            Field::new(
                "s",
                DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::LargeUtf8)),
                true,
            ),
            Field::new(
                "l",
                DataType::LargeList(Arc::new(Field::new("element", DataType::Int32, true))),
                true,
            ),
        ])
        .with_metadata([("pandas".to_owned(), "{}".to_owned())]);
        assert_eq!(schema_fingerprint(&a), schema_fingerprint(&b));
    }

    #[test]
    fn renames_retypes_reorders_and_nullability_change_it() {
        let base = vec![
            Field::new("a", DataType::Int64, true),
            Field::new("b", DataType::Utf8, true),
        ];
        let fp = |f: Vec<Field>| schema_fingerprint(&schema(f)).unwrap();
        let original = fp(base.clone());
        let variants = [
            vec![base[0].clone().with_name("c"), base[1].clone()],
            vec![
                base[0].clone().with_data_type(DataType::Int32),
                base[1].clone(),
            ],
            vec![base[1].clone(), base[0].clone()],
            vec![base[0].clone().with_nullable(false), base[1].clone()],
        ];
        for v in variants {
            assert_ne!(fp(v.clone()), original, "{v:?}");
        }
        assert!(original.starts_with("sha256:") && original.len() == 7 + 64);
    }

    #[test]
    fn length_prefixes_keep_odd_names_apart() {
        let one = schema(vec![Field::new("a int64?,1:b", DataType::Int64, true)]);
        let two = schema(vec![
            Field::new("a", DataType::Int64, true),
            Field::new("b", DataType::Int64, true),
        ]);
        assert_ne!(schema_fingerprint(&one), schema_fingerprint(&two));
    }

    #[test]
    fn garbage_footers_are_errors_not_panics() {
        assert!(matches!(
            read_footer(b"abc"),
            Err(SchemaError::NotParquet(_))
        ));
        assert!(matches!(
            read_footer(b"xxxxxxxxPAR1"),
            Err(SchemaError::NotParquet(_))
        ));
        let mut bogus = vec![0xffu8; 16];
        bogus.extend_from_slice(&8u32.to_le_bytes());
        bogus.extend_from_slice(b"PAR1");
        assert!(matches!(
            read_footer(&bogus),
            Err(SchemaError::CorruptFooter(_))
        ));
    }
}
