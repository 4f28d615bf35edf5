//! Crash-point sweep: storaged is killed (SIGKILL, injected by strace) on entering the k-th
//! `fsync`, `rename`, `mkdir`, `unlink`, `openat` or `write` of a fixed script, for every k
//! the script reaches. After a plain restart every key holds exactly its old or its new
//! bytes, every acknowledged operation is there, and no temporary file is listed or left.
//!
//! strace counts calls per thread, so "the k-th" is the k-th of whichever thread gets there
//! first; the sweep runs until the script completes without a crash, and checks that every
//! operation of the script was crashed inside at least once. A second sweep runs with the
//! write log on (ADR 0017), adding its `pwrite64` and `fdatasync` calls.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use faults::strace;
use testkit::{free_port, Launch, Proc};

#[derive(Debug, Clone)]
enum Op {
    Put(&'static str, Vec<u8>),
    Delete(&'static str),
}

/// New nested directories, overwrites, large (streamed) objects, deletes and a re-create.
fn script() -> Vec<Op> {
    vec![
        Op::Put("a/x/one", b"one, first".to_vec()),
        Op::Put("a/x/one", b"one, second".to_vec()),
        Op::Put("a/y/two", vec![b'2'; 300 * 1024]),
        Op::Delete("a/x/one"),
        Op::Put("a/x/one", b"one, third".to_vec()),
        Op::Put("b/three", b"three".to_vec()),
        Op::Put("a/y/two", b"two, small now".to_vec()),
        Op::Delete("b/three"),
        Op::Put("c/d/e/four", b"four".to_vec()),
        Op::Put("a/y/two", vec![b'3'; 280 * 1024]),
    ]
}

/// What one crash left: the acknowledged state and the operation in flight.
struct Run {
    acked: BTreeMap<&'static str, Vec<u8>>,
    in_flight: Option<Op>,
    /// Which op of the script was in flight (None: killed at start-up or idle).
    at: Option<usize>,
    crashed: bool,
}

/// storaged on `data`, with the write log on (small segments) or off.
fn storaged(data: &Path, log: bool) -> Launch {
    let (max, segment) = if log {
        ("256 KiB", "8 MiB")
    } else {
        ("0", "64 MiB")
    };
    Launch::storaged(data, free_port())
        .env("STORAGED_LOG_MAX_OBJECT_SIZE", max)
        .env("STORAGED_LOG_SEGMENT_SIZE", segment)
}

/// Runs the script against storaged under strace, killed at the `k`-th `syscall`.
async fn run_until_killed(root: &Path, data: &Path, syscall: &str, k: usize, log: bool) -> Run {
    let mut p = storaged(data, log)
        .under(strace::kill_at(syscall, k))
        .log_dir(root)
        .spawn();
    let mut run = Run {
        acked: BTreeMap::new(),
        in_flight: None,
        at: None,
        crashed: false,
    };
    // Killed during start-up?
    if !p.ready_or_exited().await {
        run.crashed = true;
        return run;
    }
    let api = p.api();
    for (i, op) in script().into_iter().enumerate() {
        let reply = match &op {
            Op::Put(key, body) => api.put(&format!("/v1/objects/{key}"), body.clone()).await,
            Op::Delete(key) => {
                api.send(
                    api.request(awc::http::Method::DELETE, &format!("/v1/objects/{key}")),
                    None,
                )
                .await
            }
        };
        match reply {
            Ok(r) if r.status.is_success() => match op {
                Op::Put(key, body) => {
                    run.acked.insert(key, body);
                }
                Op::Delete(key) => {
                    run.acked.remove(key);
                }
            },
            Ok(r) => panic!("{op:?} answered {} before any crash", r.code()),
            Err(_) => {
                run.in_flight = Some(op);
                run.at = Some(i);
                break;
            }
        }
    }
    run.crashed = p.exited_or_killed(Duration::from_secs(5));
    run
}

/// Restarts storaged plainly on `data` and checks what `run` left; returns a violation.
async fn check(root: &Path, data: &Path, run: &Run, log: bool) -> Result<(), String> {
    let p: Proc = storaged(data, log).log_dir(root).spawn();
    p.wait_ready().await;
    let api = p.api();
    let mut allowed = faults::crash::Allowed::new();
    for (key, body) in &run.acked {
        allowed.insert(key, vec![Some(body.clone())]);
    }
    match &run.in_flight {
        Some(Op::Put(key, body)) => {
            let old = run.acked.get(key).cloned();
            allowed.insert(key, vec![old, Some(body.clone())]);
        }
        Some(Op::Delete(key)) => {
            let old = run.acked.get(key).cloned();
            allowed.insert(key, vec![old, None]);
        }
        None => {}
    }
    faults::crash::holds_only(&api, &allowed).await?;
    let leftovers = std::fs::read_dir(data.join("tmp")).map_or(0, Iterator::count);
    if leftovers > 0 {
        return Err(format!("{leftovers} temporary files left after restart"));
    }
    Ok(())
}

/// Both sweeps in one test, one after the other: the sweep is sensitive to load (strace
/// counts per thread), so they must not run side by side.
#[actix_web::test]
async fn a_crash_at_any_write_fsync_rename_or_mkdir_loses_nothing_acknowledged() {
    sweep(
        false,
        &["fsync", "rename", "mkdir", "unlink", "openat", "write"],
    )
    .await;
    sweep(
        true,
        &[
            "pwrite64",
            "fdatasync",
            "fsync",
            "rename",
            "mkdir",
            "unlink",
        ],
    )
    .await;
}

/// Crashes the script at every reachable call of each of `syscalls` and checks each.
async fn sweep(log: bool, syscalls: &[&str]) {
    strace::require();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let mut explored = 0;
    let mut summary = Vec::new();
    let mut ops_hit = std::collections::BTreeSet::new();
    // With the log, every operation that writes the log must be crashed inside (the
    // large objects' file path is the first sweep's).
    let required: std::collections::BTreeSet<usize> = script()
        .iter()
        .enumerate()
        .filter(|(_, op)| !log || !matches!(op, Op::Put(_, body) if body.len() > 256 * 1024))
        .map(|(i, _)| i)
        .collect();
    for &syscall in syscalls {
        // `write` is also every log line and runtime wake-up, `openat` every library the
        // loader opens: the fast tier takes every third or fourth point of them; `make
        // chaos` takes them all.
        let step = match syscall {
            "write" => faults::sized(3, 1),
            "openat" => faults::sized(4, 1),
            _ => 1,
        };
        let mut crashes = 0;
        // The fast tier's first pass takes every `step`-th point; the points in between
        // are taken only while some operation has not been crashed inside yet (strace
        // counts per thread, so which operation a point falls in varies from run to run).
        for offset in 0..step {
            if offset > 0 && required.is_subset(&ops_hit) {
                break;
            }
            let mut k = 1 + offset;
            loop {
                let data = root.join(format!("data-{syscall}-{k}"));
                let run = run_until_killed(root, &data, syscall, k, log).await;
                if !run.crashed {
                    break; // the script no longer reaches the k-th call
                }
                if let Err(violation) = check(root, &data, &run, log).await {
                    panic!("crash at {syscall} #{k} (write log {log}): {violation}");
                }
                crashes += 1;
                ops_hit.extend(run.at);
                explored += 1;
                k += step;
                assert!(k < 5_000, "{syscall}: the sweep does not end");
            }
        }
        summary.push(format!("{syscall} {crashes}"));
    }
    println!(
        "crash points explored{}: {explored} ({}) → 0 violations; crashed inside {} of the \
         script's {} operations",
        if log { " with the write log" } else { "" },
        summary.join(", "),
        ops_hit.len(),
        script().len()
    );
    assert!(explored >= 20, "too few crash points reached");
    assert!(
        required.is_subset(&ops_hit),
        "some operations were never crashed inside: {:?}",
        required.difference(&ops_hit).collect::<Vec<_>>()
    );
}
