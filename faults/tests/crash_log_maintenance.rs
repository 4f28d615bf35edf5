//! Crash-point sweep over the write log's maintenance (ADR 0018): storaged starts on a log
//! one segment short of its first checkpoint; the script pushes it over, so the background
//! thread writes the index checkpoint and compacts the four dead segments (copying their
//! live records to the head, then removing them), waits for that, and writes on. storaged
//! is killed (SIGKILL, injected by strace) at the k-th `pwrite64`, `fdatasync`, `fsync`,
//! `rename` or `unlink`, for every k the run reaches. After a plain restart the log opens,
//! every key holds exactly its acknowledged bytes (or the in-flight operation's), and
//! nothing else is listed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use faults::strace;
use testkit::{free_port, Api, Launch, Proc};

/// Bodies of the log-sized puts: under the 256 KiB log limit, about 33 to a segment.
const BODY: usize = 250_000;
/// Puts that fill the template's log to just under four 8 MiB segments (the checkpoint
/// threshold) without reaching it.
const FILL: usize = 131;
/// Keys the template overwrites in turn, so that its first four segments are mostly dead.
const KEYS: [&str; 4] = ["c/0", "c/1", "c/2", "c/3"];

#[derive(Debug, Clone)]
enum Op {
    Put(&'static str, Vec<u8>),
    Delete(&'static str),
    /// Waits until the four dead segments are compacted.
    AwaitCompaction,
}

fn body(n: usize) -> Vec<u8> {
    let byte = u8::try_from(n % 251).unwrap();
    vec![byte; BODY]
}

fn script() -> Vec<Op> {
    vec![
        Op::Put("c/0", body(FILL)),
        Op::Put("c/1", body(FILL + 1)),
        Op::Put("c/2", body(FILL + 2)),
        Op::AwaitCompaction,
        Op::Put("c/3", b"three, small now".to_vec()),
        Op::Delete("c/0"),
        Op::Put("c/1", body(FILL + 3)),
    ]
}

fn storaged(data: &Path) -> Launch {
    Launch::storaged(data, free_port())
        .env("STORAGED_LOG_MAX_OBJECT_SIZE", "256 KiB")
        .env("STORAGED_LOG_SEGMENT_SIZE", "8 MiB")
}

/// The template's keys and bodies after the fill.
fn filled() -> BTreeMap<&'static str, Vec<u8>> {
    (0..FILL).map(|i| (KEYS[i % KEYS.len()], body(i))).collect()
}

/// Fills a fresh data directory's log through a plain storaged, then stops it.
async fn template(root: &Path) -> std::path::PathBuf {
    let data = root.join("template");
    let mut p = storaged(&data).log_dir(root).spawn();
    p.wait_ready().await;
    let api = p.api();
    for i in 0..FILL {
        let reply = api
            .put(&format!("/v1/objects/{}", KEYS[i % KEYS.len()]), body(i))
            .await
            .unwrap();
        assert!(reply.status.is_success(), "fill put {i}: {}", reply.code());
    }
    assert!(
        p.stop(Duration::from_secs(10)).is_some(),
        "storaged did not stop"
    );
    assert!(
        !data.join("log/checkpoint").try_exists().unwrap(),
        "the fill reached the checkpoint threshold; the sweep would not see the first one"
    );
    data
}

/// Segments compacted so far, from `/metrics`; `None` when storaged does not answer.
async fn compacted(api: &Api) -> Option<u64> {
    let reply = api.get("/metrics").await.ok()?;
    let text = String::from_utf8_lossy(&reply.body).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix("storaged_log_compacted_segments_total "))
        .and_then(|v| v.trim().parse().ok())
}

struct Run {
    acked: BTreeMap<&'static str, Vec<u8>>,
    in_flight: Option<Op>,
    at: Option<usize>,
    crashed: bool,
}

/// Runs the script on a copy of the template under strace, killed at the `k`-th `syscall`.
async fn run_until_killed(root: &Path, data: &Path, syscall: &str, k: usize) -> Run {
    let mut p = storaged(data)
        .under(strace::kill_at(syscall, k))
        .log_dir(root)
        .spawn();
    let mut run = Run {
        acked: filled(),
        in_flight: None,
        at: None,
        crashed: false,
    };
    if !p.ready_or_exited().await {
        run.crashed = true;
        return run;
    }
    let api = p.api();
    for (i, op) in script().into_iter().enumerate() {
        let done: Result<bool, ()> = match &op {
            Op::Put(key, body) => api
                .put(&format!("/v1/objects/{key}"), body.clone())
                .await
                .map(|r| r.status.is_success())
                .map_err(drop),
            Op::Delete(key) => api
                .send(
                    api.request(awc::http::Method::DELETE, &format!("/v1/objects/{key}")),
                    None,
                )
                .await
                .map(|r| r.status.is_success())
                .map_err(drop),
            Op::AwaitCompaction => {
                let deadline = Instant::now() + Duration::from_secs(60);
                loop {
                    match compacted(&api).await {
                        Some(n) if n >= 4 => break Ok(true),
                        Some(_) => {}
                        None => break Err(()),
                    }
                    assert!(
                        Instant::now() < deadline,
                        "no compaction within 60 s:\n{}",
                        p.log_text()
                    );
                    actix_web::rt::time::sleep(Duration::from_millis(20)).await;
                }
            }
        };
        match done {
            Ok(true) => match op {
                Op::Put(key, body) => {
                    run.acked.insert(key, body);
                }
                Op::Delete(key) => {
                    run.acked.remove(key);
                }
                Op::AwaitCompaction => {}
            },
            Ok(false) => panic!("{op:?} failed before any crash:\n{}", p.log_text()),
            Err(()) => {
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
async fn check(root: &Path, data: &Path, run: &Run) -> Result<(), String> {
    let p: Proc = storaged(data).log_dir(root).spawn();
    p.wait_ready().await;
    let api = p.api();
    let mut allowed: faults::crash::Allowed<'_> = run
        .acked
        .iter()
        .map(|(key, body)| (*key, vec![Some(body.clone())]))
        .collect();
    match &run.in_flight {
        Some(Op::Put(key, body)) => {
            allowed.insert(key, vec![run.acked.get(key).cloned(), Some(body.clone())]);
        }
        Some(Op::Delete(key)) => {
            allowed.insert(key, vec![run.acked.get(key).cloned(), None]);
        }
        Some(Op::AwaitCompaction) | None => {}
    }
    faults::crash::holds_only(&api, &allowed).await
}

#[actix_web::test]
async fn a_crash_anywhere_in_checkpoint_or_compaction_loses_nothing_acknowledged() {
    strace::require();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let template = template(root).await;
    let mut explored = 0;
    let mut summary = Vec::new();
    let mut ops_hit = BTreeSet::new();
    for syscall in ["pwrite64", "fdatasync", "fsync", "rename", "unlink"] {
        let mut crashes = 0;
        for k in 1.. {
            let data = root.join(format!("data-{syscall}-{k}"));
            testkit::copy_tree(&template, &data);
            let run = run_until_killed(root, &data, syscall, k).await;
            if !run.crashed {
                break;
            }
            if let Err(violation) = check(root, &data, &run).await {
                panic!("crash at {syscall} #{k}: {violation}");
            }
            crashes += 1;
            explored += 1;
            ops_hit.extend(run.at);
            assert!(k < 500, "{syscall}: the sweep does not end");
        }
        summary.push(format!("{syscall} {crashes}"));
        assert!(crashes > 0, "no {syscall} was ever crashed");
    }
    println!(
        "crash points explored in log maintenance: {explored} ({}) → 0 violations; crashed \
         inside operations {ops_hit:?} of the script's {}",
        summary.join(", "),
        script().len()
    );
    assert!(
        ops_hit.contains(&3),
        "no crash landed while the checkpoint and compaction ran"
    );
}
