//! storaged's real binary: configuration errors, graceful shutdown, fsync failure (injected
//! with strace). A full disk and ENOSPC are in `disk_faults.rs`.

use std::process::Command;
use std::time::{Duration, Instant};

use faults::strace;
use testkit::{free_port, storaged_bin, Api, Launch, Proc};

/// Files in the data directory's temporary area.
fn temp_files(data_dir: &std::path::Path) -> usize {
    std::fs::read_dir(data_dir.join("tmp")).map_or(0, Iterator::count)
}

async fn started(dir: &tempfile::TempDir) -> Proc {
    let proc = Launch::storaged(&dir.path().join("data"), free_port())
        .log_dir(dir.path())
        .spawn();
    proc.wait_ready().await;
    proc
}

async fn put(api: &Api, key: &str, body: &'static str) -> u16 {
    api.put(&format!("/v1/objects/{key}"), body)
        .await
        .unwrap()
        .code()
}

async fn get(api: &Api, key: &str) -> (u16, Vec<u8>) {
    let reply = api.get_ok(&format!("/v1/objects/{key}")).await;
    (reply.code(), reply.body.to_vec())
}

#[test]
fn unknown_keys_and_bad_values_exit_non_zero_naming_the_key() {
    for (var, value, needle) in [
        ("STORAGED_NO_SUCH_KEY", "1", "no_such_key"),
        ("STORAGED_FSYNC", "perhaps", "fsync"),
        ("STORAGED_LISTEN", "not-an-address", "listen"),
    ] {
        let out = Command::new(storaged_bin())
            .env(var, value)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{var}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(needle), "{var}: {stderr}");
    }
}

#[actix_web::test]
async fn sigterm_drains_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let mut proc = started(&dir).await;
    assert_eq!(put(&proc.api(), "x", "y").await, 201);
    let status = proc.stop(Duration::from_secs(15));
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
}

#[actix_web::test]
async fn a_failed_fsync_is_an_error_and_the_old_object_stays() {
    strace::require();
    let dir = tempfile::tempdir().unwrap();
    // The file path (the write log's failed sync has its own test below).
    let proc = Launch::storaged(&dir.path().join("data"), free_port())
        .env("STORAGED_LOG_MAX_OBJECT_SIZE", "0")
        .log_dir(dir.path())
        .spawn();
    proc.wait_ready().await;
    let api = proc.api();
    assert_eq!(put(&api, "f/obj", "version one").await, 201);
    // From now on every fsync fails (strace attached to the running process: start-up
    // fsyncs the data directory and would fail first).
    let mut attach = Command::new("strace");
    attach
        .args([
            "-f",
            "-qq",
            "-o",
            "/dev/null",
            "-e",
            "trace=fsync,fdatasync",
        ])
        .args(["-e", "inject=fsync,fdatasync:error=EIO", "-p"])
        .arg(proc.pid().to_string());
    let _strace = Proc::spawn(attach, 0, dir.path().join("strace.log"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while put(&api, "probe/attached", "x").await != 500 {
        assert!(Instant::now() < deadline, "strace did not attach");
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    let reply = api.put("/v1/objects/f/obj", "version two").await.unwrap();
    assert_eq!(reply.code(), 500);
    assert_eq!(reply.json()["error"], "internal");
    assert!(
        !reply.json()["message"].as_str().unwrap().contains("EIO"),
        "internals leaked"
    );
    assert_eq!(get(&api, "f/obj").await, (200, b"version one".to_vec()));
    assert_eq!(put(&api, "f/new", "z").await, 500);
    assert_eq!(get(&api, "f/new").await.0, 404);
    assert_eq!(temp_files(&dir.path().join("data")), 0);
}

/// The write log's fsyncgate rule (ADR 0017): after a failed `fdatasync` the log takes no
/// more writes — even once the disk works again — until a restart replays what is on
/// disk; acknowledged objects stay readable throughout.
#[actix_web::test]
async fn a_failed_log_sync_stops_writes_until_a_restart() {
    strace::require();
    let dir = tempfile::tempdir().unwrap();
    let mut proc = Launch::storaged(&dir.path().join("data"), free_port())
        .env("STORAGED_LOG_MAX_OBJECT_SIZE", "256 KiB")
        .log_dir(dir.path())
        .spawn();
    proc.wait_ready().await;
    let api = proc.api();
    assert_eq!(put(&api, "kept/obj", "acknowledged").await, 201);
    let mut attach = Command::new("strace");
    attach
        .args(["-f", "-qq", "-o", "/dev/null", "-e", "trace=fdatasync"])
        .args(["-e", "inject=fdatasync:error=EIO", "-p"])
        .arg(proc.pid().to_string());
    let strace = Proc::spawn(attach, 0, dir.path().join("strace.log"));
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut i = 0;
    loop {
        i += 1;
        match put(&api, &format!("probe/{i}"), "x").await {
            201 => {}
            503 => break,
            other => panic!("a failed log sync answered {other}"),
        }
        assert!(Instant::now() < deadline, "strace did not attach");
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    drop(strace);
    actix_web::rt::time::sleep(Duration::from_millis(200)).await;
    // The disk works again; the log does not trust it.
    let reply = api.put("/v1/objects/after/obj", "no").await.unwrap();
    assert_eq!(reply.code(), 503, "{:?}", reply.json());
    assert_eq!(reply.header("retry-after"), Some("1"));
    assert_eq!(api.get_ok("/readyz").await.code(), 503);
    assert_eq!(get(&api, "kept/obj").await, (200, b"acknowledged".to_vec()));

    proc.restart();
    proc.wait_ready().await;
    let api = proc.api();
    assert_eq!(get(&api, "kept/obj").await, (200, b"acknowledged".to_vec()));
    assert_eq!(get(&api, "after/obj").await.0, 404);
    assert_eq!(put(&api, "after/obj", "yes").await, 201);
    assert_eq!(get(&api, "after/obj").await, (200, b"yes".to_vec()));
}
