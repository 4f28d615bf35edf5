//! A crash-point sweep of the catalog's writes: a fixed script of registers, deletes,
//! undrops, a purge, an expiry and a checkpoint runs against a store that "crashes" at its
//! k-th write (before or after performing it), for every k the script reaches. A catalog
//! rebuilt from what the store holds must then show: a head with every earlier version of
//! its life readable (never a head without its history), the acknowledged state or a later
//! one, and every acknowledged change in the feed exactly once.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;

use async_trait::async_trait;
use manifest_codec::{ChangeKind, DatasetName, ObjectKey, ObjectRef, Record, SchemaFingerprint};

use super::{Catalog, RegisterRequest, SystemClock};
use crate::store::{
    CatalogFile, Listing, ManifestStore, MemoryStore, Slot, StoreError, StoredRecord,
    WriteCondition,
};

/// Fails every call from the `at`-th write on; that write itself is performed first when
/// `after` (a crash after the write, before the answer).
#[derive(Debug)]
struct Crashing {
    inner: Rc<MemoryStore>,
    writes: Cell<usize>,
    at: usize,
    after: bool,
}

impl Crashing {
    fn write_allowed(&self) -> Result<bool, StoreError> {
        let n = self.writes.get();
        self.writes.set(n + 1);
        if n < self.at {
            Ok(true)
        } else if n == self.at && self.after {
            Ok(false)
        } else {
            Err(StoreError::Unavailable("crashed".into()))
        }
    }

    fn alive(&self) -> Result<(), StoreError> {
        if self.writes.get() > self.at {
            Err(StoreError::Unavailable("crashed".into()))
        } else {
            Ok(())
        }
    }
}

#[async_trait(?Send)]
impl ManifestStore for Crashing {
    async fn get(
        &self,
        name: &DatasetName,
        slot: Slot,
    ) -> Result<Option<StoredRecord>, StoreError> {
        self.alive()?;
        self.inner.get(name, slot).await
    }

    async fn put(
        &self,
        record: &Record,
        slot: Slot,
        condition: WriteCondition,
    ) -> Result<String, StoreError> {
        if self.write_allowed()? {
            return self.inner.put(record, slot, condition).await;
        }
        self.inner.put(record, slot, condition).await?;
        Err(StoreError::Unknown("crashed after the write".into()))
    }

    async fn delete(
        &self,
        name: &DatasetName,
        slot: Slot,
        etag: Option<&str>,
    ) -> Result<(), StoreError> {
        if self.write_allowed()? {
            return self.inner.delete(name, slot, etag).await;
        }
        self.inner.delete(name, slot, etag).await?;
        Err(StoreError::Unknown("crashed after the write".into()))
    }

    async fn list(&self) -> Result<Listing, StoreError> {
        self.alive()?;
        self.inner.list().await
    }

    async fn list_versions(&self, name: &DatasetName) -> Result<Vec<i64>, StoreError> {
        self.alive()?;
        self.inner.list_versions(name).await
    }

    async fn get_file(&self, file: CatalogFile) -> Result<Option<bytes::Bytes>, StoreError> {
        self.alive()?;
        self.inner.get_file(file).await
    }

    async fn put_file(&self, file: CatalogFile, bytes: bytes::Bytes) -> Result<(), StoreError> {
        if self.write_allowed()? {
            return self.inner.put_file(file, bytes).await;
        }
        self.inner.put_file(file, bytes).await?;
        Err(StoreError::Unknown("crashed after the write".into()))
    }

    async fn object_size(
        &self,
        key: &manifest_codec::ObjectKey,
    ) -> Result<Option<u64>, StoreError> {
        self.inner.object_size(key).await
    }
}

fn name(n: &str) -> DatasetName {
    DatasetName::parse(n).unwrap()
}

fn request(n: &str, key: &str) -> RegisterRequest {
    RegisterRequest {
        name: name(n),
        schema_fingerprint: SchemaFingerprint::parse("fp").unwrap(),
        objects: vec![ObjectRef {
            key: ObjectKey::parse(key).unwrap(),
            size: 1_u32.into(),
        }],
        row_count: None,
        idempotency: None,
    }
}

/// Runs the script until the first failure; returns the acknowledged changes as
/// (name, kind, version) and whether the script completed.
async fn script(catalog: &Catalog) -> (Vec<(&'static str, ChangeKind, i64)>, bool) {
    let mut acked = Vec::new();
    macro_rules! step {
        ($call:expr, $name:expr, $kind:expr, $version:expr) => {
            match $call.await {
                Ok(v) => acked.push(($name, $kind, $version(v))),
                Err(_) => return (acked, false),
            }
        };
    }
    let version = |r: super::Registered| r.manifest.version;
    step!(
        catalog.register(request("a", "a1")),
        "a",
        ChangeKind::Registered,
        version
    );
    step!(
        catalog.register(request("a", "a2")),
        "a",
        ChangeKind::Registered,
        version
    );
    step!(
        catalog.register(request("b", "b1")),
        "b",
        ChangeKind::Registered,
        version
    );
    if catalog.write_checkpoint().await.is_err() {
        return (acked, false);
    }
    step!(catalog.delete(&name("a")), "a", ChangeKind::Deleted, |()| 2);
    step!(
        catalog.undrop(&name("a")),
        "a",
        ChangeKind::Undropped,
        |m: Arc<manifest_codec::Manifest>| m.version
    );
    step!(
        catalog.register(request("a", "a3")),
        "a",
        ChangeKind::Registered,
        version
    );
    step!(
        catalog.register(request("b", "b2")),
        "b",
        ChangeKind::Registered,
        version
    );
    step!(catalog.purge(&name("b")), "b", ChangeKind::Purged, |()| 2);
    step!(
        catalog.register(request("b", "b3")),
        "b",
        ChangeKind::Registered,
        version
    );
    step!(
        catalog.register(request("a", "a4")),
        "a",
        ChangeKind::Registered,
        version
    );
    step!(
        catalog.expire(&name("a"), 2),
        "a",
        ChangeKind::Expired,
        |_| 1
    );
    step!(
        catalog.register(request("a", "a5")),
        "a",
        ChangeKind::Registered,
        version
    );
    (acked, true)
}

async fn sweep(after: bool) -> usize {
    let mut at = 0;
    loop {
        let inner = Rc::new(MemoryStore::new());
        let crashing = Rc::new(Crashing {
            inner: inner.clone(),
            writes: Cell::new(0),
            at,
            after,
        });
        let catalog = Catalog::new(crashing, Arc::new(SystemClock));
        catalog.rehydrate().await.unwrap();
        // As start-up does: the first checkpoint before the first change.
        let (acked, completed) = if catalog.write_checkpoint().await.is_ok() {
            script(&catalog).await
        } else {
            (Vec::new(), false)
        };

        let rebuilt = Catalog::new(inner.clone(), Arc::new(SystemClock));
        rebuilt.rehydrate().await.unwrap();
        let feed = rebuilt
            .changes_after(None, usize::MAX, std::time::Duration::ZERO)
            .await
            .unwrap();
        let context = format!("crash at write {at} (after: {after}), acked {acked:?}");
        for n in ["a", "b"] {
            let Some(head) = rebuilt.entry(&name(n)).filter(|e| !e.is_purged()) else {
                continue;
            };
            // Every version of the head's life below it is kept, but those an expiry
            // recorded (acknowledged or not) may be gone.
            let expired = n == "a"
                && feed
                    .changes
                    .iter()
                    .any(|c| c.name.as_str() == "a" && c.kind == ChangeKind::Expired);
            let kept = inner.list_versions(&name(n)).await.unwrap();
            let first = if expired { 2 } else { 1 };
            for v in first..head.manifest.version {
                assert!(
                    kept.contains(&v),
                    "{n} v{v} is missing: {context}, kept {kept:?}"
                );
                let read = rebuilt.version(&name(n), v).await.unwrap();
                assert_eq!(read.version, v, "{context}");
            }
        }
        for (n, kind, version) in &acked {
            let count = feed
                .changes
                .iter()
                .filter(|c| c.name.as_str() == *n && c.kind == *kind && c.version == *version)
                .count();
            let times = acked
                .iter()
                .filter(|a| a == &&(*n, *kind, *version))
                .count();
            assert!(
                count >= times,
                "{kind:?} {n} v{version} is {count} times in the feed: {context}"
            );
        }
        let last = acked
            .iter()
            .rev()
            .find(|a| a.1 == ChangeKind::Registered && a.0 == "a");
        if let Some((_, _, version)) = last {
            let head = rebuilt.entry(&name("a")).unwrap();
            assert!(head.manifest.version >= *version, "{context}");
        }
        if completed {
            return at;
        }
        at += 1;
    }
}

#[tokio::test]
async fn a_crash_before_any_write_leaves_history_and_feed_whole() {
    let points = sweep(false).await;
    assert!(points > 20, "the script made only {points} writes");
}

#[tokio::test]
async fn a_crash_after_any_write_leaves_history_and_feed_whole() {
    let points = sweep(true).await;
    assert!(points > 20, "the script made only {points} writes");
}
