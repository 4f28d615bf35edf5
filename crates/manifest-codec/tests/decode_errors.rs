//! Hostile inputs: every way a manifest file can be wrong gives a typed error that says
//! what is wrong, and nothing panics.

use std::sync::Arc;

use arrow_array::{
    Array, ArrayRef, Int64Array, ListArray, RecordBatch, StringArray, StructArray,
    TimestampMicrosecondArray,
};
use arrow_buffer::{NullBuffer, OffsetBuffer};
use arrow_schema::{DataType, Field, Fields, Schema};
use manifest_codec::{decode, encode, DecodeError, Manifest, FORMAT_VERSION_KEY};
use parquet::arrow::ArrowWriter;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;

const NAME: &str = "sales.orders_2024";
const ID: &str = "c9b2103c-6ed4-5bd7-b380-c14a74b3d011";

fn golden(file: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/golden/v1/{file}.parquet",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// The columns of a valid manifest, repeated `rows` times, as (field, array) pairs that a
/// test can remove, replace or retype before writing.
fn columns(rows: usize) -> Vec<(Field, ArrayRef)> {
    let strings = |v: &str| Arc::new(StringArray::from(vec![v; rows])) as ArrayRef;
    let ints = |v: i64| Arc::new(Int64Array::from(vec![v; rows])) as ArrayRef;
    let ts = || {
        Arc::new(
            TimestampMicrosecondArray::from(vec![1_714_564_800_000_000; rows]).with_timezone("UTC"),
        ) as ArrayRef
    };
    let (objects_field, objects) = objects(&["lake/a.parquet"], &[7], rows, None, None);
    vec![
        (Field::new("dataset_id", DataType::Utf8, false), strings(ID)),
        (Field::new("name", DataType::Utf8, false), strings(NAME)),
        (
            Field::new("schema_fingerprint", DataType::Utf8, false),
            strings("fp"),
        ),
        (Field::new("version", DataType::Int64, false), ints(1)),
        (objects_field, objects),
        (Field::new("row_count", DataType::Int64, true), ints(10)),
        (
            Field::new("created_at", ts().data_type().clone(), false),
            ts(),
        ),
        (
            Field::new("updated_at", ts().data_type().clone(), false),
            ts(),
        ),
    ]
}

/// An `objects` column: every row holds the same `keys`/`sizes`, with optional null masks
/// on the key child and on the struct items.
fn objects(
    keys: &[&str],
    sizes: &[i64],
    rows: usize,
    key_nulls: Option<Vec<bool>>,
    item_nulls: Option<Vec<bool>>,
) -> (Field, ArrayRef) {
    let repeat = |n: usize| (0..rows).flat_map(move |_| 0..n);
    let key_values: Vec<&str> = repeat(keys.len()).map(|i| keys[i]).collect();
    let size_values: Vec<i64> = repeat(sizes.len()).map(|i| sizes[i]).collect();
    let key_mask =
        key_nulls.map_or_else(|| vec![true; key_values.len()], |m| repeat_mask(&m, rows));
    let fields = Fields::from(vec![
        Field::new("key", DataType::Utf8, true),
        Field::new("size", DataType::Int64, true),
    ]);
    let items = StructArray::new(
        fields.clone(),
        vec![
            Arc::new(StringArray::from(
                key_values
                    .iter()
                    .zip(key_mask)
                    .map(|(k, valid)| valid.then_some(*k))
                    .collect::<Vec<_>>(),
            )) as ArrayRef,
            Arc::new(Int64Array::from(size_values)),
        ],
        item_nulls.map(|m| NullBuffer::from(repeat_mask(&m, rows))),
    );
    let item = Arc::new(Field::new("item", DataType::Struct(fields), true));
    let list = ListArray::new(
        item.clone(),
        OffsetBuffer::from_lengths(vec![keys.len(); rows]),
        Arc::new(items),
        None,
    );
    (
        Field::new("objects", DataType::List(item), false),
        Arc::new(list),
    )
}

fn repeat_mask(mask: &[bool], rows: usize) -> Vec<bool> {
    (0..rows).flat_map(|_| mask.iter().copied()).collect()
}

fn write(columns: Vec<(Field, ArrayRef)>, format_version: Option<&str>) -> Vec<u8> {
    let (fields, arrays): (Vec<_>, Vec<_>) = columns.into_iter().unzip();
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(schema.clone(), arrays).unwrap();
    let props = WriterProperties::builder()
        .set_key_value_metadata(
            format_version
                .map(|v| vec![KeyValue::new(FORMAT_VERSION_KEY.to_owned(), v.to_owned())]),
        )
        .build();
    let mut out = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut out, schema, Some(props)).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    out
}

fn v1(columns: Vec<(Field, ArrayRef)>) -> Vec<u8> {
    write(columns, Some("1"))
}

fn replace(
    mut cols: Vec<(Field, ArrayRef)>,
    name: &str,
    field: Field,
    array: ArrayRef,
) -> Vec<(Field, ArrayRef)> {
    let i = cols.iter().position(|(f, _)| f.name() == name).unwrap();
    cols[i] = (field, array);
    cols
}

fn err(bytes: &[u8]) -> DecodeError {
    let e = decode(bytes).expect_err("must not decode");
    assert!(!e.to_string().is_empty());
    e
}

#[test]
fn the_helper_writes_a_valid_manifest() {
    let m: Manifest = decode(&v1(columns(1))).unwrap();
    assert_eq!(m.name.as_str(), NAME);
    assert_eq!(m.objects.len(), 1);
    assert_eq!(m.row_count, Some(10));
}

#[test]
fn empty_input() {
    assert!(matches!(err(b""), DecodeError::Empty));
    assert_eq!(err(b"").to_string(), "manifest is empty (0 bytes)");
}

#[test]
fn random_bytes() {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    for len in [1_usize, 7, 12, 100, 4096] {
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state.to_le_bytes()[0]
            })
            .collect();
        assert!(matches!(err(&bytes), DecodeError::Parquet(_)), "len {len}");
    }
}

#[test]
fn truncated_footer() {
    let bytes = golden("three_objects");
    for cut in [1, 4, 8, 100, bytes.len() / 2] {
        let e = err(&bytes[..bytes.len() - cut]);
        assert!(matches!(e, DecodeError::Parquet(_)), "cut {cut}: {e}");
    }
    assert!(err(&bytes[..bytes.len() - 1])
        .to_string()
        .contains("footer"));
}

#[test]
fn damaged_footer_length() {
    let mut bytes = golden("three_objects");
    let n = bytes.len();
    // The 4-byte footer length just before the trailing magic: point it past the file.
    bytes[n - 8..n - 4].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(err(&bytes), DecodeError::Parquet(_)));
}

#[test]
fn bad_magic() {
    let mut bytes = golden("three_objects");
    bytes[..4].copy_from_slice(b"PAR0");
    let e = err(&bytes);
    assert!(e.to_string().contains("bad magic"), "{e}");
}

#[test]
fn zero_rows() {
    assert!(matches!(
        err(&v1(columns(0))),
        DecodeError::RowCount { rows: 0 }
    ));
}

#[test]
fn two_rows() {
    let e = err(&v1(columns(2)));
    assert!(matches!(e, DecodeError::RowCount { rows: 2 }), "{e}");
    assert_eq!(
        e.to_string(),
        "manifest has 2 rows: exactly one is required"
    );
}

#[test]
fn missing_columns() {
    for name in [
        "dataset_id",
        "name",
        "schema_fingerprint",
        "version",
        "objects",
        "row_count",
        "created_at",
        "updated_at",
    ] {
        let cols = columns(1)
            .into_iter()
            .filter(|(f, _)| f.name() != name)
            .collect();
        match err(&v1(cols)) {
            DecodeError::MissingColumn { column } => assert_eq!(column, name),
            other => panic!("{name}: {other:?}"),
        }
    }
}

#[test]
fn mistyped_columns() {
    let text = Arc::new(StringArray::from(vec!["1"])) as ArrayRef;
    let int = Arc::new(Int64Array::from(vec![1])) as ArrayRef;
    let naive_ts = Arc::new(TimestampMicrosecondArray::from(vec![1])) as ArrayRef;
    let cases = [
        (
            "version",
            Field::new("version", DataType::Utf8, false),
            text.clone(),
        ),
        (
            "name",
            Field::new("name", DataType::Int64, false),
            int.clone(),
        ),
        (
            "objects",
            Field::new("objects", DataType::Utf8, false),
            text.clone(),
        ),
        (
            "row_count",
            Field::new("row_count", DataType::Utf8, true),
            text,
        ),
        (
            "created_at",
            Field::new("created_at", naive_ts.data_type().clone(), false),
            naive_ts,
        ),
        (
            "updated_at",
            Field::new("updated_at", DataType::Int64, false),
            int,
        ),
    ];
    for (name, field, array) in cases {
        let e = err(&v1(replace(columns(1), name, field, array)));
        match &e {
            DecodeError::ColumnType { column, .. } => assert_eq!(*column, name),
            other => panic!("{name}: {other:?}"),
        }
        assert!(e.to_string().contains("expected"), "{e}");
    }
}

#[test]
fn null_in_required_columns() {
    for name in ["dataset_id", "name", "schema_fingerprint"] {
        let null = Arc::new(StringArray::from(vec![None::<&str>])) as ArrayRef;
        let e = err(&v1(replace(
            columns(1),
            name,
            Field::new(name, DataType::Utf8, true),
            null,
        )));
        assert!(
            matches!(e, DecodeError::Null { column } if column == name),
            "{name}: {e}"
        );
    }
    let null = Arc::new(Int64Array::from(vec![None])) as ArrayRef;
    let e = err(&v1(replace(
        columns(1),
        "version",
        Field::new("version", DataType::Int64, true),
        null,
    )));
    assert!(matches!(e, DecodeError::Null { column: "version" }), "{e}");

    let null_ts =
        Arc::new(TimestampMicrosecondArray::from(vec![None]).with_timezone("UTC")) as ArrayRef;
    let field = Field::new("created_at", null_ts.data_type().clone(), true);
    let e = err(&v1(replace(columns(1), "created_at", field, null_ts)));
    assert!(
        matches!(
            e,
            DecodeError::Null {
                column: "created_at"
            }
        ),
        "{e}"
    );
}

#[test]
fn null_objects_list_and_items() {
    let (field, list) = objects(&["a"], &[1], 1, None, None);
    let list = list.as_any().downcast_ref::<ListArray>().unwrap().clone();
    let (item, offsets, values, _) = list.into_parts();
    let null_list = ListArray::new(item, offsets, values, Some(NullBuffer::from(vec![false])));
    let field = Field::new("objects", field.data_type().clone(), true);
    let e = err(&v1(replace(
        columns(1),
        "objects",
        field,
        Arc::new(null_list),
    )));
    assert!(matches!(e, DecodeError::Null { column: "objects" }), "{e}");

    let (field, list) = objects(&["a", "b"], &[1, 2], 1, Some(vec![true, false]), None);
    let e = err(&v1(replace(columns(1), "objects", field, list)));
    assert!(
        matches!(
            e,
            DecodeError::Null {
                column: "objects.key"
            }
        ),
        "{e}"
    );

    let (field, list) = objects(&["a", "b"], &[1, 2], 1, None, Some(vec![false, true]));
    let e = err(&v1(replace(columns(1), "objects", field, list)));
    assert!(matches!(e, DecodeError::Null { column: "objects" }), "{e}");
}

#[test]
fn list_children_that_disagree_on_length() {
    // Written with the low-level writer: the key leaf holds three values for the one row,
    // the size leaf two, so the list's offsets point past the end of the size values.
    let bytes = mismatched_list_file();
    let e = err(&bytes);
    assert!(
        matches!(
            e,
            DecodeError::Parquet(_) | DecodeError::Malformed { .. } | DecodeError::Panicked(_)
        ),
        "{e:?}"
    );
}

#[test]
fn format_version_missing_or_unknown() {
    let e = err(&write(columns(1), None));
    assert!(matches!(e, DecodeError::MissingFormatVersion { .. }), "{e}");
    let e = err(&write(columns(1), Some("3")));
    assert!(
        matches!(&e, DecodeError::UnknownFormatVersion { found } if found == "3"),
        "{e}"
    );
    assert!(e.to_string().contains("unknown format version"));
}

#[test]
fn values_that_break_the_model() {
    let s = |v: &str| Arc::new(StringArray::from(vec![v])) as ArrayRef;
    let utf8 = |n: &str| Field::new(n, DataType::Utf8, false);
    let cases: Vec<(&str, Vec<(Field, ArrayRef)>)> = vec![
        (
            "name",
            replace(columns(1), "name", utf8("name"), s("Sales.Orders")),
        ),
        (
            "dataset_id",
            replace(
                columns(1),
                "dataset_id",
                utf8("dataset_id"),
                s(&ID.to_uppercase()),
            ),
        ),
        (
            "dataset_id",
            replace(
                columns(1),
                "dataset_id",
                utf8("dataset_id"),
                s("not-a-uuid"),
            ),
        ),
        (
            "dataset_id",
            replace(
                columns(1),
                "dataset_id",
                utf8("dataset_id"),
                s("1f2906ae-f562-564c-aa86-f487c2afa750"),
            ),
        ),
        (
            "schema_fingerprint",
            replace(
                columns(1),
                "schema_fingerprint",
                utf8("schema_fingerprint"),
                s(""),
            ),
        ),
        (
            "version",
            replace(
                columns(1),
                "version",
                Field::new("version", DataType::Int64, false),
                Arc::new(Int64Array::from(vec![0])),
            ),
        ),
        (
            "row_count",
            replace(
                columns(1),
                "row_count",
                Field::new("row_count", DataType::Int64, true),
                Arc::new(Int64Array::from(vec![-1])),
            ),
        ),
        ("objects.key", {
            let (f, a) = objects(&["../escape"], &[1], 1, None, None);
            replace(columns(1), "objects", f, a)
        }),
        ("objects.size", {
            let (f, a) = objects(&["a"], &[-5], 1, None, None);
            replace(columns(1), "objects", f, a)
        }),
    ];
    for (column, cols) in cases {
        let e = err(&v1(cols));
        assert!(
            matches!(&e, DecodeError::InvalidValue { column: c, .. } if *c == column),
            "{column}: {e:?}"
        );
    }
}

#[test]
fn every_fuzz_regression_input_is_an_error_not_a_panic() {
    let dir = format!("{}/tests/fuzz-regressions", env!("CARGO_MANIFEST_DIR"));
    let mut count = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let outcome = std::panic::catch_unwind(|| decode(&bytes));
        let result =
            outcome.unwrap_or_else(|_| panic!("{} panicked out of decode", path.display()));
        assert!(result.is_err(), "{} decoded", path.display());
        count += 1;
    }
    assert!(count >= 1);
}

#[test]
fn the_known_reader_panic_is_contained() {
    // Found by the fuzzer in its first seconds: parquet 60.1 panics with "Decoder for dict
    // should have been set". `decode` must turn it into an error.
    let bytes = std::fs::read(format!(
        "{}/tests/fuzz-regressions/panic-dict-decoder-not-set.parquet",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let e = decode(&bytes).unwrap_err();
    assert!(
        matches!(e, DecodeError::Panicked(_) | DecodeError::Parquet(_)),
        "{e:?}"
    );
}

#[test]
fn encode_refuses_what_would_not_decode() {
    let mut m = decode(&golden("three_objects")).unwrap();
    m.version = 0;
    assert!(encode(&m).is_err());
    let mut m = decode(&golden("three_objects")).unwrap();
    m.dataset_id = uuid::Uuid::nil();
    assert!(encode(&m)
        .unwrap_err()
        .to_string()
        .contains("is not the id of name"));
}

fn mismatched_list_file() -> Vec<u8> {
    use parquet::column::writer::ColumnWriter;
    use parquet::file::writer::SerializedFileWriter;
    use parquet::schema::parser::parse_message_type;

    let schema = parse_message_type(
        "message manifest {
            required binary dataset_id (STRING);
            required binary name (STRING);
            required binary schema_fingerprint (STRING);
            required int64 version;
            required group objects (LIST) {
                repeated group list {
                    required group element {
                        required binary key (STRING);
                        required int64 size;
                    }
                }
            }
            optional int64 row_count;
            required int64 created_at (TIMESTAMP(MICROS,true));
            required int64 updated_at (TIMESTAMP(MICROS,true));
        }",
    )
    .unwrap();
    let props = WriterProperties::builder()
        .set_key_value_metadata(Some(vec![KeyValue::new(
            FORMAT_VERSION_KEY.to_owned(),
            "1".to_owned(),
        )]))
        .build();
    let mut out = Vec::new();
    let mut writer =
        SerializedFileWriter::new(&mut out, Arc::new(schema), Arc::new(props)).unwrap();
    let mut row_group = writer.next_row_group().unwrap();
    let mut index = 0;
    while let Some(mut column) = row_group.next_column().unwrap() {
        match column.untyped() {
            ColumnWriter::ByteArrayColumnWriter(w) => {
                let (values, def, rep): (Vec<&str>, Option<Vec<i16>>, Option<Vec<i16>>) =
                    match index {
                        0 => (vec![ID], None, None),
                        1 => (vec![NAME], None, None),
                        2 => (vec!["fp"], None, None),
                        _ => (
                            vec!["a", "b", "c"],
                            Some(vec![1, 1, 1]),
                            Some(vec![0, 1, 1]),
                        ),
                    };
                let values: Vec<parquet::data_type::ByteArray> =
                    values.into_iter().map(Into::into).collect();
                w.write_batch(&values, def.as_deref(), rep.as_deref())
                    .unwrap();
            }
            ColumnWriter::Int64ColumnWriter(w) => match index {
                5 => {
                    w.write_batch(&[1, 2], Some(&[1, 1]), Some(&[0, 1]))
                        .unwrap();
                }
                6 => {
                    w.write_batch(&[5], Some(&[1]), None).unwrap();
                }
                _ => {
                    w.write_batch(&[1_714_564_800_000_000], None, None).unwrap();
                }
            },
            _ => unreachable!(),
        }
        column.close().unwrap();
        index += 1;
    }
    row_group.close().unwrap();
    writer.close().unwrap();
    out
}
