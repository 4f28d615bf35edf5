//! A checkpoint pair that does not belong together (docs/reliability.md): the changes
//! file of a killed catalogd lands after its successor's newer checkpoint.

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use manifest_codec::{DatasetName, SchemaFingerprint};

use crate::catalog::{Catalog, RegisterRequest, SystemClock};
use crate::store::{CatalogFile, ManifestStore, MemoryStore};

fn register(n: &str) -> RegisterRequest {
    RegisterRequest {
        name: DatasetName::parse(n).unwrap(),
        schema_fingerprint: SchemaFingerprint::parse("fp").unwrap(),
        objects: Vec::new(),
        row_count: None,
        idempotency: None,
    }
}

async fn feed(catalog: &Catalog) -> Vec<(u64, String, i64)> {
    catalog
        .changes_after(None, 1000, Duration::ZERO)
        .await
        .unwrap()
        .changes
        .into_iter()
        .map(|c| (c.seq, format!("{:?} {}", c.kind, c.name), c.version))
        .collect()
}

#[tokio::test]
async fn an_old_changes_file_beside_a_newer_checkpoint_loses_no_change() {
    let store = Rc::new(MemoryStore::new());
    let catalog = Catalog::new(store.clone(), Arc::new(SystemClock));
    catalog.register(register("a")).await.unwrap();
    catalog.register(register("b")).await.unwrap();
    catalog.write_checkpoint().await.unwrap();
    let old_changes = store.get_file(CatalogFile::Changes).await.unwrap().unwrap();

    // Changes after the first checkpoint, the deleted version kept only in history.
    let a = DatasetName::parse("a").unwrap();
    catalog.delete(&a).await.unwrap();
    catalog.register(register("a")).await.unwrap();
    catalog.register(register("c")).await.unwrap();
    catalog.write_checkpoint().await.unwrap();
    let served = feed(&catalog).await;
    assert_eq!(served.len(), 5, "{served:?}");

    // The first checkpoint's changes-file PUT lands late, over the second one.
    store
        .put_file(CatalogFile::Changes, old_changes)
        .await
        .unwrap();
    let rebuilt = Catalog::new(store.clone(), Arc::new(SystemClock));
    rebuilt.rehydrate().await.unwrap();
    assert_eq!(feed(&rebuilt).await, served);
    assert_eq!(
        rebuilt.entry(&a).unwrap().manifest.version,
        catalog.entry(&a).unwrap().manifest.version
    );
}
