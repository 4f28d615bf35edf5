//! One conformance suite for every `ManifestStore` (the memory fake and storaged over HTTP,
//! in-process on port 0), and the register contract over a real storaged: two catalogs
//! sharing one storaged stand in for two catalogd processes.

use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{
    CatalogFile, HttpManifestStore, ManifestStore, MemoryStore, Slot, StoreError, WriteCondition,
};
use crate::catalog::{Catalog, CatalogError, RegisterRequest, Registered, SystemClock};
use manifest_codec::layout::{MANIFEST_PREFIX, MANIFEST_SUFFIX};
use manifest_codec::{
    dataset_id, manifest_key, DatasetName, Manifest, Record, SchemaFingerprint, Timestamp,
};

fn name(n: &str) -> DatasetName {
    DatasetName::parse(n).unwrap()
}

fn manifest(n: &str, version: i64) -> Manifest {
    let name = name(n);
    Manifest {
        dataset_id: dataset_id(&name),
        name,
        schema_fingerprint: SchemaFingerprint::parse("fp").unwrap(),
        version,
        objects: vec![],
        row_count: None,
        created_at: Timestamp::from_micros(1).unwrap(),
        updated_at: Timestamp::from_micros(2).unwrap(),
    }
}

fn live(n: &str, version: i64) -> Record {
    Record::live(manifest(n, version))
}

async fn conformance(store: &dyn ManifestStore) {
    let a = name("conf.a");
    assert!(store.get(&a, Slot::Head).await.unwrap().is_none());
    let e1 = store
        .put(&live("conf.a", 1), Slot::Head, WriteCondition::Absent)
        .await
        .unwrap();
    let err = store
        .put(&live("conf.a", 1), Slot::Head, WriteCondition::Absent)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::PreconditionFailed), "{err:?}");
    let stored = store.get(&a, Slot::Head).await.unwrap().unwrap();
    assert_eq!(stored.record, live("conf.a", 1));
    assert_eq!(stored.etag, e1);
    let e2 = store
        .put(
            &live("conf.a", 2),
            Slot::Head,
            WriteCondition::Matches(e1.clone()),
        )
        .await
        .unwrap();
    assert_ne!(e1, e2);
    // The listing carries each head's entity tag, in the form `get` and `put` give.
    let listed = store.list().await.unwrap().manifests;
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].name.as_str(), listed[0].etag.as_str()),
        ("conf.a", e2.as_str())
    );
    // Versions: create-only, listed in version order, never in the heads' listing.
    for v in [1, 10, 2] {
        store
            .put(&live("conf.a", v), Slot::Version(v), WriteCondition::Absent)
            .await
            .unwrap();
    }
    let err = store
        .put(&live("conf.a", 2), Slot::Version(2), WriteCondition::Absent)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::PreconditionFailed), "{err:?}");
    assert_eq!(store.list_versions(&a).await.unwrap(), [1, 2, 10]);
    assert!(store.list_versions(&name("conf")).await.unwrap().is_empty());
    assert_eq!(
        store
            .get(&a, Slot::Version(10))
            .await
            .unwrap()
            .unwrap()
            .record
            .manifest
            .version,
        10
    );
    assert!(store.get(&a, Slot::Version(3)).await.unwrap().is_none());
    store.delete(&a, Slot::Version(10), None).await.unwrap();
    store.delete(&a, Slot::Version(10), None).await.unwrap();
    assert_eq!(store.list_versions(&a).await.unwrap(), [1, 2]);
    assert_eq!(store.list().await.unwrap().manifests.len(), 1);
    // The files: absent, then whatever was last put.
    for file in [CatalogFile::Checkpoint, CatalogFile::Changes] {
        assert!(store.get_file(file).await.unwrap().is_none());
        store.put_file(file, "one".into()).await.unwrap();
        store.put_file(file, "two".into()).await.unwrap();
        assert_eq!(store.get_file(file).await.unwrap().unwrap(), "two");
    }
    assert_eq!(
        store.list().await.unwrap().manifests.len(),
        1,
        "the checkpoint is not a manifest"
    );
    let err = store
        .put(
            &live("conf.a", 3),
            Slot::Head,
            WriteCondition::Matches(e1.clone()),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::PreconditionFailed));
    assert_eq!(
        store
            .get(&a, Slot::Head)
            .await
            .unwrap()
            .unwrap()
            .record
            .manifest
            .version,
        2
    );
    let err = store.delete(&a, Slot::Head, Some(&e1)).await.unwrap_err();
    assert!(matches!(err, StoreError::PreconditionFailed));
    store.delete(&a, Slot::Head, Some(&e2)).await.unwrap();
    assert!(store.get(&a, Slot::Head).await.unwrap().is_none());
}

async fn storaged() -> (u16, actix_web::dev::ServerHandle, tempfile::TempDir) {
    storaged_with(&std::collections::HashMap::new()).await
}

/// storaged with its objects in a bucket of moto (the S3 backend).
async fn storaged_on_s3(
    moto: &testkit::Moto,
) -> (u16, actix_web::dev::ServerHandle, tempfile::TempDir) {
    moto.create_bucket("catalog");
    storaged_with(&moto.storaged_env("catalog").into_iter().collect()).await
}

async fn storaged_with(
    env: &std::collections::HashMap<String, String>,
) -> (u16, actix_web::dev::ServerHandle, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let settings = storaged::config::Settings::load(
        None,
        env,
        &storaged::config::Overrides {
            listen: Some("127.0.0.1:0".into()),
            s3_listen: Some(String::new()),
            data_dir: Some(dir.path().join("data")),
            ..Default::default()
        },
    )
    .unwrap();
    let app = storaged::startup::Application::build(settings)
        .await
        .unwrap();
    let (port, handle) = (app.port(), app.handle());
    actix_web::rt::spawn(app.run_until_stopped());
    (port, handle, dir)
}

fn http_store(port: u16) -> HttpManifestStore {
    HttpManifestStore::new(
        &format!("http://127.0.0.1:{port}"),
        None,
        Duration::from_secs(5),
    )
}

#[actix_web::test]
async fn memory_store_conforms() {
    conformance(&MemoryStore::new()).await;
}

#[actix_web::test]
async fn http_store_conforms() {
    let (port, _handle, _dir) = storaged().await;
    conformance(&http_store(port)).await;
}

#[actix_web::test]
async fn http_store_conforms_with_storaged_on_s3() {
    let moto = testkit::Moto::start();
    let (port, _handle, _dir) = storaged_on_s3(&moto).await;
    conformance(&http_store(port)).await;
    two_catalogs_race(port).await;
}

#[actix_web::test]
async fn a_corrupt_manifest_is_reported_with_its_key() {
    let (port, _handle, _dir) = storaged().await;
    let key = manifest_key(&name("bad"));
    let mut res = awc::Client::default()
        .put(format!("http://127.0.0.1:{port}/v1/objects/{key}"))
        .send_body("not parquet")
        .await
        .unwrap();
    let _ = res.body().await;
    let err = http_store(port)
        .get(&name("bad"), Slot::Head)
        .await
        .unwrap_err();
    match err {
        StoreError::Corrupt { key: got, .. } => assert_eq!(got, key.as_str()),
        other => panic!("{other:?}"),
    }
}

async fn work(catalog: &Catalog, names: &[String]) -> Vec<Registered> {
    let jobs = names
        .iter()
        .flat_map(|n| (0..5).map(move |_| n.clone()))
        .map(|n| async move { catalog.register(request(&n, "fp")).await.unwrap() });
    futures_util::future::join_all(jobs).await
}

fn request(n: &str, fp: &str) -> RegisterRequest {
    RegisterRequest {
        name: name(n),
        schema_fingerprint: SchemaFingerprint::parse(fp).unwrap(),
        objects: vec![],
        row_count: Some(1),
        idempotency: None,
    }
}

#[actix_web::test]
async fn two_catalogs_on_one_storaged_never_both_create_or_lose_an_update() {
    let (port, _handle, _dir) = storaged().await;
    two_catalogs_race(port).await;
}

/// Two catalogs over the storaged on `port` register the same names at once.
async fn two_catalogs_race(port: u16) {
    let a = Catalog::new(Rc::new(http_store(port)), Arc::new(SystemClock));
    let b = Catalog::new(Rc::new(http_store(port)), Arc::new(SystemClock));
    let names: Vec<String> = (0..10).map(|i| format!("shared.d{i}")).collect();
    let (ra, rb) = futures_util::future::join(work(&a, &names), work(&b, &names)).await;
    for n in &names {
        let outcomes: Vec<_> = ra
            .iter()
            .chain(rb.iter())
            .filter(|r| r.manifest.name.as_str() == n)
            .collect();
        assert_eq!(
            outcomes.iter().filter(|r| !r.existing).count(),
            1,
            "{n}: more than one create"
        );
        let mut versions: Vec<i64> = outcomes.iter().map(|r| r.manifest.version).collect();
        versions.sort_unstable();
        assert_eq!(
            versions,
            (1..=10).collect::<Vec<_>>(),
            "{n}: duplicate or lost version"
        );
    }
    // A conflicting fingerprint from the other process is still a conflict.
    let err = b.register(request("shared.d0", "other")).await.unwrap_err();
    assert!(matches!(err, CatalogError::FingerprintConflict { .. }));
}

#[actix_web::test]
async fn a_stopped_storaged_is_a_timely_storage_error_and_memory_stays() {
    let (port, handle, _dir) = storaged().await;
    let catalog = Catalog::new(Rc::new(http_store(port)), Arc::new(SystemClock));
    let v1 = catalog
        .register(request("down.a", "fp"))
        .await
        .unwrap()
        .manifest;
    handle.stop(true).await;
    let started = Instant::now();
    let err = catalog.register(request("down.a", "fp")).await.unwrap_err();
    assert!(matches!(err, CatalogError::Storage(_)), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(catalog.get(&name("down.a")).unwrap(), v1);
}

#[actix_web::test]
async fn a_thousand_datasets_survive_a_rebuild_from_storaged() {
    let (port, _handle, _dir) = storaged().await;
    let first = Catalog::new(Rc::new(http_store(port)), Arc::new(SystemClock));
    let names: Vec<String> = (0..1000).map(|i| format!("many.d{i:04}")).collect();
    futures_util::future::join_all(names.iter().map(|n| first.register(request(n, "fp"))))
        .await
        .into_iter()
        .for_each(|r| assert!(r.is_ok()));
    let second = Catalog::new(Rc::new(http_store(port)), Arc::new(SystemClock));
    assert_eq!(second.rehydrate().await.unwrap().datasets, 1000);
    for n in &names {
        assert_eq!(second.get(&name(n)), first.get(&name(n)), "{n}");
    }
}

#[actix_web::test]
async fn keys_under_the_manifest_prefix_that_are_not_manifests_are_skipped() {
    let (port, _handle, _dir) = storaged().await;
    let store = http_store(port);
    store
        .put(&live("real", 1), Slot::Head, WriteCondition::Absent)
        .await
        .unwrap();
    let foreign = [
        format!("{MANIFEST_PREFIX}Upper{MANIFEST_SUFFIX}"),
        format!("{MANIFEST_PREFIX}notes.txt"),
        format!("{MANIFEST_PREFIX}nested/real{MANIFEST_SUFFIX}"),
    ];
    for key in &foreign {
        let mut res = awc::Client::default()
            .put(format!("http://127.0.0.1:{port}/v1/objects/{key}"))
            .send_body("x")
            .await
            .unwrap();
        assert!(res.status().is_success(), "{key}: {}", res.status());
        let _ = res.body().await;
    }
    let listing = store.list().await.unwrap();
    assert_eq!(listing.manifests.len(), 1);
    let mut expected = foreign.to_vec();
    expected.sort();
    assert_eq!(listing.foreign, expected);

    let catalog = Catalog::new(Rc::new(store), Arc::new(SystemClock));
    let loaded = catalog.rehydrate().await.unwrap();
    assert_eq!((loaded.datasets, loaded.foreign_keys), (1, 3));
    assert_eq!(catalog.get(&name("real")).unwrap().version, 1);
}
