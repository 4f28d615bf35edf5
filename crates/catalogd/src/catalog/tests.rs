//! The register contract against the in-memory store with injected faults.

use std::rc::Rc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use manifest_codec::{
    manifest_key, DatasetName, Manifest, ObjectKey, ObjectRef, SchemaFingerprint, Timestamp,
};

use super::{
    Catalog, CatalogError, Clock, Idempotency, Maintained, RegisterRequest, Retention, SystemClock,
};
use crate::store::{CatalogFile, Fault, ManifestStore, MemoryStore, Slot};

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
        idempotency: None,
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
    let stored = store
        .get(&name("orders"), Slot::Head)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.record.manifest, *updated.manifest);
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
    assert_eq!(
        store
            .get(&name("a"), Slot::Head)
            .await
            .unwrap()
            .unwrap()
            .record
            .manifest,
        *v1
    );
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
        store
            .get(&name("a"), Slot::Head)
            .await
            .unwrap()
            .unwrap()
            .record
            .manifest,
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
        .get(&name("contested"), Slot::Head)
        .await
        .unwrap()
        .unwrap()
        .record
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
async fn delete_hides_a_dataset_and_a_new_register_continues_its_versions() {
    let (catalog, store) = catalog();
    let first = catalog
        .register(request("a", "fp1", &[]))
        .await
        .unwrap()
        .manifest;
    catalog.register(request("a", "fp1", &[])).await.unwrap();
    catalog.delete(&name("a")).await.unwrap();
    assert!(catalog.get(&name("a")).is_none());
    assert!(catalog.get_by_id(&first.dataset_id).is_none());
    assert_eq!(store.len(), 1, "the head stays, marked deleted");
    assert!(matches!(
        catalog.delete(&name("a")).await,
        Err(CatalogError::NotFound { .. })
    ));
    // The history stays readable while deleted.
    let history = catalog.versions(&name("a"), None, 10).await.unwrap();
    assert_eq!(
        history
            .versions
            .iter()
            .map(|v| v.version)
            .collect::<Vec<_>>(),
        [2, 1]
    );
    // Registering a deleted name starts a new dataset (another fingerprint is fine) whose
    // versions go on from the last one.
    let again = catalog.register(request("a", "fp2", &[])).await.unwrap();
    assert!(!again.existing);
    assert_eq!(again.manifest.version, 3);
    assert_eq!(again.manifest.dataset_id, first.dataset_id);
    assert!(again.manifest.created_at > first.created_at);
    assert_eq!(catalog.version(&name("a"), 1).await.unwrap(), first);
}

#[tokio::test]
async fn undrop_brings_back_the_head_and_purge_forgets_everything() {
    let (catalog, store) = catalog();
    catalog.register(request("u", "fp", &["k1"])).await.unwrap();
    let v2 = catalog
        .register(request("u", "fp", &["k2"]))
        .await
        .unwrap()
        .manifest;
    assert!(matches!(
        catalog.undrop(&name("u")).await,
        Err(CatalogError::NotDeleted { .. })
    ));
    catalog.delete(&name("u")).await.unwrap();
    assert_eq!(catalog.undrop(&name("u")).await.unwrap(), v2);
    assert_eq!(catalog.get(&name("u")).unwrap(), v2);
    catalog.purge(&name("u")).await.unwrap();
    assert!(catalog.get(&name("u")).is_none());
    assert!(matches!(
        catalog.undrop(&name("u")).await,
        Err(CatalogError::NotFound { .. })
    ));
    assert!(catalog.versions(&name("u"), None, 10).await.is_err());
    assert!(store.list_versions(&name("u")).await.unwrap().is_empty());
    catalog.purge(&name("u")).await.unwrap();
    assert!(matches!(
        catalog.purge(&name("never")).await,
        Err(CatalogError::NotFound { .. })
    ));
    let fresh = catalog.register(request("u", "fp9", &[])).await.unwrap();
    assert_eq!((fresh.existing, fresh.manifest.version), (false, 1));
}

#[tokio::test]
async fn as_of_finds_the_version_current_at_an_instant() {
    let clock = Arc::new(ManualClock(AtomicI64::new(1_000)));
    let store = Rc::new(MemoryStore::new());
    let catalog = Catalog::new(store, clock.clone());
    let at = |micros| Timestamp::from_micros(micros).unwrap();
    catalog.register(request("t", "fp", &["a"])).await.unwrap();
    clock.0.store(2_000, Ordering::SeqCst);
    catalog.register(request("t", "fp", &["b"])).await.unwrap();
    clock.0.store(3_000, Ordering::SeqCst);
    catalog.delete(&name("t")).await.unwrap();
    clock.0.store(4_000, Ordering::SeqCst);
    catalog.register(request("t", "fp", &["c"])).await.unwrap();
    let key = |m: Arc<Manifest>| m.objects[0].key.as_str().to_owned();
    let t = name("t");
    let as_of = |micros| catalog.as_of(&t, at(micros));
    assert!(matches!(as_of(999).await, Err(CatalogError::NotAt { .. })));
    assert_eq!(key(as_of(1_000).await.unwrap()), "a");
    assert_eq!(key(as_of(1_999).await.unwrap()), "a");
    assert_eq!(key(as_of(2_500).await.unwrap()), "b");
    assert!(matches!(
        as_of(3_500).await,
        Err(CatalogError::NotAt { .. })
    ));
    assert_eq!(key(as_of(4_000).await.unwrap()), "c");
    assert_eq!(key(as_of(i64::MAX / 2).await.unwrap()), "c");
    // Expired versions are gone from the past too.
    assert_eq!(catalog.expire(&name("t"), 3).await.unwrap(), 2);
    assert!(matches!(
        as_of(1_500).await,
        Err(CatalogError::NotAt { .. })
    ));
    assert!(matches!(
        catalog.version(&name("t"), 1).await,
        Err(CatalogError::NoVersion { .. })
    ));
}

#[tokio::test]
async fn an_idempotent_retry_answers_the_same_and_writes_nothing() {
    let (catalog, store) = catalog();
    let keyed = |keys: &[&str], body: &[u8]| {
        let mut r = request("idem", "fp", keys);
        r.idempotency = Some(Idempotency::new("load-1", body).unwrap());
        r
    };
    let first = catalog.register(keyed(&["a"], b"one")).await.unwrap();
    let puts = store.puts();
    let again = catalog.register(keyed(&["a"], b"one")).await.unwrap();
    assert!(again.replayed && !first.replayed);
    assert_eq!(again.manifest, first.manifest);
    assert_eq!(again.existing, first.existing);
    assert_eq!(store.puts(), puts, "a replay wrote");
    assert!(matches!(
        catalog.register(keyed(&["b"], b"two")).await,
        Err(CatalogError::IdempotencyKeyReused { .. })
    ));
    // After a lost response (the write happened), the retry finds it after the re-read.
    store.inject(Fault::UnknownWritten);
    let mut lost = request("idem", "fp", &["c"]);
    lost.idempotency = Some(Idempotency::new("load-2", b"three").unwrap());
    assert!(catalog.register(lost.clone()).await.is_err());
    let retried = catalog.register(lost).await.unwrap();
    assert!(retried.replayed);
    assert_eq!(retried.manifest.version, 2);
    assert_eq!(catalog.get(&name("idem")).unwrap().version, 2);
    // And across a restart, from the checkpoint's changes file.
    catalog.write_checkpoint().await.unwrap();
    let restarted = Catalog::new(store.clone(), Arc::new(SystemClock));
    restarted.rehydrate().await.unwrap();
    let replayed = restarted.register(keyed(&["a"], b"one")).await.unwrap();
    assert!(replayed.replayed);
    assert_eq!(replayed.manifest.version, 1);
}

#[tokio::test]
async fn the_feed_survives_a_restart_and_long_polls_wake_on_a_change() {
    let (catalog, store) = catalog();
    catalog.register(request("f1", "fp", &[])).await.unwrap();
    catalog.write_checkpoint().await.unwrap();
    catalog.register(request("f1", "fp", &[])).await.unwrap();
    catalog.register(request("f2", "fp", &[])).await.unwrap();
    catalog.delete(&name("f2")).await.unwrap();
    let before = catalog
        .changes_after(None, 100, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(before.changes.len(), 4);
    let restarted = Catalog::new(store.clone(), Arc::new(SystemClock));
    restarted.rehydrate().await.unwrap();
    let after = restarted
        .changes_after(None, 100, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(after, before);
    let waiting = restarted.changes_after(Some(after.next_after), 10, Duration::from_secs(10));
    let writer = async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        restarted.register(request("f3", "fp", &[])).await.unwrap();
    };
    let (page, ()) = futures_util::future::join(waiting, writer).await;
    let page = page.unwrap();
    assert_eq!(page.changes.len(), 1);
    assert_eq!(page.changes[0].name.as_str(), "f3");
    assert!(page.changes[0].seq > after.next_after);
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
    assert_eq!(
        store.gets() - gets,
        2,
        "only the checkpoint and the changes file were read"
    );
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
    assert_eq!((loaded.datasets, loaded.fetched), (50, 4));
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
        .put_file(CatalogFile::Checkpoint, "not a parquet file".into())
        .await
        .unwrap();
    let restarted = Catalog::new(store.clone(), Arc::new(SystemClock));
    let loaded = restarted.rehydrate().await.unwrap();
    assert_eq!((loaded.datasets, loaded.fetched), (5, 5));
    assert_eq!(restarted.get(&name("u3")), catalog.get(&name("u3")));
}

#[tokio::test]
async fn retention_purges_expires_and_forgets_in_its_own_time() {
    let clock = Arc::new(ManualClock(AtomicI64::new(1_000_000_000_000)));
    let store = Rc::new(MemoryStore::new());
    let catalog = Catalog::new(store.clone(), clock.clone());
    let hour = 3_600_000_000_i64;
    let retention = Retention {
        changes: Duration::from_secs(48 * 3600),
        idempotency_window: Duration::from_secs(24 * 3600),
        deleted: Duration::from_secs(24 * 3600),
        max_versions: Some(2),
    };
    for keys in [&["a"][..], &["b"], &["c"], &["d"]] {
        catalog.register(request("kept", "fp", keys)).await.unwrap();
    }
    catalog.register(request("gone", "fp", &[])).await.unwrap();
    catalog.delete(&name("gone")).await.unwrap();
    let first = catalog.maintain(&retention).await.unwrap();
    assert_eq!((first.expired, first.purged), (2, 0));
    assert_eq!(store.list_versions(&name("kept")).await.unwrap(), [3]);
    assert_eq!(
        catalog.maintain(&retention).await.unwrap(),
        Maintained::default()
    );

    // A day later the deleted dataset is purged; two days later its purge record goes and
    // the feed forgets what came before.
    clock.0.fetch_add(25 * hour, Ordering::SeqCst);
    assert_eq!(catalog.maintain(&retention).await.unwrap().purged, 1);
    assert!(matches!(
        catalog.undrop(&name("gone")).await,
        Err(CatalogError::NotFound { .. })
    ));
    let feed = catalog
        .changes_after(None, 100, Duration::ZERO)
        .await
        .unwrap();
    let oldest = feed.changes[0].seq;
    clock.0.fetch_add(49 * hour, Ordering::SeqCst);
    let last = catalog.maintain(&retention).await.unwrap();
    assert_eq!(last.removed, 1);
    assert!(last.forgotten >= 8);
    assert!(catalog.entry(&name("gone")).is_none());
    assert!(catalog
        .changes_after(Some(oldest), 100, Duration::ZERO)
        .await
        .is_err());
    assert_eq!(catalog.get(&name("kept")).unwrap().version, 4);
}

#[tokio::test]
async fn max_versions_one_keeps_no_history_and_writes_once() {
    let (catalog, store) = catalog();
    catalog.set_max_versions(Some(1));
    catalog
        .register(request("one", "fp", &["a"]))
        .await
        .unwrap();
    let puts = store.puts();
    let second = catalog
        .register(request("one", "fp", &["b"]))
        .await
        .unwrap();
    assert_eq!(second.manifest.version, 2);
    assert_eq!(
        store.puts() - puts,
        1,
        "an update without history is one write"
    );
    assert!(store.list_versions(&name("one")).await.unwrap().is_empty());
    let listed = catalog.versions(&name("one"), None, 10).await.unwrap();
    assert_eq!(listed.versions.len(), 1);
    assert!(matches!(
        catalog.version(&name("one"), 1).await,
        Err(CatalogError::NoVersion { .. })
    ));
    catalog.set_max_versions(None);
    catalog
        .register(request("one", "fp", &["c"]))
        .await
        .unwrap();
    assert_eq!(store.list_versions(&name("one")).await.unwrap(), [2]);
}
