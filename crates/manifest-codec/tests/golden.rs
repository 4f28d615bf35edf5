//! Golden files: every file of every format version ever written keeps decoding to its
//! expected JSON. Files are added by `examples/write_golden.rs` and never edited.

use std::path::PathBuf;

use manifest_codec::{decode, decode_record, DatasetState, Manifest, Record};

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn check(version: &str, file: &str) -> Manifest {
    let dir = golden_dir().join(version);
    let bytes = std::fs::read(dir.join(format!("{file}.parquet"))).unwrap();
    let expected_json = std::fs::read_to_string(dir.join(format!("{file}.json"))).unwrap();
    let decoded = decode(&bytes).unwrap_or_else(|e| panic!("{version}/{file}: {e}"));
    let expected: serde_json::Value = serde_json::from_str(&expected_json).unwrap();
    assert_eq!(
        serde_json::to_value(&decoded).unwrap(),
        expected,
        "{version}/{file}"
    );
    assert_eq!(
        serde_json::from_str::<Manifest>(&expected_json).unwrap(),
        decoded
    );
    decoded
}

#[test]
fn v1_no_objects() {
    let m = check("v1", "no_objects");
    assert!(m.objects.is_empty());
    assert_eq!(m.row_count, None);
}

#[test]
fn v1_three_objects() {
    let m = check("v1", "three_objects");
    assert_eq!(m.objects.len(), 3);
    assert_eq!(m.row_count, Some(3_000_000));
    assert_eq!(
        m.dataset_id.to_string(),
        "c9b2103c-6ed4-5bd7-b380-c14a74b3d011"
    );
}

#[test]
fn v1_ten_thousand_objects() {
    let m = check("v1", "ten_thousand_objects");
    assert_eq!(m.objects.len(), 10_000);
}

/// A format-2 record decodes to its JSON, and its manifest alone to the manifest's JSON.
fn check_record(file: &str) -> Record {
    let dir = golden_dir().join("v2");
    let bytes = std::fs::read(dir.join(format!("{file}.parquet"))).unwrap();
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join(format!("{file}.json"))).unwrap())
            .unwrap();
    let record = decode_record(&bytes).unwrap_or_else(|e| panic!("v2/{file}: {e}"));
    assert_eq!(
        serde_json::to_value(&record).unwrap(),
        expected,
        "v2/{file}"
    );
    assert_eq!(decode(&bytes).unwrap(), record.manifest);
    record
}

#[test]
fn v1_files_decode_as_live_records_without_changes() {
    for file in ["no_objects", "three_objects", "ten_thousand_objects"] {
        let bytes = std::fs::read(golden_dir().join(format!("v1/{file}.parquet"))).unwrap();
        let record = decode_record(&bytes).unwrap();
        assert_eq!(record, Record::live(decode(&bytes).unwrap()));
    }
}

#[test]
fn v2_live_no_changes() {
    let r = check_record("live_no_changes");
    assert!(r.is_live() && r.changes.is_empty());
}

#[test]
fn v2_live_after_undrop() {
    let r = check_record("live_after_undrop");
    assert!(r.is_live());
    assert_eq!(r.changes.len(), 4);
    assert!(r.changes[0].request.is_some());
}

#[test]
fn v2_deleted() {
    let r = check_record("deleted");
    assert!(matches!(r.state, DatasetState::Deleted { .. }));
}

#[test]
fn v2_purged() {
    let r = check_record("purged");
    assert!(matches!(r.state, DatasetState::Purged { .. }));
    assert!(r.manifest.objects.is_empty());
}

#[test]
fn every_golden_file_is_covered() {
    // A new golden file must get a test above; this catches one added without.
    let mut found = Vec::new();
    for version in std::fs::read_dir(golden_dir()).unwrap() {
        let version = version.unwrap();
        for file in std::fs::read_dir(version.path()).unwrap() {
            let path = file.unwrap().path();
            if path.extension().is_some_and(|e| e == "parquet") {
                found.push(format!(
                    "{}/{}",
                    version.file_name().to_string_lossy(),
                    path.file_stem().unwrap().to_string_lossy()
                ));
            }
        }
    }
    found.sort();
    assert_eq!(
        found,
        [
            "v1/no_objects",
            "v1/ten_thousand_objects",
            "v1/three_objects",
            "v2/deleted",
            "v2/live_after_undrop",
            "v2/live_no_changes",
            "v2/purged",
        ]
    );
}
