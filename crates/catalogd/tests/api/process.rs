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

/// A number no earlier call returned (log files of restarted processes stay apart).
fn unique() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// A pseudo-random number below `n` (the clock's nanoseconds: enough to vary kill moments).
fn jitter(n: u64) -> u64 {
    u64::from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos(),
    ) % n
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
    storaged_on(dir, free_port())
}

fn storaged_on(dir: &tempfile::TempDir, port: u16) -> Proc {
    spawn(
        storaged_bin(),
        &[
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--data-dir".into(),
            dir.path().join("data").display().to_string(),
        ],
        &[],
        dir.path().join(format!("storaged-{port}-{}.log", unique())),
        port,
    )
}

fn catalogd(dir: &tempfile::TempDir, storaged_port: u16, timeout: &str) -> Proc {
    catalogd_on(dir, storaged_port, free_port(), timeout)
}

fn catalogd_on(dir: &tempfile::TempDir, storaged_port: u16, port: u16, timeout: &str) -> Proc {
    spawn(
        PathBuf::from(env!("CARGO_BIN_EXE_catalogd")),
        &[
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--storaged-url".into(),
            format!("http://127.0.0.1:{storaged_port}"),
        ],
        &[("CATALOGD_STORAGED_TIMEOUT", timeout)],
        dir.path().join(format!("catalogd-{port}-{}.log", unique())),
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
    let checkpoint = format!("/v1/objects/{}", manifest_codec::layout::CHECKPOINT_KEY);
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

/// Which process the storm kills.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Victim {
    Storaged,
    Catalogd,
}

/// 8 clients register continuously while `victim` is killed with SIGKILL at random moments
/// and restarted, `kills` times. Afterwards a fresh catalogd, rebuilt from storaged, holds
/// every acknowledged register at least at its acknowledged version, exactly one manifest
/// object per name, and every manifest object decodes.
async fn kill_storm(victim: Victim, kills: usize) {
    let dir = tempfile::tempdir().unwrap();
    let mut storaged = storaged(&dir);
    wait_ready(&storaged).await;
    let catalogd_port = free_port();
    let mut catalogd = catalogd_on(&dir, storaged.port, catalogd_port, "2s");
    wait_ready(&catalogd).await;

    let stop = std::rc::Rc::new(std::cell::Cell::new(false));
    // Per name: the highest acknowledged version and its object list.
    let acked = std::rc::Rc::new(std::cell::RefCell::new(std::collections::BTreeMap::<
        String,
        (i64, serde_json::Value),
    >::new()));
    let attempts = std::rc::Rc::new(std::cell::Cell::new(0_u64));
    let acks = std::rc::Rc::new(std::cell::Cell::new(0_u64));
    let clients: Vec<_> = (0..8)
        .map(|c| {
            let (stop, acked, attempts, acks) =
                (stop.clone(), acked.clone(), attempts.clone(), acks.clone());
            async move {
                let api = Api::new(catalogd_port);
                let mut seq = 0_u64;
                while !stop.get() {
                    seq += 1;
                    attempts.set(attempts.get() + 1);
                    let name = format!("storm.c{c}.n{}", seq % 3);
                    let objects = serde_json::json!([{"key": format!("lake/{name}/s{seq}"), "size": seq}]);
                    let request = serde_json::json!({"name": name, "schema_fingerprint": "fp", "objects": objects});
                    match api
                        .send(
                            api.request(awc::http::Method::POST, "/v1/datasets")
                                .insert_header(("content-type", "application/json")),
                            Some(serde_json::to_vec(&request).unwrap().into()),
                        )
                        .await
                    {
                        Ok(reply) if reply.status.is_success() => {
                            let m = reply.json()["manifest"].clone();
                            let version = m["version"].as_i64().unwrap();
                            acks.set(acks.get() + 1);
                            let mut acked = acked.borrow_mut();
                            let entry = acked.entry(name).or_insert((0, serde_json::Value::Null));
                            assert!(version > entry.0, "an acknowledged version went backwards");
                            *entry = (version, m["objects"].clone());
                        }
                        // 503s and broken connections while a process is down.
                        _ => actix_web::rt::time::sleep(Duration::from_millis(5)).await,
                    }
                }
            }
        })
        .collect();
    let killer = async {
        for _ in 0..kills {
            actix_web::rt::time::sleep(Duration::from_millis(150 + jitter(350))).await;
            match victim {
                Victim::Storaged => {
                    storaged.signal("-KILL");
                    let _ = storaged.child.wait();
                    storaged = storaged_on(&dir, storaged.port);
                    wait_ready(&storaged).await;
                }
                Victim::Catalogd => {
                    catalogd.signal("-KILL");
                    let _ = catalogd.child.wait();
                    catalogd = catalogd_on(&dir, storaged.port, catalogd_port, "2s");
                    wait_ready(&catalogd).await;
                }
            }
        }
        actix_web::rt::time::sleep(Duration::from_millis(300)).await;
        stop.set(true);
    };
    futures_util::future::join(killer, futures_util::future::join_all(clients)).await;
    drop(catalogd);

    let acked = acked.borrow().clone();
    assert!(
        acked.len() >= 12,
        "too little was acknowledged to prove anything: {acked:?}"
    );
    check_nothing_lost(&dir, &storaged, &acked).await;
    println!(
        "kill -9 {victim:?} x{kills}: {} register attempts, {} acknowledged over {} names (highest version {:?}), 0 lost, 0 torn",
        attempts.get(),
        acks.get(),
        acked.len(),
        acked.values().map(|(v, _)| *v).max()
    );
}

/// A fresh catalogd rebuilt from storaged holds every acknowledged register at least at
/// its acknowledged version (with its objects when the version is the same); storaged
/// holds exactly one manifest object per name, and each decodes.
async fn check_nothing_lost(
    dir: &tempfile::TempDir,
    storaged: &Proc,
    acked: &std::collections::BTreeMap<String, (i64, serde_json::Value)>,
) {
    let fresh = catalogd_again(dir, storaged).await;
    let api = fresh.api();
    for (name, (version, objects)) in acked {
        let got = api.get_ok(&format!("/v1/datasets/{name}")).await;
        assert_eq!(
            got.status.as_u16(),
            200,
            "{name} was acknowledged and is lost"
        );
        let got = got.json();
        let stored = got["version"].as_i64().unwrap();
        assert!(
            stored >= *version,
            "{name}: acknowledged v{version}, stored v{stored}"
        );
        if stored == *version {
            assert_eq!(
                &got["objects"], objects,
                "{name}: acknowledged v{version} differs"
            );
        }
    }
    let listing = storaged
        .api()
        .get_ok("/v1/objects?prefix=_catalog/manifests/&limit=10000")
        .await
        .json();
    let keys: Vec<&str> = listing["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["key"].as_str().unwrap())
        .collect();
    for name in acked.keys() {
        let key = format!("_catalog/manifests/{name}.parquet");
        assert_eq!(keys.iter().filter(|k| **k == key).count(), 1, "{key}");
        let bytes = storaged
            .api()
            .get_ok(&format!("/v1/objects/{key}"))
            .await
            .body;
        manifest_codec::decode(&bytes).unwrap_or_else(|e| panic!("{key} is torn: {e}"));
    }
}

/// 5 kills in `make test`, 20 in `make chaos` (which sets `CHAOS`).
fn kills() -> usize {
    if std::env::var("CHAOS").is_ok_and(|v| !v.is_empty() && v != "0") {
        20
    } else {
        5
    }
}

#[actix_web::test]
async fn kill_9_storaged_storm_loses_no_acknowledged_register() {
    kill_storm(Victim::Storaged, kills()).await;
}

#[actix_web::test]
async fn kill_9_catalogd_storm_loses_no_acknowledged_register() {
    kill_storm(Victim::Catalogd, kills()).await;
}
