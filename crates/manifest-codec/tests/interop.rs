//! pyarrow, an independent Parquet reader, reads what this crate writes and sees the same
//! values. Python with pyarrow comes from the project's `.venv` (`make venv`), or from
//! `INTEROP_PYTHON`; a missing interpreter fails the test, it never skips it.

use std::path::PathBuf;
use std::process::Command;

use manifest_codec::{
    dataset_id, encode, DatasetName, Manifest, ObjectKey, ObjectRef, ObjectSize, SchemaFingerprint,
    Timestamp,
};
use serde_json::{json, Value};

fn python() -> PathBuf {
    testkit::venv_python()
}

fn read_with_pyarrow(manifest: &Manifest) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("manifest.parquet");
    std::fs::write(&path, encode(manifest).unwrap()).unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/interop/read_manifest.py");
    let python = python();
    let out = Command::new(&python)
        .arg(script)
        .arg(&path)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    assert!(
        out.status.success(),
        "pyarrow failed to read the manifest: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn pyarrow_reads_what_we_write() {
    let name = DatasetName::parse("sales.orders_2024").unwrap();
    let manifest = Manifest {
        dataset_id: dataset_id(&name),
        name,
        schema_fingerprint: SchemaFingerprint::parse("sha256:abc").unwrap(),
        version: 4,
        objects: vec![
            ObjectRef {
                key: ObjectKey::parse("lake/orders/part-0.parquet").unwrap(),
                size: ObjectSize::from(1234_u32),
            },
            ObjectRef {
                key: ObjectKey::parse("lake/caf\u{e9} \u{1f600}/part-1.parquet").unwrap(),
                size: ObjectSize::new(i64::MAX).unwrap(),
            },
        ],
        row_count: Some(42),
        created_at: Timestamp::from_micros(1_714_564_800_123_456).unwrap(),
        updated_at: Timestamp::from_micros(1_717_243_200_654_321).unwrap(),
    };
    let seen = read_with_pyarrow(&manifest);

    assert_eq!(seen["num_rows"], 1);
    assert_eq!(seen["format_version"], "1");
    assert_eq!(seen["dataset_id"], "c9b2103c-6ed4-5bd7-b380-c14a74b3d011");
    assert_eq!(seen["name"], "sales.orders_2024");
    assert_eq!(seen["schema_fingerprint"], "sha256:abc");
    assert_eq!(seen["version"], 4);
    assert_eq!(seen["row_count"], 42);
    assert_eq!(
        seen["objects"],
        json!([
            {"key": "lake/orders/part-0.parquet", "size": 1234},
            {"key": "lake/caf\u{e9} \u{1f600}/part-1.parquet", "size": i64::MAX},
        ])
    );
    assert_eq!(seen["timestamp_unit"], "us");
    assert_eq!(seen["timestamp_tz"], "UTC");
    assert_eq!(seen["created_at_us"], 1_714_564_800_123_456_i64);
    assert_eq!(seen["updated_at_us"], 1_717_243_200_654_321_i64);
    assert_eq!(seen["created_at_iso"], "2024-05-01T12:00:00.123456+00:00");
    assert_eq!(seen["schema"]["dataset_id"], "string");
    assert_eq!(seen["schema"]["version"], "int64");
    assert_eq!(seen["schema"]["row_count"], "int64");
    assert_eq!(seen["schema"]["created_at"], "timestamp[us, tz=UTC]");
    let objects_type = seen["schema"]["objects"].as_str().unwrap();
    assert!(
        objects_type.starts_with("list<") && objects_type.contains("struct<key: string"),
        "{objects_type}"
    );
}

#[test]
fn pyarrow_sees_a_null_row_count_and_no_objects() {
    let name = DatasetName::parse("a").unwrap();
    let manifest = Manifest {
        dataset_id: dataset_id(&name),
        name,
        schema_fingerprint: SchemaFingerprint::parse("fp").unwrap(),
        version: 1,
        objects: vec![],
        row_count: None,
        created_at: Timestamp::from_micros(0).unwrap(),
        updated_at: Timestamp::from_micros(0).unwrap(),
    };
    let seen = read_with_pyarrow(&manifest);
    assert_eq!(seen["dataset_id"], "e407b3cd-f733-5b16-8857-e7238483c721");
    assert_eq!(seen["row_count"], Value::Null);
    assert_eq!(seen["objects"], json!([]));
}

fn write_with_pyarrow(compression: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("from_python.parquet");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/interop/write_manifest.py");
    let out = Command::new(python())
        .arg(script)
        .arg(&path)
        .arg(compression)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read(&path).unwrap()
}

#[test]
fn we_read_what_pyarrow_writes() {
    // pyarrow's own layout: nullable fields, list items named "element".
    let m = manifest_codec::decode(&write_with_pyarrow("snappy"))
        .unwrap_or_else(|e| panic!("decoding a pyarrow-written manifest failed: {e}"));
    assert_eq!(m.name.as_str(), "orders");
    assert_eq!(m.schema_fingerprint.as_str(), "fp-from-python");
    assert_eq!(m.version, 3);
    assert_eq!(m.objects.len(), 2);
    assert_eq!(m.objects[1].key.as_str(), "lake/o/2.parquet");
    assert_eq!(m.objects[1].size.get(), 20);
    assert_eq!(m.row_count, None);
    assert_eq!(m.created_at.as_micros(), 1_714_564_800_123_456);
    let m = manifest_codec::decode(&write_with_pyarrow("none")).unwrap();
    assert_eq!(m.version, 3);
}

#[test]
fn an_unsupported_codec_is_a_clear_error() {
    // Manifests are written with snappy; this build deliberately reads no zstd (a C
    // dependency for files catalogd never writes). Such a file is an error, not a panic.
    let e = manifest_codec::decode(&write_with_pyarrow("zstd")).unwrap_err();
    assert!(e.to_string().contains("zstd"), "{e}");
}

#[test]
fn pyarrow_reads_a_stored_record_of_format_2() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/v2/deleted.parquet");
    let script = r#"
import json, sys
import pyarrow.parquet as pq
pf = pq.ParquetFile(sys.argv[1])
row = pf.read().to_pylist()[0]
meta = {k.decode(): v.decode() for k, v in (pf.metadata.metadata or {}).items()}
print(json.dumps({
    "format_version": meta.get("catalogd.manifest.format_version"),
    "name": row["name"], "version": row["version"],
    "deleted_at": row["deleted_at"].isoformat(), "purged_at": row["purged_at"],
    "changes": [[c["seq"], c["type"], c["version"], c.get("idempotency_key")] for c in json.loads(row["changes"])],
}))
"#;
    let python = python();
    let out = Command::new(&python)
        .arg("-c")
        .arg(script)
        .arg(&path)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    assert!(
        out.status.success(),
        "pyarrow failed to read the record: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        seen,
        json!({
            "format_version": "2",
            "name": "sales.orders_2024",
            "version": 7,
            "deleted_at": "2024-06-01T12:01:40+00:00",
            "purged_at": null,
            "changes": [
                [1_717_243_200_654_321_u64, "registered", 7, "load-2024-06-01T12:00Z"],
                [1_717_243_300_000_000_u64, "deleted", 7, null],
            ],
        })
    );
}

/// The pyarrow snippet of `docs/schema-fingerprint.md`, exactly as printed there.
fn docs_snippet() -> String {
    let doc = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/schema-fingerprint.md"),
    )
    .unwrap();
    let start = doc.find("```python\n").expect("a python block") + "```python\n".len();
    let len = doc[start..].find("```").expect("the block ends");
    doc[start..start + len].to_owned()
}

/// `(file name, fingerprint)` for every `.parquet` file in `dir`, by the docs snippet.
fn python_fingerprints(dir: &std::path::Path) -> std::collections::BTreeMap<String, String> {
    let script = dir.join("fingerprint.py");
    std::fs::write(&script, docs_snippet()).unwrap();
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    files.sort();
    let out = Command::new(python())
        .arg(&script)
        .args(&files)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let (fp, path) = line.split_once(' ').unwrap();
            let file = PathBuf::from(path);
            (
                file.file_name().unwrap().to_string_lossy().into_owned(),
                fp.to_owned(),
            )
        })
        .collect()
}

fn rust_fingerprint(path: &std::path::Path) -> String {
    manifest_codec::read_footer(&std::fs::read(path).unwrap())
        .unwrap()
        .fingerprint()
        .unwrap()
}

/// The table of `same.parquet` in write_tables.py, written by arrow-rs.
fn write_same_with_arrow_rs(path: &std::path::Path) {
    use std::sync::Arc;

    use arrow_array::builder::{ListBuilder, StringBuilder};
    use arrow_array::{
        ArrayRef, Decimal128Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
    };
    use arrow_schema::{DataType, Field, Schema, TimeUnit};

    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
        Field::new("price", DataType::Decimal128(10, 2), true),
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
    ]));
    let mut tags = ListBuilder::new(StringBuilder::new());
    tags.values().append_value("x");
    tags.values().append_value("y");
    tags.append(true);
    tags.append(true);
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(vec![1, 2])),
        Arc::new(StringArray::from(vec![Some("a"), None])),
        Arc::new(
            Decimal128Array::from(vec![Some(150), None])
                .with_precision_and_scale(10, 2)
                .unwrap(),
        ),
        Arc::new(
            TimestampMicrosecondArray::from(vec![Some(1_714_564_800_000_000), None])
                .with_timezone("UTC"),
        ),
        Arc::new(tags.finish()),
    ];
    let batch = RecordBatch::try_new(schema.clone(), columns).unwrap();
    let mut writer =
        parquet::arrow::ArrowWriter::try_new(std::fs::File::create(path).unwrap(), schema, None)
            .unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
}

#[test]
fn schema_fingerprints_agree_with_pyarrow_and_across_writers() {
    let dir = tempfile::tempdir().unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/interop/write_tables.py");
    let out = Command::new(python())
        .arg(script)
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    write_same_with_arrow_rs(&dir.path().join("same-arrow-rs.parquet"));

    // The docs' snippet and the Rust implementation agree on every file.
    let by_python = python_fingerprints(dir.path());
    assert_eq!(by_python.len(), 9, "{by_python:?}");
    for (file, fp) in &by_python {
        assert_eq!(&rust_fingerprint(&dir.path().join(file)), fp, "{file}");
    }
    // One table, three writers or encodings: one fingerprint.
    let same = &by_python["same.parquet"];
    assert_eq!(&by_python["same-arrow-rs.parquet"], same);
    assert_eq!(&by_python["same-encoded.parquet"], same);
    // Each change a reader would notice: another fingerprint, all distinct.
    let changed: std::collections::BTreeSet<&String> = by_python
        .iter()
        .filter(|(f, _)| f.starts_with("changed-") || f.as_str() == "wide.parquet")
        .map(|(_, fp)| fp)
        .collect();
    assert_eq!(changed.len(), 6);
    assert!(!changed.contains(same));
}
