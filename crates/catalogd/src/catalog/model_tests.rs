//! A seeded state-machine test: random register / delete / undrop / purge / checkpoint /
//! restart sequences with injected store faults, checked against a model of what the
//! store durably holds: the heads, every version's history, and the change feed (every
//! acknowledged change in it exactly once, in order).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::rc::Rc;
use std::sync::Arc;

use manifest_codec::{
    ChangeKind, DatasetName, ObjectKey, ObjectRef, ObjectSize, SchemaFingerprint,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use super::{Catalog, CatalogError, CatalogState, Idempotency, RegisterRequest, SystemClock};
use crate::store::{
    CatalogFile, Fault, Listing, ManifestStore, MemoryStore, Slot, StoreError, StoredRecord,
    WriteCondition,
};

const NAMES: [&str; 3] = ["m.a", "m.b", "m.c"];
const FINGERPRINTS: [&str; 2] = ["fp1", "fp2"];

#[derive(Debug, Clone)]
enum Op {
    Register {
        name: usize,
        fingerprint: usize,
        tag: u8,
        fault: Option<Fault>,
        /// An idempotency key (`k0`..`k2`), reused across registers on purpose.
        key: Option<u8>,
    },
    Delete(usize),
    Expire(usize, i64),
    Undrop(usize),
    Purge(usize),
    Checkpoint,
    /// Only the invariant check that follows every step.
    Observe,
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    let fault = prop_oneof![
        4 => Just(None),
        1 => Just(Some(Fault::Fail)),
        1 => Just(Some(Fault::UnknownWritten)),
        1 => Just(Some(Fault::UnknownNotWritten)),
        1 => Just(Some(Fault::PhantomWriter)),
    ];
    prop_oneof![
        6 => (
            0..NAMES.len(),
            0..FINGERPRINTS.len(),
            0..4_u8,
            fault,
            proptest::option::weighted(0.3, 0..3_u8)
        )
            .prop_map(|(name, fingerprint, tag, fault, key)| Op::Register {
                name,
                fingerprint,
                tag,
                fault,
                key
            }),
        1 => (0..NAMES.len(), 1..6_i64).prop_map(|(name, before)| Op::Expire(name, before)),
        1 => (0..NAMES.len()).prop_map(Op::Delete),
        1 => (0..NAMES.len()).prop_map(Op::Undrop),
        1 => (0..NAMES.len()).prop_map(Op::Purge),
        1 => Just(Op::Checkpoint),
        2 => Just(Op::Observe),
        1 => Just(Op::Restart),
    ]
}

/// What the store durably holds for one name's head.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Truth {
    fingerprint: String,
    version: i64,
    objects: Vec<ObjectRef>,
}

/// A register that committed with an idempotency key: what a retry must be told.
#[derive(Debug, Clone)]
struct Keyed {
    name: usize,
    body: String,
    version: i64,
    existing: bool,
}

/// The model of one name: its head (if any), whether readers see it, its versions.
#[derive(Debug, Clone, Default)]
struct Model {
    head: Option<Truth>,
    live: bool,
    /// Every version registered since the name (re)started, as (fingerprint, objects).
    versions: BTreeMap<i64, (String, Vec<ObjectRef>)>,
    /// Purged: the name starts again at version 1; purging again succeeds.
    purged: bool,
}

fn objects(tag: u8) -> Vec<ObjectRef> {
    vec![ObjectRef {
        key: ObjectKey::parse(&format!("data/{tag}")).unwrap(),
        size: ObjectSize::from(u32::from(tag)),
    }]
}

// One match over the operations reads better as a whole than split across helpers.
#[allow(clippy::too_many_lines)]
fn check(
    ops: &[Op],
    build: &dyn Fn(Rc<dyn ManifestStore>) -> Catalog,
) -> Result<(), TestCaseError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = Rc::new(MemoryStore::new());
        let mut catalog = build(store.clone());
        let mut model: HashMap<usize, Model> = HashMap::new();
        // Names whose last write had an unknown outcome: memory may lag the store.
        let mut pending: HashSet<usize> = HashSet::new();
        // Acknowledged changes, to find in the feed exactly once.
        let mut acked: Vec<(usize, ChangeKind, i64)> = Vec::new();
        let mut checkpointed = false;
        let mut keys: HashMap<u8, Keyed> = HashMap::new();
        // Keys of registers whose outcome is unknown and did not land, until their name
        // is re-read: reusing one with another body is refused meanwhile.
        let mut unresolved: HashMap<u8, (usize, String)> = HashMap::new();
        let dataset = |i: usize| DatasetName::parse(NAMES[i]).unwrap();
        for op in ops {
            // Every operation on a name re-reads it first when its last write's outcome was
            // unknown, which resolves the keys that write carried.
            let touched = match op {
                Op::Register { name, .. }
                | Op::Delete(name)
                | Op::Undrop(name)
                | Op::Purge(name) => Some(*name),
                Op::Expire(name, _) if !pending.contains(name) => Some(*name),
                _ => None,
            };
            if let Some(name) = touched {
                unresolved.retain(|_, (n, _)| *n != name);
            }
            if matches!(op, Op::Restart) {
                unresolved.clear();
            }
            match op.clone() {
                Op::Register {
                    name,
                    fingerprint,
                    tag,
                    key,
                    ..
                } if key.is_some_and(|k| {
                    keys.contains_key(&k)
                        || unresolved
                            .get(&k)
                            .is_some_and(|(n, _)| *n != name && pending.contains(n))
                }) =>
                {
                    // A remembered key: the first answer again, or a refusal; no write.
                    let fp = FINGERPRINTS[fingerprint];
                    let body = format!("{name}/{fp}/{tag}");
                    let k = key.unwrap_or_default();
                    let prior = match keys.get(&k) {
                        Some(prior) => prior.clone(),
                        None => Keyed {
                            name: unresolved[&k].0,
                            body: unresolved[&k].1.clone(),
                            version: 0,
                            existing: false,
                        },
                    };
                    let result = catalog
                        .register(RegisterRequest {
                            name: dataset(name),
                            schema_fingerprint: SchemaFingerprint::parse(fp).unwrap(),
                            objects: objects(tag),
                            row_count: None,
                            idempotency: Some(
                                Idempotency::new(&format!("k{k}"), body.as_bytes()).unwrap(),
                            ),
                        })
                        .await;
                    let kept = model
                        .get(&prior.name)
                        .is_some_and(|m| !m.purged && m.versions.contains_key(&prior.version));
                    if prior.body != body {
                        prop_assert!(
                            matches!(result, Err(CatalogError::IdempotencyKeyReused { .. })),
                            "{result:?}"
                        );
                    } else if kept {
                        let r = result.map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
                        prop_assert!(r.replayed);
                        prop_assert_eq!(r.manifest.version, prior.version);
                        prop_assert_eq!(r.existing, prior.existing);
                    } else {
                        prop_assert!(
                            matches!(result, Err(CatalogError::ReplayGone { .. })),
                            "{result:?}"
                        );
                    }
                    pending.remove(&name);
                }
                Op::Register {
                    name,
                    fingerprint,
                    tag,
                    fault,
                    key,
                } => {
                    let m = model.entry(name).or_default();
                    let fp = FINGERPRINTS[fingerprint];
                    let body = format!("{name}/{fp}/{tag}");
                    let idempotency =
                        key.map(|k| Idempotency::new(&format!("k{k}"), body.as_bytes()).unwrap());
                    let mut remember = |version: i64, existing: bool| {
                        if let Some(k) = key {
                            keys.insert(
                                k,
                                Keyed {
                                    name,
                                    body: body.clone(),
                                    version,
                                    existing,
                                },
                            );
                        }
                    };
                    let conflict = m.live && m.head.as_ref().is_some_and(|t| t.fingerprint != fp);
                    // A phantom writer only ever advances a live head.
                    let phantom_off = matches!(fault, Some(Fault::PhantomWriter)) && !m.live;
                    let fault = if conflict || phantom_off { None } else { fault };
                    if let Some(f) = &fault {
                        store.inject(f.clone());
                    }
                    let result = catalog
                        .register(RegisterRequest {
                            name: dataset(name),
                            schema_fingerprint: SchemaFingerprint::parse(fp).unwrap(),
                            objects: objects(tag),
                            row_count: None,
                            idempotency: idempotency.clone(),
                        })
                        .await;
                    let before = if m.purged {
                        0
                    } else {
                        m.head.as_ref().map_or(0, |t| t.version)
                    };
                    let existing = m.live;
                    let next = Truth {
                        fingerprint: fp.to_owned(),
                        version: before + 1,
                        objects: objects(tag),
                    };
                    let land = |m: &mut Model, t: Truth| {
                        if m.purged {
                            m.versions.clear();
                            m.purged = false;
                            m.head = None;
                        }
                        if let Some(h) = &m.head {
                            m.versions
                                .entry(h.version)
                                .or_insert_with(|| (h.fingerprint.clone(), h.objects.clone()));
                        }
                        m.versions
                            .insert(t.version, (t.fingerprint.clone(), t.objects.clone()));
                        m.head = Some(t);
                        m.live = true;
                    };
                    match (conflict, fault) {
                        (true, _) => {
                            prop_assert!(
                                matches!(result, Err(CatalogError::FingerprintConflict { .. })),
                                "{result:?}"
                            );
                            // The name was re-read before the check.
                            pending.remove(&name);
                        }
                        (false, None) => {
                            let r = result.map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
                            prop_assert_eq!(r.existing, existing);
                            prop_assert_eq!(r.manifest.version, next.version);
                            remember(next.version, existing);
                            acked.push((name, ChangeKind::Registered, next.version));
                            land(m, next);
                            pending.remove(&name);
                        }
                        (false, Some(Fault::Fail)) => {
                            prop_assert!(
                                matches!(result, Err(CatalogError::Storage(_))),
                                "{result:?}"
                            );
                            // Re-read before the write, which certainly failed.
                            pending.remove(&name);
                        }
                        (false, Some(Fault::UnknownNotWritten)) => {
                            prop_assert!(
                                matches!(result, Err(CatalogError::Storage(_))),
                                "{result:?}"
                            );
                            if let Some(k) = key {
                                unresolved.insert(k, (name, body.clone()));
                            }
                            pending.insert(name);
                        }
                        (false, Some(Fault::UnknownWritten)) => {
                            prop_assert!(
                                matches!(result, Err(CatalogError::Storage(_))),
                                "{result:?}"
                            );
                            remember(next.version, existing);
                            land(m, next);
                            pending.insert(name);
                        }
                        (false, Some(Fault::PhantomWriter)) => {
                            // A phantom writer advanced the head by one version first;
                            // the register then went on top of it.
                            let r = result.map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
                            prop_assert!(r.existing);
                            let phantom = Truth {
                                version: before + 1,
                                ..m.head.clone().expect("a live head")
                            };
                            land(m, phantom);
                            let version = r.manifest.version;
                            prop_assert_eq!(version, before + 2);
                            remember(version, true);
                            acked.push((name, ChangeKind::Registered, version));
                            land(m, Truth { version, ..next });
                            pending.remove(&name);
                        }
                    }
                }
                Op::Delete(name) => {
                    let m = model.entry(name).or_default();
                    let result = catalog.delete(&dataset(name)).await;
                    if m.live {
                        prop_assert!(result.is_ok(), "{result:?}");
                        m.live = false;
                        let v = m.head.as_ref().map_or(0, |t| t.version);
                        acked.push((name, ChangeKind::Deleted, v));
                    } else {
                        prop_assert!(
                            matches!(result, Err(CatalogError::NotFound { .. })),
                            "{result:?}"
                        );
                    }
                    pending.remove(&name);
                }
                Op::Expire(name, before) if !pending.contains(&name) => {
                    let m = model.entry(name).or_default();
                    let result = catalog.expire(&dataset(name), before).await;
                    match (&m.head, m.purged) {
                        (Some(t), false) => {
                            let limit = before.min(t.version);
                            let doomed: Vec<i64> =
                                m.versions.keys().filter(|v| **v < limit).copied().collect();
                            let n = result.map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
                            prop_assert_eq!(n, doomed.len());
                            if let Some(newest) = doomed.iter().max() {
                                acked.push((name, ChangeKind::Expired, *newest));
                                checkpointed = true;
                            }
                            for v in doomed {
                                m.versions.remove(&v);
                            }
                        }
                        _ => prop_assert!(
                            matches!(result, Err(CatalogError::NotFound { .. })),
                            "{result:?}"
                        ),
                    }
                }
                Op::Undrop(name) => {
                    let m = model.entry(name).or_default();
                    let result = catalog.undrop(&dataset(name)).await;
                    match (&m.head, m.live, m.purged) {
                        (Some(t), false, false) => {
                            let r = result.map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
                            prop_assert_eq!(r.version, t.version);
                            m.live = true;
                            acked.push((name, ChangeKind::Undropped, t.version));
                        }
                        (Some(_), true, false) => prop_assert!(
                            matches!(result, Err(CatalogError::NotDeleted { .. })),
                            "{result:?}"
                        ),
                        _ => prop_assert!(
                            matches!(result, Err(CatalogError::NotFound { .. })),
                            "{result:?}"
                        ),
                    }
                    pending.remove(&name);
                }
                Op::Purge(name) => {
                    let m = model.entry(name).or_default();
                    let result = catalog.purge(&dataset(name)).await;
                    match (&m.head, m.purged) {
                        (Some(t), false) => {
                            prop_assert!(result.is_ok(), "{result:?}");
                            checkpointed = true;
                            acked.push((name, ChangeKind::Purged, t.version));
                            m.purged = true;
                            m.live = false;
                            m.versions.clear();
                        }
                        (Some(_), true) => prop_assert!(result.is_ok(), "{result:?}"),
                        (None, _) => prop_assert!(
                            matches!(result, Err(CatalogError::NotFound { .. })),
                            "{result:?}"
                        ),
                    }
                    pending.remove(&name);
                }
                Op::Checkpoint => {
                    catalog
                        .write_checkpoint()
                        .await
                        .map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
                    checkpointed = true;
                }
                // An expiry of a name whose memory may lag is left out.
                Op::Observe | Op::Expire(..) => {}
                Op::Restart => {
                    catalog = build(store.clone());
                    catalog
                        .rehydrate()
                        .await
                        .map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
                    pending.clear();
                    if !checkpointed {
                        // Without a checkpoint the feed (and the keys in it) restarts after
                        // the newest change.
                        acked.clear();
                        keys.clear();
                    }
                }
            }
            // Invariants after every step: what readers see is what the store holds, except
            // that memory may lag after an unknown outcome (never lead); every kept version
            // reads back as registered.
            for (i, shown) in NAMES.iter().enumerate() {
                if pending.contains(&i) {
                    continue;
                }
                let m = model.get(&i).cloned().unwrap_or_default();
                let n = dataset(i);
                let seen = catalog.get(&n).map(|m| Truth {
                    fingerprint: m.schema_fingerprint.to_string(),
                    version: m.version,
                    objects: m.objects.clone(),
                });
                let expected = m.head.clone().filter(|_| m.live);
                prop_assert_eq!(seen, expected, "{} after {:?}", shown, op);
                let listed = catalog.versions(&n, None, 1000).await;
                if m.purged || m.head.is_none() {
                    prop_assert!(listed.is_err(), "{} has a history after {:?}", shown, op);
                    continue;
                }
                let listed: Vec<i64> = listed
                    .map_err(|e| TestCaseError::fail(format!("{e:?}")))?
                    .versions
                    .iter()
                    .map(|v| v.version)
                    .collect();
                let want: Vec<i64> = m.versions.keys().rev().copied().collect();
                prop_assert_eq!(&listed, &want, "{} versions after {:?}", shown, op);
                for (v, (fp, objects)) in &m.versions {
                    let got = catalog
                        .version(&n, *v)
                        .await
                        .map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
                    prop_assert_eq!(got.schema_fingerprint.as_str(), fp.as_str());
                    prop_assert_eq!(&got.objects, objects);
                }
            }
        }
        // The feed: once every unknown outcome is resolved, every acknowledged change is in
        // it exactly once, and numbers increase strictly.
        catalog.resolve_stale().await;
        let feed = catalog
            .changes_after(None, usize::MAX, std::time::Duration::ZERO)
            .await
            .map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
        prop_assert!(feed.changes.windows(2).all(|w| w[0].seq < w[1].seq));
        for (name, kind, version) in &acked {
            let found = feed
                .changes
                .iter()
                .filter(|c| {
                    c.name.as_str() == NAMES[*name] && c.kind == *kind && c.version == *version
                })
                .count();
            let want = acked
                .iter()
                .filter(|a| **a == (*name, *kind, *version))
                .count();
            prop_assert!(
                found >= want,
                "{:?} {} v{} is {} times in the feed, acknowledged {} times",
                kind,
                NAMES[*name],
                version,
                found,
                want
            );
        }
        Ok(())
    })
}

fn runner() -> TestRunner {
    TestRunner::new_with_rng(
        Config {
            cases: 200,
            failure_persistence: None,
            ..Config::default()
        },
        proptest::test_runner::TestRng::deterministic_rng(
            proptest::test_runner::RngAlgorithm::ChaCha,
        ),
    )
}

#[test]
fn the_catalog_matches_the_model() {
    let result = runner().run(&proptest::collection::vec(op(), 1..40), |ops| {
        check(&ops, &|store| Catalog::new(store, Arc::new(SystemClock)))
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

#[test]
fn publish_before_persist_fails_the_model() {
    let result = runner().run(&proptest::collection::vec(op(), 1..40), |ops| {
        check(&ops, &broken_publish_before_persist)
    });
    assert!(
        result.is_err(),
        "the broken register passed the state-machine test"
    );
}

/// A store that publishes every candidate into the catalog's index before writing it: the
/// broken register ("publish before persist") the model must catch.
#[derive(Debug)]
struct PublishFirst {
    inner: Rc<dyn ManifestStore>,
    catalog: std::cell::RefCell<Option<CatalogState>>,
}

#[async_trait::async_trait(?Send)]
impl ManifestStore for PublishFirst {
    async fn get(
        &self,
        name: &DatasetName,
        slot: Slot,
    ) -> Result<Option<StoredRecord>, StoreError> {
        self.inner.get(name, slot).await
    }

    async fn put(
        &self,
        record: &manifest_codec::Record,
        slot: Slot,
        condition: WriteCondition,
    ) -> Result<String, StoreError> {
        if let (Some(catalog), Slot::Head) = (self.catalog.borrow().as_ref(), slot) {
            catalog.publish_unpersisted(record.manifest.clone());
        }
        self.inner.put(record, slot, condition).await
    }

    async fn delete(
        &self,
        name: &DatasetName,
        slot: Slot,
        etag: Option<&str>,
    ) -> Result<(), StoreError> {
        self.inner.delete(name, slot, etag).await
    }

    async fn list(&self) -> Result<Listing, StoreError> {
        self.inner.list().await
    }

    async fn list_versions(&self, name: &DatasetName) -> Result<Vec<i64>, StoreError> {
        self.inner.list_versions(name).await
    }

    async fn get_file(&self, file: CatalogFile) -> Result<Option<bytes::Bytes>, StoreError> {
        self.inner.get_file(file).await
    }

    async fn put_file(&self, file: CatalogFile, bytes: bytes::Bytes) -> Result<(), StoreError> {
        self.inner.put_file(file, bytes).await
    }

    async fn object_size(
        &self,
        key: &manifest_codec::ObjectKey,
    ) -> Result<Option<u64>, StoreError> {
        self.inner.object_size(key).await
    }
}

fn broken_publish_before_persist(store: Rc<dyn ManifestStore>) -> Catalog {
    let broken = Rc::new(PublishFirst {
        inner: store,
        catalog: std::cell::RefCell::new(None),
    });
    let catalog = Catalog::new(broken.clone(), Arc::new(SystemClock));
    *broken.catalog.borrow_mut() = Some(catalog.state());
    catalog
}
