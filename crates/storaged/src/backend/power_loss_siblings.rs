//! Simulated power loss during concurrent operations on sibling keys (keys that share
//! directories): the same crash states and checks as the sequential sweep, with several
//! operations in flight at once.

use manifest_codec::ObjectKey;

use super::super::conformance::body;
use super::super::simfs::{Crash, SimFs};
use super::super::{Backend, Condition};
use super::{check, open_store, Op};

/// Workloads on sibling keys: sequential set-up, then operations on different keys that
/// share directories, run at once (a put creating a directory another put renames into; a
/// delete pruning a directory a sibling's delete fsyncs; a small write moving a key from
/// its file into the log beside a sibling's delete).
fn concurrent_workloads() -> Vec<(Vec<Op>, Vec<Op>)> {
    let small = |k| Op::Put(k, b"small".to_vec());
    let large = |k| Op::Put(k, vec![7; 300 * 1024]);
    vec![
        (vec![], vec![small("k/n/a"), small("k/n/b")]),
        (vec![], vec![small("k/n/a"), small("k/n/m/c")]),
        (vec![], vec![large("k/n/a"), small("k/n/m/c")]),
        (
            vec![small("k/n/a"), small("k/n/b")],
            vec![Op::Delete("k/n/a"), Op::Delete("k/n/b")],
        ),
        (
            vec![large("k/n/a"), large("k/n/m/c")],
            vec![Op::Delete("k/n/a"), Op::Delete("k/n/m/c")],
        ),
        (
            vec![small("k/n/a")],
            vec![Op::Delete("k/n/a"), small("k/n/b")],
        ),
        (
            vec![large("k/n/a"), small("k/n/b")],
            vec![small("k/n/a"), Op::Delete("k/n/b")],
        ),
    ]
}

/// Every crash state of every concurrent workload, each run `repeats` times (the
/// interleaving differs from run to run); returns (states checked, violations).
async fn sweep_concurrent(log: bool, repeats: usize) -> (usize, Vec<String>) {
    let mut checked = 0;
    let mut violations = Vec::new();
    for (setup, together) in concurrent_workloads() {
        for _ in 0..repeats {
            let fs = SimFs::new(true, true);
            let store = open_store(fs.clone(), log).await;
            for op in &setup {
                if let Op::Put(k, v) = op {
                    let key = ObjectKey::parse(k).unwrap();
                    store
                        .put(&key, Condition::None, body(v.clone()))
                        .await
                        .unwrap();
                }
            }
            let start = fs.snapshots().len();
            let acks = futures_util::future::join_all(together.iter().map(|op| {
                let (store, fs) = (&store, &fs);
                async move {
                    let key = ObjectKey::parse(op.key().unwrap()).unwrap();
                    match op {
                        Op::Put(_, v) => store
                            .put(&key, Condition::None, body(v.clone()))
                            .await
                            .map(|_| ()),
                        _ => store.delete(&key, Condition::None).await,
                    }
                    .unwrap_or_else(|e| panic!("{op:?}: {}", service_kit::ErrorChain(&e)));
                    fs.snapshots().len()
                }
            }))
            .await;
            let snapshots = fs.snapshots();
            drop(store);
            for n in start..=snapshots.len() {
                let mut ops = setup.clone();
                let mut in_flight = Vec::new();
                for (op, ack) in together.iter().zip(&acks) {
                    if *ack <= n {
                        ops.push(op.clone());
                    } else {
                        in_flight.push(op);
                    }
                }
                for crash in Crash::ALL {
                    let state = snapshots[n - 1].after(crash);
                    checked += 1;
                    if let Err(v) = check(state, &ops, ops.len(), &in_flight, log).await {
                        violations.push(format!(
                            "{setup:?} then {together:?} at once, crash after call {n} ({crash:?}): {v}"
                        ));
                    }
                }
            }
        }
    }
    (checked, violations)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_operations_on_sibling_keys_survive_any_power_loss() {
    let repeats = if std::env::var("CHAOS").is_ok_and(|v| !v.is_empty() && v != "0") {
        20
    } else {
        5
    };
    for log in [false, true] {
        let (checked, violations) = sweep_concurrent(log, repeats).await;
        assert!(violations.is_empty(), "{}", violations.join("\n"));
        assert!(checked > 100, "{checked}");
        println!(
            "power loss, concurrent sibling keys (log {log}): {} workloads x {repeats} runs, \
             {checked} crash states → 0 violations",
            concurrent_workloads().len()
        );
    }
}
