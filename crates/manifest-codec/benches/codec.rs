//! Encode and decode throughput for manifests of 10, 1,000 and 100,000 objects, alone
//! (format 1, what readers get) and as stored records (format 2, with one change).

use std::hint::black_box;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use manifest_codec::{
    dataset_id, decode, decode_record, encode, encode_record, Change, ChangeKind, DatasetName,
    Manifest, ObjectKey, ObjectRef, ObjectSize, Record, SchemaFingerprint, Timestamp,
};

fn manifest(objects: usize) -> Manifest {
    let name = DatasetName::parse("bench.orders_2024").unwrap();
    Manifest {
        dataset_id: dataset_id(&name),
        name,
        schema_fingerprint: SchemaFingerprint::parse("sha256:0f1e2d3c4b5a69788796a5b4c3d2e1f0")
            .unwrap(),
        version: 3,
        objects: (0..objects)
            .map(|i| ObjectRef {
                key: ObjectKey::parse(&format!(
                    "lake/orders/date=2024-05-{:02}/part-{i:08}.parquet",
                    i % 28 + 1
                ))
                .unwrap(),
                size: ObjectSize::new(134_217_728 + i64::try_from(i).unwrap()).unwrap(),
            })
            .collect(),
        row_count: Some(1_000_000),
        created_at: Timestamp::from_micros(1_714_564_800_000_000).unwrap(),
        updated_at: Timestamp::from_micros(1_714_564_900_000_000).unwrap(),
    }
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("manifest");
    for n in [10, 1_000, 100_000] {
        let m = manifest(n);
        let bytes = encode(&m).unwrap();
        if n >= 100_000 {
            group.sample_size(20);
        }
        group.bench_with_input(BenchmarkId::new("encode", n), &m, |b, m| {
            b.iter(|| encode(black_box(m)).unwrap());
        });
        group.bench_with_input(BenchmarkId::new("decode", n), &bytes, |b, bytes| {
            b.iter(|| decode(black_box(bytes)).unwrap());
        });
        group.bench_with_input(BenchmarkId::new("roundtrip", n), &m, |b, m| {
            b.iter(|| decode(&encode(black_box(m)).unwrap()).unwrap());
        });
        let record = Record {
            changes: vec![Change {
                seq: 1_714_564_900_000_000,
                kind: ChangeKind::Registered,
                version: m.version,
                at: m.updated_at,
                request: None,
            }],
            ..Record::live(m.clone())
        };
        let stored = encode_record(&record).unwrap();
        group.bench_with_input(BenchmarkId::new("encode_record", n), &record, |b, r| {
            b.iter(|| encode_record(black_box(r)).unwrap());
        });
        group.bench_with_input(BenchmarkId::new("decode_record", n), &stored, |b, bytes| {
            b.iter(|| decode_record(black_box(bytes)).unwrap());
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
