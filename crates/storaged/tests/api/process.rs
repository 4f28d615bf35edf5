//! The real binary: configuration errors, graceful shutdown, fsync failure (injected with
//! strace). A full disk and ENOSPC are in the fault suite (`faults/tests/disk_faults.rs`).

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::{client, temp_files};

const BIN: &str = env!("CARGO_BIN_EXE_storaged");

/// A running storaged process (possibly under strace) in a process group of its own; the
/// whole group is killed on drop, since a killed strace leaves its tracee running.
struct Proc {
    child: Child,
    port: u16,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `command` (storaged, possibly wrapped) and waits for its "listening" log line.
fn start(mut command: Command) -> Proc {
    let mut child = command
        .process_group(0)
        .env("STORAGED_LOG_FORMAT", "json")
        .env("STORAGED_LISTEN", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("storaged starts");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(json) = serde_json::from_str::<serde_json::Value>(&line) {
                if json["message"] == "listening" {
                    let _ = tx.send(json["port"].as_u64().unwrap());
                }
            }
        }
    });
    let port = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("storaged logs its port");
    Proc {
        child,
        port: u16::try_from(port).unwrap(),
    }
}

fn storaged(data_dir: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.arg("--data-dir").arg(data_dir);
    c
}

fn sigterm(child: &Child) {
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "process did not exit in {within:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

async fn put(port: u16, key: &str, body: &'static str) -> u16 {
    let mut res = client()
        .put(format!("http://127.0.0.1:{port}/v1/objects/{key}"))
        .send_body(body)
        .await
        .unwrap();
    let _ = res.body().await;
    res.status().as_u16()
}

async fn get(port: u16, key: &str) -> (u16, Vec<u8>) {
    let mut res = client()
        .get(format!("http://127.0.0.1:{port}/v1/objects/{key}"))
        .send()
        .await
        .unwrap();
    let body = res.body().await.unwrap().to_vec();
    (res.status().as_u16(), body)
}

#[test]
fn unknown_keys_and_bad_values_exit_non_zero_naming_the_key() {
    for (var, value, needle) in [
        ("STORAGED_NO_SUCH_KEY", "1", "no_such_key"),
        ("STORAGED_FSYNC", "perhaps", "fsync"),
        ("STORAGED_LISTEN", "not-an-address", "listen"),
    ] {
        let out = Command::new(BIN).env(var, value).output().unwrap();
        assert!(!out.status.success(), "{var}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(needle), "{var}: {stderr}");
    }
}

#[actix_web::test]
async fn sigterm_drains_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let mut proc = start(storaged(dir.path()));
    assert_eq!(put(proc.port, "x", "y").await, 201);
    sigterm(&proc.child);
    let status = wait_exit(&mut proc.child, Duration::from_secs(15));
    assert!(status.success(), "{status:?}");
}

#[actix_web::test]
async fn a_failed_fsync_is_an_error_and_the_old_object_stays() {
    let strace = Command::new("strace").arg("-V").output();
    assert!(
        strace.is_ok_and(|o| o.status.success()),
        "this test needs strace (apt-get install strace; .ci/run installs it)"
    );
    let dir = tempfile::tempdir().unwrap();
    let proc = start(storaged(dir.path()));
    assert_eq!(put(proc.port, "f/obj", "version one").await, 201);
    // From now on every fsync fails (strace attached to the running process: start-up
    // fsyncs the data directory and would fail first).
    let _strace = Proc {
        child: Command::new("strace")
            .args([
                "-f",
                "-qq",
                "-o",
                "/dev/null",
                "-e",
                "trace=fsync,fdatasync",
            ])
            .args(["-e", "inject=fsync,fdatasync:error=EIO", "-p"])
            .arg(proc.child.id().to_string())
            .process_group(0)
            .spawn()
            .unwrap(),
        port: 0,
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while put(proc.port, "probe/attached", "x").await != 500 {
        assert!(Instant::now() < deadline, "strace did not attach");
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    let mut res = client()
        .put(format!("http://127.0.0.1:{}/v1/objects/f/obj", proc.port))
        .send_body("version two")
        .await
        .unwrap();
    assert_eq!(res.status(), 500);
    let body: serde_json::Value = serde_json::from_slice(&res.body().await.unwrap()).unwrap();
    assert_eq!(body["error"], "internal");
    assert!(
        !body["message"].as_str().unwrap().contains("EIO"),
        "internals leaked"
    );
    assert_eq!(
        get(proc.port, "f/obj").await,
        (200, b"version one".to_vec())
    );
    assert_eq!(put(proc.port, "f/new", "z").await, 500);
    assert_eq!(get(proc.port, "f/new").await.0, 404);
    assert_eq!(temp_files(dir.path()), 0);
}
