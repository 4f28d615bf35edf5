//! catalogd's real binary with a real storaged: a frozen storaged, two catalogd processes
//! on one storaged, a corrupt manifest at start-up, SIGTERM, kill -9 storms.

use std::time::{Duration, Instant};

use faults::storm::{jitter, kill_storm, Victim};
use futures_util::StreamExt;
use manifest_codec::layout::{CATALOG_PREFIX, CHECKPOINT_KEY, MANIFEST_PREFIX};
use testkit::lake::{manifest_key_of, register_body, stored_version};
use testkit::{free_port, Api, Launch, Proc};

/// A register body for `name` with `n` objects.
fn body(name: &str, fingerprint: &str, n: usize) -> serde_json::Value {
    register_body(name, fingerprint, n, "part")
}

/// storaged on a free port with its data in `dir/data`.
fn storaged(dir: &tempfile::TempDir) -> Proc {
    Launch::storaged(&dir.path().join("data"), free_port())
        .log_dir(dir.path())
        .spawn()
}

/// How to start catalogd on `port` against `storaged` with a storaged deadline of `timeout`.
fn catalogd_launch(dir: &tempfile::TempDir, storaged: &Proc, port: u16, timeout: &str) -> Launch {
    Launch::catalogd(&storaged.url(), port)
        .env("CATALOGD_STORAGED_TIMEOUT", timeout)
        .log_dir(dir.path())
}

fn catalogd(dir: &tempfile::TempDir, storaged: &Proc, timeout: &str) -> Proc {
    catalogd_launch(dir, storaged, free_port(), timeout).spawn()
}

#[actix_web::test]
async fn a_frozen_storaged_gives_a_timely_503_and_no_split_brain() {
    let dir = tempfile::tempdir().unwrap();
    let storaged = storaged(&dir);
    let catalogd = catalogd(&dir, &storaged, "1s");
    storaged.wait_ready().await;
    catalogd.wait_ready().await;
    let api = catalogd.api();
    assert_eq!(
        api.register_ok(&body("frozen", "fp", 1))
            .await
            .status
            .as_u16(),
        201
    );
    let before = api.get_ok("/v1/datasets/frozen").await.json();

    storaged.signal("-STOP");
    for name in ["frozen", "brand-new"] {
        let started = Instant::now();
        let reply = api.register_ok(&body(name, "fp", 2)).await;
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
    let reply = api.register_ok(&body("frozen", "fp", 3)).await;
    assert_eq!(reply.status.as_u16(), 200, "{:?}", reply.json());
    let version = reply.json()["manifest"]["version"].as_i64().unwrap();
    assert_eq!(version, stored_version(&storaged.api(), "frozen").await);
    assert!(version == 2 || version == 3, "{version}");
    let reply = api.register_ok(&body("brand-new", "fp", 3)).await;
    let status = reply.status.as_u16();
    assert!(status == 200 || status == 201, "{status}");
    assert_eq!(
        reply.json()["manifest"]["version"].as_i64().unwrap(),
        stored_version(&storaged.api(), "brand-new").await
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
    let p = catalogd(dir, storaged, "5s");
    p.wait_ready().await;
    p
}

#[actix_web::test]
async fn two_catalogd_processes_on_one_storaged_never_double_create_or_lose_an_update() {
    const NAMES: usize = 6;
    const TASKS_PER_PROCESS: usize = 4;
    const REGISTERS_PER_TASK: usize = 5;
    let dir = tempfile::tempdir().unwrap();
    let storaged = storaged(&dir);
    let a = catalogd(&dir, &storaged, "5s");
    let b = catalogd(&dir, &storaged, "5s");
    storaged.wait_ready().await;
    a.wait_ready().await;
    b.wait_ready().await;

    let jobs: Vec<(Api, usize)> = [a.api(), b.api()]
        .into_iter()
        .flat_map(|api| (0..NAMES * TASKS_PER_PROCESS).map(move |i| (api.clone(), i % NAMES)))
        .collect();
    let results: Vec<(usize, u16, i64)> = futures_util::stream::iter(jobs)
        .map(|(api, n)| async move {
            let mut out = Vec::new();
            for _ in 0..REGISTERS_PER_TASK {
                let reply = api
                    .register_ok(&body(&format!("shared.n{n}"), "fp", 1))
                    .await;
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
            stored_version(&storaged.api(), &format!("shared.n{n}")).await,
            i64::try_from(per_name).unwrap()
        );
    }
    // One head per name, and every earlier version kept exactly once.
    let listing = storaged
        .api()
        .get_ok(&format!("/v1/objects?prefix={CATALOG_PREFIX}&limit=1000"))
        .await
        .json();
    let mut keys: Vec<String> = listing["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["key"].as_str().unwrap().to_owned())
        .filter(|k| !k.starts_with("_catalog/checkpoint/"))
        .collect();
    keys.sort();
    let mut expected: Vec<String> = (0..NAMES)
        .flat_map(|n| {
            let name = format!("shared.n{n}");
            std::iter::once(manifest_key_of(&name)).chain(
                (1..i64::try_from(per_name).unwrap())
                    .map(move |v| format!("_catalog/versions/{name}/{v:020}.parquet")),
            )
        })
        .collect();
    expected.sort();
    assert_eq!(keys, expected);
}

#[actix_web::test]
async fn a_corrupt_manifest_makes_the_binary_exit_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let storaged = storaged(&dir);
    storaged.wait_ready().await;
    let api = storaged.api();
    let reply = api
        .send(
            api.request(
                awc::http::Method::PUT,
                &format!("/v1/objects/{}", manifest_key_of("broken")),
            ),
            Some(bytes::Bytes::from_static(b"not parquet")),
        )
        .await
        .unwrap();
    assert!(reply.status.is_success());
    let mut catalogd = catalogd(&dir, &storaged, "5s");
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
    let log = catalogd.log_text();
    assert!(log.contains(&manifest_key_of("broken")), "{log}");
    assert!(
        !log.contains("storage unavailable"),
        "the error must say what happened: {log}"
    );
}

#[actix_web::test]
async fn a_stray_key_under_the_manifest_prefix_is_skipped_logged_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let storaged = storaged(&dir);
    storaged.wait_ready().await;
    let first = catalogd(&dir, &storaged, "5s");
    first.wait_ready().await;
    for name in ["kept.a", "kept.b"] {
        let reply = first.api().register_ok(&body(name, "fp", 2)).await;
        assert_eq!(reply.code(), 201);
    }
    drop(first);
    let stray = format!("{MANIFEST_PREFIX}notes.txt");
    let reply = storaged
        .api()
        .put(&format!("/v1/objects/{stray}"), "any bytes")
        .await
        .unwrap();
    assert!(reply.status.is_success());

    let catalogd = catalogd(&dir, &storaged, "5s");
    catalogd.wait_ready().await;
    let api = catalogd.api();
    for name in ["kept.a", "kept.b"] {
        assert_eq!(
            api.get_ok(&format!("/v1/datasets/{name}")).await.code(),
            200
        );
    }
    let metrics = String::from_utf8_lossy(&api.get_ok("/metrics").await.body).into_owned();
    assert!(
        metrics
            .lines()
            .any(|l| l == "catalogd_foreign_manifest_keys 1"),
        "{metrics}"
    );
    let log = catalogd.log_text();
    assert!(
        log.lines()
            .any(|l| l.contains("WARN") && l.contains(&stray)),
        "the stray key is not logged: {log}"
    );
}

#[actix_web::test]
async fn sigterm_drains_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let storaged = storaged(&dir);
    let mut catalogd = catalogd(&dir, &storaged, "5s");
    storaged.wait_ready().await;
    catalogd.wait_ready().await;
    // Registers that no periodic checkpoint has seen (the interval is 60 s; start-up wrote
    // an empty one): shutdown writes one, so the next start reads one file.
    for i in 0..5 {
        let reply = catalogd
            .api()
            .register_ok(&body(&format!("term.d{i}"), "fp", 2))
            .await;
        assert_eq!(reply.status.as_u16(), 201);
    }
    let checkpoint = format!("/v1/objects/{CHECKPOINT_KEY}");
    let first = storaged.api().get_ok(&checkpoint).await;
    assert_eq!(first.status.as_u16(), 200, "no checkpoint at start-up");
    assert!(manifest_codec::decode_checkpoint(&first.body)
        .unwrap()
        .is_empty());
    catalogd.signal("-TERM");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = catalogd.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "catalogd ignored SIGTERM");
        actix_web::rt::time::sleep(Duration::from_millis(25)).await;
    };
    assert!(status.success(), "{status:?}\n{}", catalogd.log_text());
    let stored = storaged.api().get_ok(&checkpoint).await;
    assert_eq!(stored.status.as_u16(), 200, "no checkpoint at shutdown");
    assert_eq!(
        manifest_codec::decode_checkpoint(&stored.body)
            .unwrap()
            .len(),
        5
    );
}

/// 5 kills in `make test`, 20 in `make chaos` (which sets `CHAOS`).
fn kills() -> usize {
    faults::sized(5, 20)
}

#[actix_web::test]
async fn kill_9_storaged_storm_loses_no_acknowledged_register() {
    kill_storm(Victim::Storaged, kills(), &[]).await;
}

#[actix_web::test]
async fn kill_9_catalogd_storm_loses_no_acknowledged_register() {
    kill_storm(Victim::Catalogd, kills(), &[]).await;
}

/// The same storm with storaged's write log on: every manifest is a log record.
#[actix_web::test]
async fn kill_9_storaged_storm_with_the_write_log_loses_no_acknowledged_register() {
    let log = [(
        "STORAGED_LOG_MAX_OBJECT_SIZE".to_owned(),
        "256 KiB".to_owned(),
    )];
    kill_storm(Victim::Storaged, kills(), &log).await;
}

/// What a history storm client did and was told, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Acked {
    Registered(i64),
    Deleted,
    Undropped(i64),
}

/// 6 clients register, delete and undrop their own names while catalogd is killed with
/// SIGKILL and restarted. Afterwards a fresh catalogd's change feed holds every
/// acknowledged change exactly once per acknowledgement (a register's version exactly
/// once), in the order each client was answered, with strictly increasing numbers; every
/// version it names reads back; and a consumer that read the feed before the last restart
/// continues after it without a gap.
#[actix_web::test]
async fn kill_9_storm_during_registers_deletes_and_undrops_loses_no_change() {
    let dir = tempfile::tempdir().unwrap();
    let storaged = storaged(&dir);
    storaged.wait_ready().await;
    let catalogd_port = free_port();
    let mut catalogd = catalogd_launch(&dir, &storaged, catalogd_port, "2s").spawn();
    catalogd.wait_ready().await;
    let stop = std::rc::Rc::new(std::cell::Cell::new(false));
    let acked = std::rc::Rc::new(std::cell::RefCell::new(std::collections::BTreeMap::<
        String,
        Vec<Acked>,
    >::new()));
    let clients: Vec<_> = (0..6)
        .map(|c| {
            let (stop, acked) = (stop.clone(), acked.clone());
            async move {
                let api = Api::new(catalogd_port);
                let mut step = 0_u64;
                while !stop.get() {
                    step += 1;
                    let name = format!("hstorm.c{c}.n{}", step % 2);
                    let outcome = match jitter(10) {
                        0..=5 => api
                            .register(&body(&name, "fp", 1 + (step % 3) as usize))
                            .await
                            .ok()
                            .filter(|r| r.status.is_success())
                            .map(|r| {
                                Acked::Registered(r.json()["manifest"]["version"].as_i64().unwrap())
                            }),
                        6 | 7 => api
                            .delete(&format!("/v1/datasets/{name}"))
                            .await
                            .ok()
                            .filter(|r| r.code() == 204)
                            .map(|_| Acked::Deleted),
                        _ => api
                            .post_json(
                                &format!("/v1/datasets/{name}/undrop"),
                                &serde_json::json!({}),
                            )
                            .await
                            .ok()
                            .filter(|r| r.code() == 200)
                            .map(|r| Acked::Undropped(r.json()["version"].as_i64().unwrap())),
                    };
                    match outcome {
                        Some(a) => acked.borrow_mut().entry(name).or_default().push(a),
                        None => actix_web::rt::time::sleep(Duration::from_millis(5)).await,
                    }
                }
            }
        })
        .collect();
    let killer = async {
        for _ in 0..kills() {
            actix_web::rt::time::sleep(Duration::from_millis(150 + jitter(350))).await;
            catalogd.restart();
            catalogd.wait_ready().await;
        }
        actix_web::rt::time::sleep(Duration::from_millis(300)).await;
        stop.set(true);
    };
    futures_util::future::join(killer, futures_util::future::join_all(clients)).await;
    // A consumer reads the whole feed, then catalogd dies once more.
    let before = catalogd.api().get_ok("/v1/changes?limit=1000").await.json();
    drop(catalogd);

    let acked = acked.borrow().clone();
    let total: usize = acked.values().map(Vec::len).sum();
    assert!(total >= 20, "too little was acknowledged: {acked:?}");
    let fresh = catalogd_again(&dir, &storaged).await;
    let api = fresh.api();
    let mut feed = Vec::new();
    let mut after: Option<u64> = None;
    loop {
        let path = after.map_or("/v1/changes?limit=1000".to_owned(), |a| {
            format!("/v1/changes?after={a}&limit=1000")
        });
        let page = api.get_ok(&path).await.json();
        let changes = page["changes"].as_array().unwrap().clone();
        if changes.is_empty() {
            break;
        }
        after = page["next_after"].as_u64();
        feed.extend(changes);
    }
    let seqs: Vec<u64> = feed.iter().map(|c| c["seq"].as_u64().unwrap()).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "numbers not increasing"
    );
    // The consumer that read before the restart continues without a gap.
    let seen = before["changes"].as_array().unwrap();
    assert_eq!(
        &feed[..seen.len()],
        &seen[..],
        "the feed changed under a consumer"
    );
    for (name, actions) in &acked {
        let mine: Vec<(String, i64)> = feed
            .iter()
            .filter(|c| c["name"] == name.as_str())
            .map(|c| {
                (
                    c["type"].as_str().unwrap().to_owned(),
                    c["version"].as_i64().unwrap(),
                )
            })
            .collect();
        // Each acknowledged action, in order, as a subsequence of the name's changes.
        let mut rest = mine.iter();
        for action in actions {
            let found = rest.any(|(kind, version)| match action {
                Acked::Registered(v) => kind == "registered" && version == v,
                Acked::Deleted => kind == "deleted",
                Acked::Undropped(v) => kind == "undropped" && version == v,
            });
            assert!(
                found,
                "{name}: {action:?} missing or out of order in {mine:?}"
            );
        }
        let mut registered: Vec<i64> = mine
            .iter()
            .filter(|(k, _)| k == "registered")
            .map(|(_, v)| *v)
            .collect();
        let count = registered.len();
        registered.dedup();
        assert_eq!(
            registered.len(),
            count,
            "{name}: a version registered twice"
        );
        for version in registered {
            api.get_ok(&format!("/v1/datasets/{name}/versions/{version}"))
                .await
                .json()["version"]
                .as_i64()
                .filter(|v| *v == version)
                .unwrap_or_else(|| panic!("{name} v{version} does not read back"));
        }
    }
    println!(
        "kill -9 catalogd x{} during registers, deletes and undrops: {total} acknowledged changes, {} in the feed, 0 lost, 0 doubled",
        kills(),
        feed.len()
    );
}
