//! Disk faults under the real storaged: ENOSPC injected into its writes to temporary files
//! (strace attached to the running process), and a real full file system (a small tmpfs).
//! A write that cannot be stored is 507, never 2xx; the old object, the listing and every
//! file stay as they were; reads go on; writes are accepted again once space is back.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use faults::strace;
use testkit::lake::objects;
use testkit::{free_port, unique, Api, Launch, Proc};

/// Every file and directory under `root`, with file sizes (directories: `None`).
fn tree(root: &Path) -> BTreeMap<String, Option<u64>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            let name = path.strip_prefix(root).unwrap().display().to_string();
            if entry.file_type().unwrap().is_dir() {
                out.insert(name, None);
                stack.push(path);
            } else {
                out.insert(name, Some(entry.metadata().unwrap().len()));
            }
        }
    }
    out
}

async fn put(api: &Api, key: &str, body: Vec<u8>) -> u16 {
    api.put(&format!("/v1/objects/{key}"), body)
        .await
        .map_or(0, |r| r.code())
}

async fn get(api: &Api, key: &str) -> (u16, Vec<u8>) {
    let r = api.get_ok(&format!("/v1/objects/{key}")).await;
    (r.code(), r.body.to_vec())
}

#[actix_web::test]
async fn enospc_on_write_is_507_and_changes_nothing_then_writes_resume() {
    strace::require();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().canonicalize().unwrap().join("data");
    // The file path: every object a file (the write log has its own test below).
    let mut storaged = Launch::storaged(&data, free_port())
        .env("STORAGED_LOG_MAX_OBJECT_SIZE", "0")
        .log_dir(dir.path())
        .spawn();
    storaged.wait_ready().await;
    let api = storaged.api();
    assert_eq!(put(&api, "k/a", b"version one".to_vec()).await, 201);
    assert_eq!(put(&api, "k/n/other", vec![5; 300 * 1024]).await, 201);
    let listing = objects(&api, "").await;
    let files = tree(&data);

    // ENOSPC on every write to storaged's next temporary files (their names are
    // `<pid>-<n>.tmp`, n counting uploads from 0).
    let pid = storaged.pid();
    let mut attach = Command::new("strace");
    attach.args([
        "-f",
        "-qq",
        "-o",
        "/dev/null",
        "-e",
        "trace=write,pwrite64,writev",
    ]);
    attach.args(["-e", "inject=write,pwrite64,writev:error=ENOSPC"]);
    for n in 0..64 {
        attach
            .arg("-P")
            .arg(data.join(format!("tmp/{pid}-{n}.tmp")));
    }
    attach.arg("-p").arg(pid.to_string());
    let mut tracer = Proc::spawn(
        attach,
        0,
        dir.path().join(format!("strace-{}.log", unique())),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while put(&api, "probe", b"p".to_vec()).await != 507 {
        assert!(Instant::now() < deadline, "strace did not attach");
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = api
        .send(
            api.request(awc::http::Method::DELETE, "/v1/objects/probe"),
            None,
        )
        .await;
    assert_eq!(objects(&api, "").await, listing, "a probe was stored");

    for (key, body) in [
        ("k/a", b"version two".to_vec()),
        ("k/a", vec![1; 600 * 1024]),
        ("k/new/deep/key", b"new".to_vec()),
    ] {
        let reply = api.put(&format!("/v1/objects/{key}"), body).await.unwrap();
        assert_eq!(reply.code(), 507, "{key}");
        assert_eq!(reply.json()["error"], "insufficient_storage");
    }
    assert_eq!(get(&api, "k/a").await, (200, b"version one".to_vec()));
    assert_eq!(get(&api, "k/n/other").await, (200, vec![5; 300 * 1024]));
    assert_eq!(get(&api, "k/new/deep/key").await.0, 404);
    assert_eq!(objects(&api, "").await, listing);
    assert_eq!(tree(&data), files, "files changed under the data directory");

    tracer.kill(); // strace detaches: space is back
    assert_eq!(put(&api, "k/a", b"version three".to_vec()).await, 200);
    assert_eq!(get(&api, "k/a").await, (200, b"version three".to_vec()));
    assert_eq!(put(&api, "k/new/deep/key", b"new".to_vec()).await, 201);
    storaged.kill();
}

/// A tmpfs of `size`, unmounted on drop.
struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    fn mount(size: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("mount runs");
        assert!(
            status.success(),
            "mounting a tmpfs failed: the disk-full test needs root (CI runs as root)"
        );
        Self(dir)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.path()).status();
    }
}

#[actix_web::test]
async fn a_full_file_system_is_507_reads_go_on_and_freed_space_takes_writes() {
    let fs = Tmpfs::mount("4m");
    let logs = tempfile::tempdir().unwrap();
    let data = fs.0.path().join("data");
    // The file path: a 4 MiB file system has no room for a log segment.
    let mut storaged = Launch::storaged(&data, free_port())
        .env("STORAGED_LOG_MAX_OBJECT_SIZE", "0")
        .log_dir(logs.path())
        .spawn();
    storaged.wait_ready().await;
    let api = storaged.api();
    assert_eq!(put(&api, "keep", b"kept".to_vec()).await, 201);

    let chunk = 512 * 1024;
    let mut stored = 0;
    let status = loop {
        let status = put(&api, &format!("fill/{stored}"), vec![7; chunk]).await;
        if status != 201 {
            break status;
        }
        stored += 1;
        assert!(stored < 20, "a 4 MiB file system took {stored} × 512 KiB");
    };
    assert_eq!(status, 507, "a write that does not fit");
    let reply = api
        .put(&format!("/v1/objects/fill/{stored}"), vec![7; chunk])
        .await
        .unwrap();
    assert_eq!(reply.json()["error"], "insufficient_storage");
    let message = reply.json()["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(!message.contains("os error"), "internals leaked: {message}");
    assert!(stored >= 2, "{stored}");
    let listing = objects(&api, "").await;
    let files = tree(&data);
    assert!(
        !files.keys().any(|f| f.starts_with("tmp/")),
        "temporary files left: {files:?}"
    );
    // Overwrites that do not fit change nothing; reads go on.
    assert_eq!(put(&api, "keep", vec![1; 2 * chunk]).await, 507);
    assert_eq!(get(&api, "keep").await, (200, b"kept".to_vec()));
    for i in 0..stored {
        assert_eq!(get(&api, &format!("fill/{i}")).await, (200, vec![7; chunk]));
    }
    assert_eq!(objects(&api, "").await, listing);
    assert_eq!(tree(&data), files);

    // Space freed: writes are accepted again.
    for i in 0..2 {
        let reply = api
            .send(
                api.request(awc::http::Method::DELETE, &format!("/v1/objects/fill/{i}")),
                None,
            )
            .await
            .unwrap();
        assert_eq!(reply.code(), 204);
    }
    assert_eq!(put(&api, "keep", vec![2; chunk]).await, 200);
    assert_eq!(get(&api, "keep").await, (200, vec![2; chunk]));
    storaged.kill();
    drop(storaged);
}

/// With the write log on (ADR 0017), a full disk does not stop small writes while the
/// preallocated segment has room; making the next segment fails with 507 and changes
/// nothing; once space is freed the log rolls and takes writes; a restart keeps it all.
#[actix_web::test]
async fn with_the_write_log_a_full_disk_is_507_only_when_a_new_segment_cannot_be_made() {
    let fs = Tmpfs::mount("20m");
    let logs = tempfile::tempdir().unwrap();
    let data = fs.0.path().join("data");
    let launch = || {
        Launch::storaged(&data, free_port())
            .env("STORAGED_LOG_MAX_OBJECT_SIZE", "256 KiB")
            .env("STORAGED_LOG_SEGMENT_SIZE", "8 MiB")
            .log_dir(logs.path())
    };
    let mut storaged = launch().spawn();
    storaged.wait_ready().await;
    let api = storaged.api();

    // Fill what the first segment left with large objects (files).
    let big = 1024 * 1024;
    let mut files = 0;
    while put(&api, &format!("big/{files}"), vec![9; big]).await == 201 {
        files += 1;
        assert!(
            files < 20,
            "a 20 MiB file system took {files} MiB beside the segment"
        );
    }
    assert!(files >= 2, "{files}");
    // Small objects still go into the preallocated segment.
    let small = 200 * 1024;
    let mut records = 0;
    let status = loop {
        let status = put(&api, &format!("small/{records}"), vec![3; small]).await;
        if status != 201 {
            break status;
        }
        records += 1;
        assert!(records < 60, "an 8 MiB segment took {records} × 200 KiB");
    };
    assert!(
        records >= 30,
        "only {records} records fitted in the segment"
    );
    assert_eq!(
        status, 507,
        "the segment is full and no new one can be made"
    );
    let reply = api
        .put(&format!("/v1/objects/small/{records}"), vec![3; small])
        .await
        .unwrap();
    assert_eq!(reply.json()["error"], "insufficient_storage");
    assert_eq!(get(&api, &format!("small/{records}")).await.0, 404);
    let log_files = tree(&data.join("log"));
    assert!(
        log_files.keys().all(|f| !f.contains(".seg.tmp")),
        "a failed segment left {log_files:?}"
    );
    for i in 0..records {
        assert_eq!(
            get(&api, &format!("small/{i}")).await,
            (200, vec![3; small])
        );
    }

    // Space freed: the log makes its next segment and takes writes again.
    for i in 0..files {
        let reply = api
            .send(
                api.request(awc::http::Method::DELETE, &format!("/v1/objects/big/{i}")),
                None,
            )
            .await
            .unwrap();
        assert_eq!(reply.code(), 204);
    }
    assert_eq!(put(&api, "small/after", vec![4; small]).await, 201);

    storaged.kill();
    let storaged = launch().spawn();
    storaged.wait_ready().await;
    let api = storaged.api();
    for i in 0..records {
        assert_eq!(
            get(&api, &format!("small/{i}")).await,
            (200, vec![3; small])
        );
    }
    assert_eq!(get(&api, "small/after").await, (200, vec![4; small]));
    assert_eq!(get(&api, "big/0").await.0, 404);
}
