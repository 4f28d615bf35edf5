//! Writes the golden files of the current format version (records, format 2).
//!
//! Golden files are never rewritten: a file that already exists is left alone, and a format
//! change adds a new directory (`tests/golden/v2/`) instead of editing `v1/`.
//!
//! ```text
//! cargo run -p manifest-codec --example write_golden
//! ```

use std::path::Path;

use manifest_codec::{
    dataset_id, encode_record, Change, ChangeKind, DatasetName, DatasetState, Manifest, ObjectKey,
    ObjectRef, ObjectSize, Record, RequestTag, SchemaFingerprint, Timestamp, FORMAT_VERSION,
};

fn at(micros: i64) -> Timestamp {
    Timestamp::from_micros(micros).unwrap()
}

fn change(seq: u64, kind: ChangeKind, version: i64, micros: i64) -> Change {
    Change {
        seq,
        kind,
        version,
        at: at(micros),
        request: None,
    }
}

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

fn cases() -> Vec<(&'static str, Record)> {
    let registered = Change {
        request: Some(RequestTag {
            idempotency_key: "load-2024-06-01T12:00Z".into(),
            request_sha256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
                .into(),
            existing: true,
        }),
        ..change(
            1_717_243_200_654_321,
            ChangeKind::Registered,
            7,
            1_717_243_200_654_321,
        )
    };
    let three = manifest(
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
    );
    vec![
        (
            "live_no_changes",
            Record::live(manifest("golden.no_objects", 1, vec![], None)),
        ),
        (
            "live_after_undrop",
            Record {
                manifest: three.clone(),
                state: DatasetState::Live,
                changes: vec![
                    registered.clone(),
                    change(
                        1_717_243_300_000_000,
                        ChangeKind::Deleted,
                        7,
                        1_717_243_300_000_000,
                    ),
                    change(
                        1_717_243_400_000_000,
                        ChangeKind::Undropped,
                        7,
                        1_717_243_400_000_000,
                    ),
                    change(
                        1_717_243_500_000_000,
                        ChangeKind::Expired,
                        5,
                        1_717_243_500_000_000,
                    ),
                ],
            },
        ),
        (
            "deleted",
            Record {
                manifest: three.clone(),
                state: DatasetState::Deleted {
                    at: at(1_717_243_300_000_000),
                },
                changes: vec![
                    registered,
                    change(
                        1_717_243_300_000_000,
                        ChangeKind::Deleted,
                        7,
                        1_717_243_300_000_000,
                    ),
                ],
            },
        ),
        (
            "purged",
            Record {
                manifest: Manifest {
                    objects: Vec::new(),
                    row_count: None,
                    ..three
                },
                state: DatasetState::Purged {
                    at: at(1_717_243_600_000_000),
                },
                changes: vec![change(
                    1_717_243_600_000_000,
                    ChangeKind::Purged,
                    7,
                    1_717_243_600_000_000,
                )],
            },
        ),
    ]
}

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(format!("v{FORMAT_VERSION}"));
    std::fs::create_dir_all(&dir).unwrap();
    for (file, record) in cases() {
        let parquet = dir.join(format!("{file}.parquet"));
        let json = dir.join(format!("{file}.json"));
        if parquet.try_exists().unwrap() || json.try_exists().unwrap() {
            println!(
                "kept {} (golden files are never rewritten)",
                parquet.display()
            );
            continue;
        }
        std::fs::write(&parquet, encode_record(&record).unwrap()).unwrap();
        let mut text = serde_json::to_string_pretty(&record).unwrap();
        text.push('\n');
        std::fs::write(&json, text).unwrap();
        println!("wrote {}", parquet.display());
    }
}
