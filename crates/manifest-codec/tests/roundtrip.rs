//! Arbitrary manifests survive encode → decode unchanged.

use manifest_codec::{
    dataset_id, decode, decode_record, encode, encode_record, Change, ChangeKind, DatasetName,
    DatasetState, Manifest, ObjectKey, ObjectRef, ObjectSize, Record, RequestTag,
    SchemaFingerprint, Timestamp,
};
use proptest::collection::vec;
use proptest::prelude::*;

fn segment() -> impl Strategy<Value = String> {
    // Any printable unicode without '/', '\\' or control characters, then filtered by the
    // real rules (which drop '.' and '..').
    "[^/\\\\\\p{Cc}]{1,12}"
}

fn key() -> impl Strategy<Value = ObjectKey> {
    vec(segment(), 1..5)
        .prop_map(|segments| segments.join("/"))
        .prop_filter_map("valid key", |k| ObjectKey::parse(&k).ok())
}

fn timestamp() -> impl Strategy<Value = Timestamp> {
    // Years 1..9999 in microseconds.
    (-62_135_596_800_000_000_i64..253_402_300_799_999_999)
        .prop_map(|m| Timestamp::from_micros(m).unwrap())
}

fn manifest(max_objects: usize) -> impl Strategy<Value = Manifest> {
    (
        "[a-z0-9][a-z0-9_-]{0,30}(\\.[a-z0-9][a-z0-9_-]{0,30}){0,2}",
        "\\PC{1,64}",
        1..=i64::MAX,
        vec((key(), 0..=i64::MAX), 0..max_objects),
        proptest::option::of(0..=i64::MAX),
        timestamp(),
        timestamp(),
    )
        .prop_map(
            |(name, fingerprint, version, objects, row_count, created, updated)| {
                let name = DatasetName::parse(&name).unwrap();
                Manifest {
                    dataset_id: dataset_id(&name),
                    name,
                    schema_fingerprint: SchemaFingerprint::parse(&fingerprint).unwrap(),
                    version,
                    objects: objects
                        .into_iter()
                        .map(|(key, size)| ObjectRef {
                            key,
                            size: ObjectSize::new(size).unwrap(),
                        })
                        .collect(),
                    row_count,
                    created_at: created,
                    updated_at: updated,
                }
            },
        )
}

fn change() -> impl Strategy<Value = Change> {
    (
        0..5_usize,
        1..=i64::MAX,
        timestamp(),
        proptest::option::of(("[!-~]{1,255}", "[0-9a-f]{64}", any::<bool>())),
    )
        .prop_map(|(kind, version, at, request)| Change {
            seq: 0,
            kind: ChangeKind::ALL[kind],
            version,
            at,
            request: request.map(|(key, sha, existing)| RequestTag {
                idempotency_key: key,
                request_sha256: sha,
                existing,
            }),
        })
}

fn record() -> impl Strategy<Value = Record> {
    (
        manifest(10),
        0..3_u8,
        timestamp(),
        vec((1..1_000_000_u64, change()), 0..12),
    )
        .prop_map(|(manifest, state, at, changes)| {
            let mut seq = 0;
            let changes = changes
                .into_iter()
                .map(|(step, change)| {
                    seq += step;
                    Change { seq, ..change }
                })
                .collect();
            let state = match state {
                0 => DatasetState::Live,
                1 => DatasetState::Deleted { at },
                _ => DatasetState::Purged { at },
            };
            Record {
                manifest,
                state,
                changes,
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn records_round_trip(r in record()) {
        let bytes = encode_record(&r).unwrap();
        prop_assert_eq!(decode(&bytes).unwrap(), r.manifest.clone());
        prop_assert_eq!(decode_record(&bytes).unwrap(), r);
    }

    #[test]
    fn small_manifests_round_trip(m in manifest(20)) {
        let bytes = encode(&m).unwrap();
        prop_assert_eq!(decode(&bytes).unwrap(), m);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn large_manifests_round_trip(m in manifest(2_000)) {
        let bytes = encode(&m).unwrap();
        prop_assert_eq!(decode(&bytes).unwrap(), m);
    }

    #[test]
    fn json_round_trips(m in manifest(20)) {
        let json = serde_json::to_string(&m).unwrap();
        prop_assert_eq!(serde_json::from_str::<Manifest>(&json).unwrap(), m);
    }
}

#[test]
fn extremes_round_trip() {
    let name = DatasetName::parse(&"z".repeat(255)).unwrap();
    let m = Manifest {
        dataset_id: dataset_id(&name),
        name,
        schema_fingerprint: SchemaFingerprint::parse(&"\u{1f600}".repeat(128)).unwrap(),
        version: i64::MAX,
        objects: vec![
            ObjectRef {
                key: ObjectKey::parse(&"k".repeat(1024)).unwrap(),
                size: ObjectSize::new(i64::MAX).unwrap(),
            },
            ObjectRef {
                key: ObjectKey::parse("dup").unwrap(),
                size: ObjectSize::default(),
            },
            ObjectRef {
                key: ObjectKey::parse("dup").unwrap(),
                size: ObjectSize::default(),
            },
        ],
        row_count: Some(0),
        created_at: Timestamp::from_micros(-62_135_596_800_000_000).unwrap(),
        updated_at: Timestamp::from_micros(253_402_300_799_999_999).unwrap(),
    };
    assert_eq!(decode(&encode(&m).unwrap()).unwrap(), m);
}
