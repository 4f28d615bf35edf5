//! Golden files: every file of every format version ever written keeps decoding to its
//! expected JSON. Files are added by `examples/write_golden.rs` and never edited.

use std::path::PathBuf;

use manifest_codec::{decode, Manifest};

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
            "v1/three_objects"
        ]
    );
}
