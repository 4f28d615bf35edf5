//! Writes the golden manifest files of the current format version.
//!
//! Golden files are never rewritten: a file that already exists is left alone, and a format
//! change adds a new directory (`tests/golden/v2/`) instead of editing `v1/`.
//!
//! ```text
//! cargo run -p manifest-codec --example write_golden
//! ```

use std::path::Path;

use manifest_codec::{
    dataset_id, encode, DatasetName, Manifest, ObjectKey, ObjectRef, ObjectSize, SchemaFingerprint,
    Timestamp, FORMAT_VERSION,
};

fn manifest(name: &str, version: i64, objects: Vec<(String, i64)>, rows: Option<i64>) -> Manifest {
    let name = DatasetName::parse(name).unwrap();
    Manifest {
        dataset_id: dataset_id(&name),
        name,
        schema_fingerprint: SchemaFingerprint::parse("sha256:5d41402abc4b2a76b9719d911017c592")
            .unwrap(),
        version,
        objects: objects
            .into_iter()
            .map(|(key, size)| ObjectRef {
                key: ObjectKey::parse(&key).unwrap(),
                size: ObjectSize::new(size).unwrap(),
            })
            .collect(),
        row_count: rows,
        created_at: Timestamp::from_micros(1_714_564_800_123_456).unwrap(),
        updated_at: Timestamp::from_micros(1_717_243_200_654_321).unwrap(),
    }
}

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(format!("v{FORMAT_VERSION}"));
    std::fs::create_dir_all(&dir).unwrap();
    let cases = [
        ("no_objects", manifest("golden.no_objects", 1, vec![], None)),
        (
            "three_objects",
            manifest(
                "sales.orders_2024",
                7,
                vec![
                    ("lake/orders/part-0.parquet".into(), 0),
                    (
                        "lake/orders/caf\u{e9} \u{1f600}/part-1.parquet".into(),
                        4096,
                    ),
                    ("lake/orders/part-2.parquet".into(), i64::MAX),
                ],
                Some(3_000_000),
            ),
        ),
        (
            "ten_thousand_objects",
            manifest(
                "golden.ten_thousand",
                2,
                (0..10_000_i64)
                    .map(|i| (format!("lake/big/part-{i:05}.parquet"), i * 1_000))
                    .collect(),
                Some(0),
            ),
        ),
    ];
    for (file, manifest) in cases {
        let parquet = dir.join(format!("{file}.parquet"));
        let json = dir.join(format!("{file}.json"));
        if parquet.try_exists().unwrap() || json.try_exists().unwrap() {
            println!(
                "kept {} (golden files are never rewritten)",
                parquet.display()
            );
            continue;
        }
        std::fs::write(&parquet, encode(&manifest).unwrap()).unwrap();
        let mut text = serde_json::to_string_pretty(&manifest).unwrap();
        text.push('\n');
        std::fs::write(&json, text).unwrap();
        println!("wrote {}", parquet.display());
    }
}
