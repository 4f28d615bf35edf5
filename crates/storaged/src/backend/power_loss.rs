//! Simulated power loss: every workload of up to three operations runs on [`SimFs`]; at
//! every point of it (after each file system call) and for each way a power loss may
//! leave the disk ([`Crash`]), the store reopened on what survived must hold every
//! acknowledged write, and every key exactly its old or its new bytes. Without the
//! directory fsync (or the file fsync) the same enumeration must find a lost write.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use futures_util::StreamExt;
use manifest_codec::ObjectKey;

use super::conformance::body;
use super::simfs::{Crash, SimFs, State};
use super::{Backend, Condition, LocalFs};

#[derive(Clone)]
enum Op {
    Put(&'static str, Vec<u8>),
    Delete(&'static str),
    /// A write-log checkpoint and compaction (ADR 0018): changes no object.
    Maintain,
}

impl std::fmt::Debug for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Op::Put(k, v) => write!(f, "put {k} ({} bytes)", v.len()),
            Op::Delete(k) => write!(f, "delete {k}"),
            Op::Maintain => write!(f, "checkpoint and compact"),
        }
    }
}

impl Op {
    fn key(&self) -> Option<&'static str> {
        match self {
            Op::Put(k, _) | Op::Delete(k) => Some(k),
            Op::Maintain => None,
        }
    }
}

/// Create and overwrite in a directory, a large (streamed) object in a new nested one, a
/// delete.
fn alphabet() -> Vec<Op> {
    vec![
        Op::Put("k/a", b"one".to_vec()),
        Op::Put("k/a", b"two".to_vec()),
        Op::Put("k/n/b", vec![9; 300 * 1024]),
        Op::Delete("k/a"),
    ]
}

/// Every sequence of one to three operations of the alphabet (four in `make chaos`).
fn workloads() -> Vec<Vec<Op>> {
    let alphabet = alphabet();
    let longest = if std::env::var("CHAOS").is_ok_and(|v| !v.is_empty() && v != "0") {
        4
    } else {
        3
    };
    let mut all: Vec<Vec<Op>> = vec![vec![]];
    let mut out = Vec::new();
    for _ in 0..longest {
        all = all
            .iter()
            .flat_map(|w| {
                alphabet.iter().map(move |op| {
                    let mut w = w.clone();
                    w.push(op.clone());
                    w
                })
            })
            .collect();
        out.extend(all.iter().cloned());
    }
    out
}

/// With the write log: workloads that fill a 64 KiB segment, checkpoint and compact it —
/// removing a dead segment, copying a live record forward, a delete after the copy.
fn log_workloads() -> Vec<Vec<Op>> {
    let big = |k| Op::Put(k, vec![5; 40 * 1024]);
    let mut all = workloads();
    all.extend([
        vec![big("k/c"), big("k/c"), Op::Maintain],
        vec![
            Op::Put("k/a", b"one".to_vec()),
            big("k/c"),
            big("k/c"),
            Op::Maintain,
        ],
        vec![
            Op::Put("k/a", b"one".to_vec()),
            big("k/c"),
            big("k/c"),
            Op::Maintain,
            Op::Delete("k/a"),
        ],
        vec![
            Op::Put("k/a", b"one".to_vec()),
            big("k/c"),
            Op::Delete("k/c"),
            big("k/d"),
            Op::Maintain,
            Op::Put("k/a", b"two".to_vec()),
            Op::Maintain,
        ],
    ]);
    all
}

const DATA: &str = "/data";

async fn open(fs: SimFs) -> LocalFs {
    open_store(fs, false).await
}

/// The store on `fs`; with `log`, small objects are write-log records (ADR 0017), in
/// small segments so that each snapshot stays small.
async fn open_store(fs: SimFs, log: bool) -> LocalFs {
    try_open_store(fs, log)
        .await
        .expect("the store opens on what survived")
}

async fn try_open_store(fs: SimFs, log: bool) -> Result<LocalFs, super::StorageError> {
    let config = if log {
        super::LogConfig {
            max_object_size: 256 << 10,
            segment_size: 64 << 10,
            // Checkpoints and compaction run when a workload says so, not in the background.
            checkpoint_every: u64::MAX,
        }
    } else {
        super::LogConfig::OFF
    };
    LocalFs::open_with(
        Arc::new(fs),
        Path::new(DATA),
        super::FsyncPolicy::on(None),
        config,
        super::LogMetrics::default(),
    )
    .await
    .map(|(store, _)| store)
}

/// Runs `ops`; returns every snapshot, the snapshot count when the store was open, and the
/// count when each operation was acknowledged.
async fn record(ops: &[Op], fs: SimFs, log: bool) -> (Vec<State>, usize, Vec<usize>, u64) {
    let store = open_store(fs.clone(), log).await;
    let start = fs.snapshots().len();
    let mut acks = Vec::new();
    for op in ops {
        let key = op.key().map(|k| ObjectKey::parse(k).unwrap());
        match (op, key) {
            (Op::Put(_, bytes), Some(key)) => {
                store
                    .put(&key, Condition::None, body(bytes.clone()))
                    .await
                    .unwrap();
            }
            (Op::Delete(_), Some(key)) => store.delete(&key, Condition::None).await.unwrap(),
            _ => store.maintain_log_now().await,
        }
        acks.push(fs.snapshots().len());
    }
    (fs.snapshots(), start, acks, store.log_compactions())
}

async fn read(store: &LocalFs, key: &str) -> Option<Vec<u8>> {
    let key = ObjectKey::parse(key).unwrap();
    let reader = store.get(&key).await.ok()?;
    let size = reader.meta.size;
    let mut stream = reader.stream(0, size);
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk.unwrap());
    }
    Some(out)
}

/// Reopens the store on `state`; `acked` operations were acknowledged, `in_flight` may
/// or may not have happened.
async fn check(
    state: State,
    ops: &[Op],
    acked: usize,
    in_flight: &[&Op],
    log: bool,
) -> Result<(), String> {
    let store = try_open_store(SimFs::from_state(state, true, true), log)
        .await
        .map_err(|e| format!("the store does not open: {}", service_kit::ErrorChain(&e)))?;
    let mut model: BTreeMap<&str, Option<Vec<u8>>> = BTreeMap::new();
    for op in &ops[..acked] {
        match op {
            Op::Put(k, v) => model.insert(k, Some(v.clone())),
            Op::Delete(k) => model.insert(k, None),
            Op::Maintain => None,
        };
    }
    let mut allowed: BTreeMap<&str, Vec<Option<Vec<u8>>>> = ops
        .iter()
        .chain(&alphabet())
        .filter_map(Op::key)
        .map(|k| (k, vec![model.get(k).cloned().flatten()]))
        .collect();
    for op in in_flight {
        let new = match op {
            Op::Put(k, v) => Some((k, Some(v.clone()))),
            Op::Delete(k) => Some((k, None)),
            Op::Maintain => None,
        };
        if let Some((k, v)) = new {
            allowed
                .entry(k)
                .or_insert_with(|| vec![model.get(k).cloned().flatten()])
                .push(v);
        }
    }
    for (key, options) in &allowed {
        let got = read(&store, key).await;
        if !options.contains(&got) {
            let was = options.first().cloned().flatten();
            return Err(if got.is_none() && was.is_some() {
                format!("{key}: an acknowledged write was lost")
            } else {
                format!(
                    "{key}: holds {:?} bytes, expected one of {:?}",
                    got.map(|g| g.len()),
                    options
                        .iter()
                        .map(|o| o.as_ref().map(Vec::len))
                        .collect::<Vec<_>>()
                )
            });
        }
    }
    let listed = store.list("", None, 100).await.unwrap();
    for meta in listed.objects {
        let key = meta.key.to_string();
        if !allowed
            .get(key.as_str())
            .is_some_and(|o| o.iter().any(Option::is_some))
        {
            return Err(format!("{key} is listed but should not exist"));
        }
    }
    Ok(())
}

/// Every crash state of every workload; returns (states checked, violations).
async fn sweep(sync_dirs: bool, sync_files: bool) -> (usize, Vec<String>) {
    let (checked, violations, _) = sweep_with(sync_dirs, sync_files, false).await;
    (checked, violations)
}

/// [`sweep`], with the write log on or off.
/// Also returns how many log segments the workloads compacted.
async fn sweep_with(sync_dirs: bool, sync_files: bool, log: bool) -> (usize, Vec<String>, u64) {
    let mut checked = 0;
    let mut compacted = 0;
    let mut violations = Vec::new();
    let all = if log { log_workloads() } else { workloads() };
    for ops in all {
        let (snapshots, start, acks, compactions) =
            record(&ops, SimFs::new(sync_dirs, sync_files), log).await;
        compacted += compactions;
        for n in start..=snapshots.len() {
            let acked = acks.iter().filter(|a| **a <= n).count();
            let settled = if acked == 0 { start } else { acks[acked - 1] };
            // Calls after the last acknowledgement are background work (the next log
            // segment made ahead), with no operation in flight.
            let in_flight: Vec<&Op> = ops.get(acked).filter(|_| n > settled).into_iter().collect();
            for crash in Crash::ALL {
                let state = snapshots[n - 1].after(crash);
                checked += 1;
                if let Err(v) = check(state, &ops, acked, &in_flight, log).await {
                    violations.push(format!("{ops:?}, crash after call {n} ({crash:?}): {v}"));
                }
            }
        }
    }
    (checked, violations, compacted)
}

#[tokio::test]
async fn no_power_loss_loses_an_acknowledged_write_or_tears_an_object() {
    let (checked, violations) = sweep(true, true).await;
    assert!(violations.is_empty(), "{}", violations.join("\n"));
    assert!(checked > 1_000, "{checked}");
    println!(
        "power loss: {} workloads, {checked} crash states → 0 violations",
        workloads().len()
    );
}

#[tokio::test]
async fn with_the_write_log_no_power_loss_loses_an_acknowledged_write_or_tears_an_object() {
    let (checked, violations, compacted) = sweep_with(true, true, true).await;
    assert!(violations.is_empty(), "{}", violations.join("\n"));
    assert!(checked > 1_000, "{checked}");
    assert!(
        compacted >= 4,
        "the compaction workloads compacted {compacted} segments"
    );
    println!(
        "power loss with the write log: {} workloads ({compacted} segments compacted), \
         {checked} crash states → 0 violations",
        log_workloads().len()
    );
}

#[tokio::test]
async fn with_the_write_log_but_no_fdatasync_a_power_loss_loses_acknowledged_records() {
    let (checked, violations, _) = sweep_with(true, false, true).await;
    let lost = violations
        .iter()
        .filter(|v| v.contains("an acknowledged write was lost"))
        .count();
    assert!(lost > 0, "{violations:?}");
    println!("power loss with the write log but no file syncs: {lost} of {checked} crash states lose an acknowledged write");
}

#[tokio::test]
async fn without_the_directory_fsync_a_power_loss_loses_acknowledged_writes() {
    let (checked, violations) = sweep(false, true).await;
    let lost = violations
        .iter()
        .filter(|v| v.contains("an acknowledged write was lost"))
        .count();
    assert!(lost > 0, "{violations:?}");
    println!("power loss without the directory fsync: {lost} of {checked} crash states lose an acknowledged write");
}

#[tokio::test]
async fn without_the_file_fsync_a_power_loss_tears_or_loses_objects() {
    let (checked, violations) = sweep(true, false).await;
    assert!(!violations.is_empty());
    println!(
        "power loss without the file fsync: {} of {checked} crash states violate",
        violations.len()
    );
}

/// A multipart completion under power loss: two staged parts are published as one object
/// by the S3 face's own `publish`, then the staging is removed. At every point and for
/// every way the disk may be left, the object is absent or whole (whole once
/// acknowledged), never a prefix of the parts.
#[tokio::test]
async fn a_power_loss_during_a_multipart_completion_leaves_no_object_or_all_of_it() {
    use crate::s3::multipart::publish;
    let parts = [
        ("_s3/uploads/lake/u/00001", vec![1_u8; 300 * 1024]),
        ("_s3/uploads/lake/u/00002", vec![2_u8; 1000]),
    ];
    let whole: Vec<u8> = parts.iter().flat_map(|(_, p)| p.clone()).collect();
    let fs = SimFs::new(true, true);
    let store: Arc<dyn Backend> = Arc::new(open(fs.clone()).await);
    for (key, content) in &parts {
        let key = ObjectKey::parse(key).unwrap();
        store
            .put(&key, Condition::None, body(content.clone()))
            .await
            .unwrap();
    }
    let staged = fs.snapshots().len();
    let target = ObjectKey::parse("lake/assembled").unwrap();
    let keys = parts
        .iter()
        .map(|(k, _)| ObjectKey::parse(k).unwrap())
        .collect();
    publish(&store, &target, keys, super::NewObject::default())
        .await
        .unwrap();
    let published = fs.snapshots().len();
    for (key, _) in &parts {
        let key = ObjectKey::parse(key).unwrap();
        store.delete(&key, Condition::None).await.unwrap();
    }
    let snapshots = fs.snapshots();
    let mut checked = 0;
    for n in staged..=snapshots.len() {
        for crash in Crash::ALL {
            let reopened = open(SimFs::from_state(snapshots[n - 1].after(crash), true, true)).await;
            let got = read(&reopened, "lake/assembled").await;
            match got {
                None => assert!(
                    n < published,
                    "after call {n} ({crash:?}): the acknowledged object is gone"
                ),
                Some(bytes) => assert!(
                    bytes == whole,
                    "after call {n} ({crash:?}): {} bytes, not the whole object",
                    bytes.len()
                ),
            }
            checked += 1;
        }
    }
    assert!(checked > 20, "{checked}");
    println!("power loss during a multipart completion: {checked} crash states → 0 violations");
}

#[path = "power_loss_siblings.rs"]
mod siblings;
