//! The real binaries, as child processes: a frozen storaged, two catalogd processes on
//! one storaged, a corrupt manifest at start-up, SIGTERM.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use futures_util::StreamExt;

use crate::helpers::{body, Api};

/// storaged's binary, built next to catalogd's (a test cannot use another package's
/// `CARGO_BIN_EXE_*`, so build it if this run did not).
fn storaged_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let status = Command::new(option_env!("CARGO").unwrap_or("cargo"))
            .args(["build", "--quiet", "-p", "storaged", "--bin", "storaged"])
            .status()
            .expect("running cargo build");
        assert!(status.success(), "building storaged failed");
        PathBuf::from(env!("CARGO_BIN_EXE_catalogd")).with_file_name("storaged")
    })
    .clone()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process killed on drop.
struct Proc {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig} failed");
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn api(&self) -> Api {
        Api::new(self.port)
    }
}

fn spawn(bin: PathBuf, args: &[String], env: &[(&str, &str)], log: PathBuf, port: u16) -> Proc {
    let out = std::fs::File::create(&log).unwrap();
    let child = Command::new(bin)
        .args(args)
        .envs(env.iter().copied())
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    Proc { child, port, log }
}

fn storaged(dir: &tempfile::TempDir) -> Proc {
    let port = free_port();
    spawn(
        storaged_bin(),
        &[
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--data-dir".into(),
            dir.path().join("data").display().to_string(),
        ],
        &[],
        dir.path().join(format!("storaged-{port}.log")),
        port,
    )
}

fn catalogd(dir: &tempfile::TempDir, storaged_port: u16, timeout: &str) -> Proc {
    let port = free_port();
    spawn(
        PathBuf::from(env!("CARGO_BIN_EXE_catalogd")),
        &[
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--storaged-url".into(),
            format!("http://127.0.0.1:{storaged_port}"),
        ],
        &[("CATALOGD_STORAGED_TIMEOUT", timeout)],
        dir.path().join(format!("catalogd-{port}.log")),
        port,
    )
}

async fn wait_ready(p: &Proc) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = p.api().get("/readyz").await {
            if r.status.as_u16() == 200 {
                return;
            }
        }
        assert!(Instant::now() < deadline, "not ready; log:\n{}", p.log());
        actix_web::rt::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn stored_version(storaged: &Proc, name: &str) -> i64 {
    let reply = storaged
        .api()
        .get_ok(&format!("/v1/objects/_catalog/manifests/{name}.parquet"))
        .await;
    assert_eq!(reply.status.as_u16(), 200);
    manifest_codec::decode(&reply.body).unwrap().version
}

#[actix_web::test]
async fn a_frozen_storaged_gives_a_timely_503_and_no_split_brain() {
    let dir = tempfile::tempdir().unwrap();
    let storaged = storaged(&dir);
    let catalogd = catalogd(&dir, storaged.port, "1s");
    wait_ready(&storaged).await;
    wait_ready(&catalogd).await;
    let api = catalogd.api();
    assert_eq!(
        api.register(&body("frozen", "fp", 1)).await.status.as_u16(),
        201
    );
    let before = api.get_ok("/v1/datasets/frozen").await.json();

    storaged.signal("-STOP");
    for name in ["frozen", "brand-new"] {
        let started = Instant::now();
        let reply = api.register(&body(name, "fp", 2)).await;
        let took = started.elapsed();
        reply.assert_error(503, "storage_unavailable");
        assert_eq!(reply.header("retry-after"), Some("1"));
        assert!(
            took <= Duration::from_secs(2),
            "503 took {took:?}, deadline 1 s"
        );
    }
    // Reads are served from memory meanwhile, unchanged.
    assert_eq!(api.get_ok("/v1/datasets/frozen").await.json(), before);
    api.get_ok("/v1/datasets/brand-new")
        .await
        .assert_error(404, "not_found");
    storaged.signal("-CONT");

    // The frozen writes may land once storaged runs again; catalogd re-reads before
    // trusting memory, so the next register continues from what is stored.
    actix_web::rt::time::sleep(Duration::from_millis(300)).await;
    let reply = api.register(&body("frozen", "fp", 3)).await;
    assert_eq!(reply.status.as_u16(), 200, "{:?}", reply.json());
    let version = reply.json()["manifest"]["version"].as_i64().unwrap();
    assert_eq!(version, stored_version(&storaged, "frozen").await);
    assert!(version == 2 || version == 3, "{version}");
    let reply = api.register(&body("brand-new", "fp", 3)).await;
    let status = reply.status.as_u16();
    assert!(status == 200 || status == 201, "{status}");
    assert_eq!(
        reply.json()["manifest"]["version"].as_i64().unwrap(),
        stored_version(&storaged, "brand-new").await
    );
    // A restarted catalogd sees exactly what the running one serves.
    let fresh = catalogd_again(&dir, &storaged).await;
    for name in ["frozen", "brand-new"] {
        assert_eq!(
            fresh
                .api()
                .get_ok(&format!("/v1/datasets/{name}"))
                .await
                .json(),
            api.get_ok(&format!("/v1/datasets/{name}")).await.json()
        );
    }
}

async fn catalogd_again(dir: &tempfile::TempDir, storaged: &Proc) -> Proc {
    let p = catalogd(dir, storaged.port, "5s");
    wait_ready(&p).await;
    p
}

#[actix_web::test]
async fn two_catalogd_processes_on_one_storaged_never_double_create_or_lose_an_update() {
    const NAMES: usize = 6;
    const TASKS_PER_PROCESS: usize = 4;
    const REGISTERS_PER_TASK: usize = 5;
    let dir = tempfile::tempdir().unwrap();
    let storaged = storaged(&dir);
    let a = catalogd(&dir, storaged.port, "5s");
    let b = catalogd(&dir, storaged.port, "5s");
    wait_ready(&storaged).await;
    wait_ready(&a).await;
    wait_ready(&b).await;

    let jobs: Vec<(Api, usize)> = [a.api(), b.api()]
        .into_iter()
        .flat_map(|api| (0..NAMES * TASKS_PER_PROCESS).map(move |i| (api.clone(), i % NAMES)))
        .collect();
    let results: Vec<(usize, u16, i64)> = futures_util::stream::iter(jobs)
        .map(|(api, n)| async move {
            let mut out = Vec::new();
            for _ in 0..REGISTERS_PER_TASK {
                let reply = api.register(&body(&format!("shared.n{n}"), "fp", 1)).await;
                let status = reply.status.as_u16();
                let version = reply.json()["manifest"]["version"].as_i64().unwrap_or(-1);
                out.push((n, status, version));
            }
            out
        })
        .buffer_unordered(64)
        .flat_map(futures_util::stream::iter)
        .collect()
        .await;

    let per_name = 2 * TASKS_PER_PROCESS * REGISTERS_PER_TASK;
    for n in 0..NAMES {
        let mine: Vec<_> = results.iter().filter(|r| r.0 == n).collect();
        assert!(mine.iter().all(|r| r.1 == 200 || r.1 == 201), "{mine:?}");
        assert_eq!(mine.iter().filter(|r| r.1 == 201).count(), 1, "{mine:?}");
        let mut versions: Vec<i64> = mine.iter().map(|r| r.2).collect();
        versions.sort_unstable();
        let expected: Vec<i64> = (1..=i64::try_from(per_name).unwrap()).collect();
        assert_eq!(versions, expected, "name {n}: duplicate or lost versions");
        assert_eq!(
            stored_version(&storaged, &format!("shared.n{n}")).await,
            i64::try_from(per_name).unwrap()
        );
    }
    let keys = storaged
        .api()
        .get_ok("/v1/objects?prefix=_catalog%2F")
        .await
        .json()["objects"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(keys, NAMES);
}

#[actix_web::test]
async fn a_corrupt_manifest_makes_the_binary_exit_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let storaged = storaged(&dir);
    wait_ready(&storaged).await;
    let api = storaged.api();
    let reply = api
        .send(
            api.request(
                awc::http::Method::PUT,
                "/v1/objects/_catalog/manifests/broken.parquet",
            ),
            Some(bytes::Bytes::from_static(b"not parquet")),
        )
        .await
        .unwrap();
    assert!(reply.status.is_success());
    let mut catalogd = catalogd(&dir, storaged.port, "5s");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = catalogd.child.try_wait().unwrap() {
            break status;
        }
        let ready = catalogd
            .api()
            .get("/readyz")
            .await
            .map(|r| r.status.as_u16());
        assert_ne!(ready, Ok(200), "became ready over a corrupt manifest");
        assert!(Instant::now() < deadline, "catalogd kept running");
        actix_web::rt::time::sleep(Duration::from_millis(25)).await;
    };
    assert!(!status.success());
    let log = catalogd.log();
    assert!(log.contains("_catalog/manifests/broken.parquet"), "{log}");
}

#[actix_web::test]
async fn sigterm_drains_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let storaged = storaged(&dir);
    let mut catalogd = catalogd(&dir, storaged.port, "5s");
    wait_ready(&storaged).await;
    wait_ready(&catalogd).await;
    // Registers that no periodic checkpoint has seen (the interval is 60 s): shutdown
    // writes one, so the next start reads one file.
    for i in 0..5 {
        let reply = catalogd
            .api()
            .register(&crate::helpers::body(&format!("term.d{i}"), "fp", 2))
            .await;
        assert_eq!(reply.status.as_u16(), 201);
    }
    let checkpoint = format!("/v1/objects/{}", catalogd::store::CHECKPOINT_KEY);
    assert_eq!(
        storaged.api().get_ok(&checkpoint).await.status.as_u16(),
        404
    );
    catalogd.signal("-TERM");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = catalogd.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "catalogd ignored SIGTERM");
        actix_web::rt::time::sleep(Duration::from_millis(25)).await;
    };
    assert!(status.success(), "{status:?}\n{}", catalogd.log());
    let stored = storaged.api().get_ok(&checkpoint).await;
    assert_eq!(stored.status.as_u16(), 200, "no checkpoint at shutdown");
    assert_eq!(
        manifest_codec::decode_checkpoint(&stored.body)
            .unwrap()
            .len(),
        5
    );
}
