//! The register contract against the in-memory store with injected faults.

use std::rc::Rc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use manifest_codec::{
    manifest_key, DatasetName, ObjectKey, ObjectRef, SchemaFingerprint, Timestamp,
};

use super::{Catalog, CatalogError, Clock, RegisterRequest, SystemClock};
use crate::store::{Fault, ManifestStore, MemoryStore};

fn name(n: &str) -> DatasetName {
    DatasetName::parse(n).unwrap()
}

fn request(n: &str, fingerprint: &str, keys: &[&str]) -> RegisterRequest {
    RegisterRequest {
        name: name(n),
        schema_fingerprint: SchemaFingerprint::parse(fingerprint).unwrap(),
        objects: keys
            .iter()
            .map(|k| ObjectRef {
                key: ObjectKey::parse(k).unwrap(),
                size: 10_u32.into(),
            })
            .collect(),
        row_count: Some(5),
    }
}

fn catalog() -> (Catalog, Rc<MemoryStore>) {
    let store = Rc::new(MemoryStore::new());
    (Catalog::new(store.clone(), Arc::new(SystemClock)), store)
}

#[tokio::test]
async fn create_update_conflict() {
    let (catalog, store) = catalog();
    let created = catalog
        .register(request("orders", "fp1", &["a"]))
        .await
        .unwrap();
    assert!(!created.existing);
    assert_eq!(created.manifest.version, 1);
    assert_eq!(
        created.manifest.dataset_id.to_string(),
        "1f2906ae-f562-564c-aa86-f487c2afa750"
    );
    assert_eq!(created.manifest.created_at, created.manifest.updated_at);

    let updated = catalog
        .register(request("orders", "fp1", &["b", "c"]))
        .await
        .unwrap();
    assert!(updated.existing);
    assert_eq!(updated.manifest.version, 2);
    assert_eq!(updated.manifest.dataset_id, created.manifest.dataset_id);
    assert_eq!(updated.manifest.created_at, created.manifest.created_at);
    assert!(updated.manifest.updated_at >= created.manifest.updated_at);
    assert_eq!(updated.manifest.objects.len(), 2);

    let conflict = catalog
        .register(request("orders", "fp2", &["x"]))
        .await
        .unwrap_err();
    match conflict {
        CatalogError::FingerprintConflict {
            existing,
            requested,
            ..
        } => assert_eq!((existing.as_str(), requested.as_str()), ("fp1", "fp2")),
        other => panic!("{other:?}"),
    }
    assert_eq!(catalog.get(&name("orders")).unwrap(), updated.manifest);
    let stored = store.get(&name("orders")).await.unwrap().unwrap();
    assert_eq!(stored.manifest, *updated.manifest);
    assert_eq!(store.len(), 1);
}

#[tokio::test]
async fn invalid_requests_change_nothing() {
    let (catalog, store) = catalog();
    for bad in [
        request("a", "fp", &[manifest_key(&name("a")).as_str()]),
        request("a", "fp", &["_catalog"]),
        request("a", "fp", &["x", "y", "x"]),
    ] {
        assert!(matches!(
            catalog.register(bad).await,
            Err(CatalogError::Invalid(_))
        ));
    }
    let mut negative = request("a", "fp", &[]);
    negative.row_count = Some(-1);
    assert!(matches!(
        catalog.register(negative).await,
        Err(CatalogError::Invalid(_))
    ));
    assert!(catalog.is_empty());
    assert_eq!(store.puts(), 0);
}

#[tokio::test]
async fn a_failed_write_changes_nothing() {
    let (catalog, store) = catalog();
    store.inject(Fault::Fail);
    let err = catalog
        .register(request("a", "fp", &["k1"]))
        .await
        .unwrap_err();
    assert!(matches!(err, CatalogError::Storage(_)));
    assert!(catalog.get(&name("a")).is_none());
    assert!(store.is_empty());

    let v1 = catalog
        .register(request("a", "fp", &["k1"]))
        .await
        .unwrap()
        .manifest;
    store.inject(Fault::Fail);
    catalog
        .register(request("a", "fp", &["k2"]))
        .await
        .unwrap_err();
    assert_eq!(catalog.get(&name("a")).unwrap(), v1);
    assert_eq!(store.get(&name("a")).await.unwrap().unwrap().manifest, *v1);
    let v2 = catalog
        .register(request("a", "fp", &["k2"]))
        .await
        .unwrap()
        .manifest;
    assert_eq!(v2.version, 2);
}

#[tokio::test]
async fn an_unknown_outcome_is_re_read_before_the_next_write() {
    let (catalog, store) = catalog();
    catalog.register(request("a", "fp", &["k1"])).await.unwrap();
    // The write happened but the answer was lost.
    store.inject(Fault::UnknownWritten);
    catalog
        .register(request("a", "fp", &["k2"]))
        .await
        .unwrap_err();
    let next = catalog.register(request("a", "fp", &["k3"])).await.unwrap();
    assert_eq!(next.manifest.version, 3, "the lost write (v2) was re-read");
    // The write did not happen.
    store.inject(Fault::UnknownNotWritten);
    catalog
        .register(request("a", "fp", &["k4"]))
        .await
        .unwrap_err();
    let next = catalog.register(request("a", "fp", &["k5"])).await.unwrap();
    assert_eq!(next.manifest.version, 4);
    assert_eq!(store.len(), 1);
}

#[tokio::test]
async fn a_phantom_writer_is_re_read_and_the_write_retried() {
    let (catalog, store) = catalog();
    catalog.register(request("a", "fp", &["k1"])).await.unwrap();
    store.inject(Fault::PhantomWriter);
    let r = catalog
        .register(request("a", "fp", &["mine"]))
        .await
        .unwrap();
    assert!(r.existing);
    assert_eq!(r.manifest.version, 3, "v2 was the phantom's");
    assert_eq!(r.manifest.objects[0].key.as_str(), "mine");
    assert_eq!(
        store.get(&name("a")).await.unwrap().unwrap().manifest,
        *r.manifest
    );
}

#[tokio::test]
async fn many_concurrent_registers_of_one_name_get_every_version_once() {
    let (catalog, store) = catalog();
    let tasks = (0..64).map(|t| {
        let catalog = &catalog;
        async move {
            let mut versions = Vec::new();
            for i in 0..10 {
                let r = catalog
                    .register(request("hot", "fp", &[&format!("t{t}/r{i}")]))
                    .await
                    .unwrap();
                versions.push((r.manifest.version, r.existing));
            }
            versions
        }
    });
    let all: Vec<(i64, bool)> = futures_util::future::join_all(tasks).await.concat();
    let mut versions: Vec<i64> = all.iter().map(|(v, _)| *v).collect();
    versions.sort_unstable();
    assert_eq!(versions, (1..=640).collect::<Vec<_>>());
    assert_eq!(all.iter().filter(|(_, existing)| !existing).count(), 1);
    assert_eq!(store.len(), 1);
    assert_eq!(catalog.get(&name("hot")).unwrap().version, 640);
}

#[tokio::test]
async fn mixed_fingerprints_one_winner_and_it_never_flips() {
    let (catalog, store) = catalog();
    let tasks = (0..32).map(|t| {
        let catalog = &catalog;
        async move {
            let fp = if t % 2 == 0 { "even" } else { "odd" };
            (fp, catalog.register(request("contested", fp, &["k"])).await)
        }
    });
    let results = futures_util::future::join_all(tasks).await;
    let winner = catalog
        .get(&name("contested"))
        .unwrap()
        .schema_fingerprint
        .to_string();
    for (fp, result) in &results {
        if *fp == winner {
            assert!(result.is_ok());
        } else {
            assert!(
                matches!(result, Err(CatalogError::FingerprintConflict { .. })),
                "{result:?}"
            );
        }
    }
    let stored = store
        .get(&name("contested"))
        .await
        .unwrap()
        .unwrap()
        .manifest;
    assert_eq!(stored.schema_fingerprint.as_str(), winner);
    assert_eq!(stored.version, 16);
}

#[derive(Debug)]
struct ManualClock(AtomicI64);

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_micros(self.0.load(Ordering::SeqCst)).unwrap()
    }
}

#[tokio::test]
async fn a_clock_going_backwards_never_decreases_updated_at() {
    let store = Rc::new(MemoryStore::new());
    let clock = Arc::new(ManualClock(AtomicI64::new(1_000_000_000)));
    let catalog = Catalog::new(store, clock.clone());
    let v1 = catalog
        .register(request("a", "fp", &[]))
        .await
        .unwrap()
        .manifest;
    clock.0.store(500_000_000, Ordering::SeqCst);
    let v2 = catalog
        .register(request("a", "fp", &[]))
        .await
        .unwrap()
        .manifest;
    assert_eq!(v2.updated_at, v1.updated_at);
    assert_eq!(v2.created_at, v1.created_at);
    clock.0.store(2_000_000_000, Ordering::SeqCst);
    let v3 = catalog
        .register(request("a", "fp", &[]))
        .await
        .unwrap()
        .manifest;
    assert_eq!(v3.updated_at.as_micros(), 2_000_000_000);
}

#[tokio::test]
async fn a_store_hanging_on_one_name_does_not_block_others() {
    let (catalog, store) = catalog();
    store.hang(&name("frozen"));
    let frozen = catalog.register(request("frozen", "fp", &[]));
    let others = async {
        for i in 0..20 {
            let r = tokio::time::timeout(
                Duration::from_secs(1),
                catalog.register(request(&format!("free{i}"), "fp", &[])),
            )
            .await
            .expect("another name waited for the frozen one");
            r.unwrap();
        }
    };
    tokio::select! {
        _ = frozen => panic!("the frozen register returned"),
        () = others => {}
    }
    assert_eq!(catalog.len(), 20);
}

#[tokio::test]
async fn delete_then_register_starts_again_at_version_one() {
    let (catalog, store) = catalog();
    let first = catalog
        .register(request("a", "fp1", &[]))
        .await
        .unwrap()
        .manifest;
    catalog.register(request("a", "fp1", &[])).await.unwrap();
    catalog.delete(&name("a")).await.unwrap();
    assert!(catalog.get(&name("a")).is_none());
    assert!(store.is_empty());
    assert!(matches!(
        catalog.delete(&name("a")).await,
        Err(CatalogError::NotFound { .. })
    ));
    let again = catalog.register(request("a", "fp2", &[])).await.unwrap();
    assert!(!again.existing);
    assert_eq!(again.manifest.version, 1);
    assert_eq!(again.manifest.dataset_id, first.dataset_id);
}

#[tokio::test]
async fn handles_share_the_index_and_the_writer_locks() {
    let (first, store) = catalog();
    let second = first.state().attach(store.clone());
    let a = first.register(request("shared", "fp", &[]));
    let b = second.register(request("shared", "fp", &[]));
    let (a, b) = futures_util::future::join(a, b).await;
    let mut versions = [a.unwrap().manifest.version, b.unwrap().manifest.version];
    versions.sort_unstable();
    assert_eq!(versions, [1, 2]);
    assert_eq!(second.get(&name("shared")).unwrap().version, 2);
    assert_eq!(first.len(), second.len());
}

#[tokio::test]
async fn rehydration_rebuilds_the_same_index() {
    let (catalog, store) = catalog();
    for i in 0..100 {
        catalog
            .register(request(&format!("ds{i:03}"), "fp", &["k"]))
            .await
            .unwrap();
    }
    catalog
        .register(request("ds000", "fp", &["k2"]))
        .await
        .unwrap();
    let restarted = Catalog::new(store.clone(), Arc::new(SystemClock));
    assert_eq!(restarted.rehydrate().await.unwrap().datasets, 100);
    for i in 0..100 {
        let n = name(&format!("ds{i:03}"));
        assert_eq!(restarted.get(&n), catalog.get(&n));
    }
    assert_eq!(restarted.get(&name("ds000")).unwrap().version, 2);
    // The rebuilt catalog continues the version sequence.
    let next = restarted
        .register(request("ds000", "fp", &[]))
        .await
        .unwrap();
    assert_eq!(next.manifest.version, 3);
}

#[tokio::test]
async fn a_corrupt_manifest_fails_rehydration_naming_it_and_changes_nothing() {
    let (catalog, store) = catalog();
    catalog.register(request("good", "fp", &[])).await.unwrap();
    store.insert_raw(&name("broken"), "garbage");
    let puts_before = store.puts();
    let restarted = Catalog::new(store.clone(), Arc::new(SystemClock));
    let err = restarted.rehydrate().await.unwrap_err();
    let chain = format!("{err}: {}", std::error::Error::source(&err).unwrap());
    assert!(
        chain.contains(manifest_key(&name("broken")).as_str()),
        "{chain}"
    );
    assert!(restarted.is_empty(), "half-loaded index");
    assert_eq!(store.puts(), puts_before, "rehydration wrote to the store");
}

#[tokio::test]
async fn a_current_checkpoint_spares_every_fetch_and_a_stale_row_is_refetched() {
    let (catalog, store) = catalog();
    for i in 0..50 {
        catalog
            .register(request(&format!("cp{i:02}"), "fp", &["k"]))
            .await
            .unwrap();
    }
    assert_eq!(catalog.write_checkpoint().await.unwrap(), 50);

    let gets = store.gets();
    let restarted = Catalog::new(store.clone(), Arc::new(SystemClock));
    let loaded = restarted.rehydrate().await.unwrap();
    assert_eq!((loaded.datasets, loaded.fetched), (50, 0));
    assert_eq!(store.gets() - gets, 1, "only the checkpoint was read");
    for i in 0..50 {
        let n = name(&format!("cp{i:02}"));
        assert_eq!(restarted.get(&n), catalog.get(&n));
    }

    // After the checkpoint: two updates, a delete and a new dataset. The checkpoint's rows
    // for them are stale or missing, so those are fetched and the store wins.
    catalog
        .register(request("cp00", "fp", &["new"]))
        .await
        .unwrap();
    catalog
        .register(request("cp01", "fp", &["new"]))
        .await
        .unwrap();
    catalog.delete(&name("cp02")).await.unwrap();
    catalog.register(request("cp99", "fp", &[])).await.unwrap();
    let restarted = Catalog::new(store.clone(), Arc::new(SystemClock));
    let loaded = restarted.rehydrate().await.unwrap();
    assert_eq!((loaded.datasets, loaded.fetched), (50, 3));
    assert_eq!(restarted.get(&name("cp00")).unwrap().version, 2);
    assert_eq!(restarted.get(&name("cp00")), catalog.get(&name("cp00")));
    assert!(
        restarted.get(&name("cp02")).is_none(),
        "a deleted dataset came back"
    );
    assert!(restarted.get(&name("cp99")).is_some());
    // The rebuilt catalog writes on from what the store holds.
    let next = restarted
        .register(request("cp01", "fp", &[]))
        .await
        .unwrap();
    assert_eq!(next.manifest.version, 3);
}

#[tokio::test]
async fn an_unreadable_checkpoint_is_ignored() {
    let (catalog, store) = catalog();
    for i in 0..5 {
        catalog
            .register(request(&format!("u{i}"), "fp", &[]))
            .await
            .unwrap();
    }
    store
        .put_checkpoint("not a parquet file".into())
        .await
        .unwrap();
    let restarted = Catalog::new(store.clone(), Arc::new(SystemClock));
    let loaded = restarted.rehydrate().await.unwrap();
    assert_eq!((loaded.datasets, loaded.fetched), (5, 5));
    assert_eq!(restarted.get(&name("u3")), catalog.get(&name("u3")));
}
