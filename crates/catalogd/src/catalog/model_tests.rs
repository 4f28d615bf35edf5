//! A seeded state-machine test: random register / delete / get / restart sequences with
//! injected store faults, checked against a model of what the store durably holds.

use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::sync::Arc;

use manifest_codec::{DatasetName, ObjectKey, ObjectRef, ObjectSize, SchemaFingerprint};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use super::{Catalog, CatalogError, CatalogState, RegisterRequest, SystemClock};
use crate::store::{
    Fault, Listing, ManifestStore, MemoryStore, StoreError, StoredManifest, WriteCondition,
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
    },
    Delete(usize),
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
        6 => (0..NAMES.len(), 0..FINGERPRINTS.len(), any::<u8>(), fault).prop_map(
            |(name, fingerprint, tag, fault)| Op::Register { name, fingerprint, tag, fault }
        ),
        1 => (0..NAMES.len()).prop_map(Op::Delete),
        3 => Just(Op::Observe),
        1 => Just(Op::Restart),
    ]
}

/// What the store durably holds for one name.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Truth {
    fingerprint: String,
    version: i64,
    objects: Vec<ObjectRef>,
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
        let mut truth: HashMap<usize, Truth> = HashMap::new();
        // Names whose last write had an unknown outcome: memory may lag the store.
        let mut pending: HashSet<usize> = HashSet::new();
        for op in ops {
            match op.clone() {
                Op::Register {
                    name,
                    fingerprint,
                    tag,
                    fault,
                } => {
                    let fp = FINGERPRINTS[fingerprint];
                    let conflict = truth.get(&name).is_some_and(|t| t.fingerprint != fp);
                    let fault = if conflict { None } else { fault };
                    if let Some(f) = &fault {
                        store.inject(f.clone());
                    }
                    let result = catalog
                        .register(RegisterRequest {
                            name: DatasetName::parse(NAMES[name]).unwrap(),
                            schema_fingerprint: SchemaFingerprint::parse(fp).unwrap(),
                            objects: objects(tag),
                            row_count: None,
                        })
                        .await;
                    let before = truth.get(&name).map_or(0, |t| t.version);
                    let next = Truth {
                        fingerprint: fp.to_owned(),
                        version: before + 1,
                        objects: objects(tag),
                    };
                    match (conflict, fault) {
                        (true, _) => {
                            prop_assert!(
                                matches!(result, Err(CatalogError::FingerprintConflict { .. })),
                                "{result:?}"
                            );
                        }
                        (false, None) => {
                            let r = result.map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
                            prop_assert_eq!(r.existing, before > 0);
                            prop_assert_eq!(r.manifest.version, next.version);
                            truth.insert(name, next);
                            pending.remove(&name);
                        }
                        (false, Some(Fault::Fail)) => {
                            prop_assert!(
                                matches!(result, Err(CatalogError::Storage(_))),
                                "{result:?}"
                            );
                        }
                        (false, Some(Fault::UnknownNotWritten)) => {
                            prop_assert!(
                                matches!(result, Err(CatalogError::Storage(_))),
                                "{result:?}"
                            );
                            pending.insert(name);
                        }
                        (false, Some(Fault::UnknownWritten)) => {
                            prop_assert!(
                                matches!(result, Err(CatalogError::Storage(_))),
                                "{result:?}"
                            );
                            truth.insert(name, next);
                            pending.insert(name);
                        }
                        (false, Some(Fault::PhantomWriter)) => {
                            let r = result.map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
                            prop_assert!(r.existing);
                            prop_assert_eq!(r.manifest.version, before + 2);
                            truth.insert(
                                name,
                                Truth {
                                    version: before + 2,
                                    ..next
                                },
                            );
                            pending.remove(&name);
                        }
                    }
                }
                Op::Delete(name) => {
                    let result = catalog
                        .delete(&DatasetName::parse(NAMES[name]).unwrap())
                        .await;
                    if truth.remove(&name).is_some() {
                        prop_assert!(result.is_ok(), "{result:?}");
                    } else {
                        prop_assert!(
                            matches!(result, Err(CatalogError::NotFound { .. })),
                            "{result:?}"
                        );
                    }
                    pending.remove(&name);
                }
                Op::Observe => {}
                Op::Restart => {
                    catalog = build(store.clone());
                    catalog
                        .rehydrate()
                        .await
                        .map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
                    pending.clear();
                }
            }
            // Invariant after every step: what readers see is what the store holds, except
            // that memory may lag after an unknown outcome (never lead).
            for (i, n) in NAMES.iter().enumerate() {
                if pending.contains(&i) {
                    continue;
                }
                let seen = catalog.get(&DatasetName::parse(n).unwrap()).map(|m| Truth {
                    fingerprint: m.schema_fingerprint.to_string(),
                    version: m.version,
                    objects: m.objects.clone(),
                });
                prop_assert_eq!(seen, truth.get(&i).cloned(), "{} after {:?}", n, op);
            }
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
    async fn get(&self, name: &DatasetName) -> Result<Option<StoredManifest>, StoreError> {
        self.inner.get(name).await
    }

    async fn put(
        &self,
        manifest: &manifest_codec::Manifest,
        condition: WriteCondition,
    ) -> Result<String, StoreError> {
        if let Some(catalog) = self.catalog.borrow().as_ref() {
            catalog.publish_unpersisted(manifest.clone());
        }
        self.inner.put(manifest, condition).await
    }

    async fn delete(&self, name: &DatasetName, etag: &str) -> Result<(), StoreError> {
        self.inner.delete(name, etag).await
    }

    async fn list(&self) -> Result<Listing, StoreError> {
        self.inner.list().await
    }

    async fn get_checkpoint(&self) -> Result<Option<bytes::Bytes>, StoreError> {
        self.inner.get_checkpoint().await
    }

    async fn put_checkpoint(&self, bytes: bytes::Bytes) -> Result<(), StoreError> {
        self.inner.put_checkpoint(bytes).await
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
