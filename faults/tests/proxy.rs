//! catalogd ↔ storaged through a fault-injecting proxy: delays, a blackhole, resets before
//! and after storaged commits, a slow link and injected statuses. Registers fail in time
//! and change nothing they cannot account for; a slow store never exposes a partial index;
//! failed calls leak neither sockets nor file descriptors.

use std::time::{Duration, Instant};

use faults::proxy::{Fault, FaultProxy};
use futures_util::StreamExt;
use testkit::lake::{
    established_to, list_all, objects, register_body, stored_manifest, stored_version,
};
use testkit::{free_port, Api, Launch, Proc};

/// catalogd on a free port against the storaged (or proxy) at `storaged_port`.
fn catalogd(storaged_port: u16, env: &[(&str, &str)], logs: &std::path::Path) -> Proc {
    Launch::catalogd(&format!("http://127.0.0.1:{storaged_port}"), free_port())
        .envs(env.iter().copied())
        .log_dir(logs)
        .spawn()
}

/// catalogd's deadline for each storaged call in these tests.
const DEADLINE: Duration = Duration::from_secs(1);

struct Stack {
    dir: tempfile::TempDir,
    storaged: Proc,
    proxy: FaultProxy,
    catalogd: Proc,
}

/// storaged, the proxy in front of it, and catalogd talking to storaged through the proxy
/// (no periodic checkpoint, so a restart reads every manifest).
async fn stack(timeout: &str) -> Stack {
    stack_with(&[
        ("CATALOGD_STORAGED_TIMEOUT", timeout),
        ("CATALOGD_CHECKPOINT_INTERVAL", "0s"),
    ])
    .await
}

/// The same stack, catalogd configured by `env`.
async fn stack_with(env: &[(&str, &str)]) -> Stack {
    let dir = tempfile::tempdir().unwrap();
    let storaged = Launch::storaged(&dir.path().join("data"), free_port())
        .log_dir(dir.path())
        .spawn();
    storaged.wait_ready().await;
    let proxy = FaultProxy::start(storaged.port);
    let catalogd = catalogd(proxy.port(), env, dir.path());
    catalogd.wait_ready().await;
    Stack {
        dir,
        storaged,
        proxy,
        catalogd,
    }
}

/// What storaged holds under `_catalog/`: every key with its ETag.
async fn catalog_state(storaged: &Api) -> Vec<(String, String)> {
    objects(storaged, manifest_codec::layout::CATALOG_PREFIX).await
}

/// Whether a request under `fault` can have reached storaged.
fn may_reach_storaged(fault: Fault) -> bool {
    match fault {
        Fault::Blackhole | Fault::ResetBeforeForward | Fault::Reply(_) => false,
        Fault::Pass | Fault::Delay(_) | Fault::ResetAfterReply { .. } | Fault::Slow { .. } => true,
    }
}

#[actix_web::test]
async fn every_fault_is_a_timely_503_and_the_index_stays_true_to_storaged() {
    let s = stack("1s").await;
    let (api, store) = (s.catalogd.api(), s.storaged.api());
    let faults = [
        Fault::Blackhole,
        Fault::ResetBeforeForward,
        Fault::Reply(500),
        Fault::Reply(503),
        Fault::ResetAfterReply { pass: 0 },
        Fault::ResetAfterReply { pass: 40 },
        Fault::Delay(DEADLINE + Duration::from_millis(500)),
        Fault::Slow {
            bytes_per_second: 200,
        },
    ];
    for (i, fault) in faults.into_iter().enumerate() {
        let (old, new) = (format!("upd.f{i}"), format!("new.f{i}"));
        let reply = api.register(&register_body(&old, "fp", 3, "first")).await;
        assert_eq!(reply.unwrap().code(), 201);
        let before_state = catalog_state(&store).await;
        let before_bytes = stored_manifest(&store, &old).await.unwrap();
        let before_served = api.get_ok(&format!("/v1/datasets/{old}")).await.json();

        s.proxy.set(fault);
        for name in [&old, &new] {
            let started = Instant::now();
            let reply = api
                .register(&register_body(name, "fp", 3, "second"))
                .await
                .unwrap();
            let took = started.elapsed();
            assert_eq!(reply.code(), 503, "{fault:?} {name}: {:?}", reply.json());
            assert_eq!(reply.json()["error"], "storage_unavailable");
            assert!(
                took <= DEADLINE + Duration::from_secs(1),
                "{fault:?} {name}: 503 after {took:?}"
            );
        }
        // Reads are served from memory, unchanged.
        assert_eq!(
            api.get_ok(&format!("/v1/datasets/{old}")).await.json(),
            before_served
        );
        assert_eq!(api.get_ok(&format!("/v1/datasets/{new}")).await.code(), 404);
        if may_reach_storaged(fault) {
            // Let a delayed write land (or not) before the proxy heals.
            actix_web::rt::time::sleep(DEADLINE + Duration::from_millis(800)).await;
            let now = stored_manifest(&store, &old).await.unwrap();
            if now != before_bytes {
                let m = manifest_codec::decode(&now).unwrap();
                assert_eq!(m.version, 2, "{fault:?}");
                assert!(m.objects[0].key.as_str().contains("second"), "{fault:?}");
            }
        } else {
            assert_eq!(catalog_state(&store).await, before_state, "{fault:?}");
            assert_eq!(stored_manifest(&store, &old).await.unwrap(), before_bytes);
            assert_eq!(stored_manifest(&store, &new).await, None, "{fault:?}");
        }

        // Healed: the next acknowledged write of each name continues from what storaged
        // holds, whatever the failed one left there.
        s.proxy.set(Fault::Pass);
        faults::heal::next_write_continues_from_store(
            &api,
            &store,
            &[&old, &new],
            &format!("{fault:?}"),
        )
        .await;
    }

    // A catalogd rebuilt straight from storaged serves exactly what the running one does,
    // and both agree with the stored manifests.
    let fresh = catalogd(s.storaged.port, &[], s.dir.path());
    fresh.wait_ready().await;
    let served = list_all(&api).await;
    assert_eq!(list_all(&fresh.api()).await, served);
    assert_eq!(served.len(), 2 * faults.len());
    for d in &served {
        let name = d["name"].as_str().unwrap();
        let m = manifest_codec::decode(&stored_manifest(&store, name).await.unwrap()).unwrap();
        assert_eq!(d["version"].as_i64(), Some(m.version), "{name}");
    }
}

#[actix_web::test]
async fn rehydration_through_a_slow_store_never_serves_a_partial_index() {
    const DATASETS: usize = 2_000;
    let s = stack("5s").await;
    let api = s.catalogd.api();
    let made: Vec<u16> = futures_util::stream::iter(0..DATASETS)
        .map(|i| {
            let api = api.clone();
            async move {
                let body = register_body(&format!("slow.d{i:05}"), "fp", 2, "a");
                api.register(&body).await.map_or(0, |r| r.code())
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    assert!(made.iter().all(|c| *c == 201), "registers failed");
    drop(s.catalogd);

    // +20 ms on every request to storaged.
    s.proxy.set(Fault::Delay(Duration::from_millis(20)));
    let started = Instant::now();
    let slow = catalogd(
        s.proxy.port(),
        &[("CATALOGD_CHECKPOINT_INTERVAL", "0s")],
        s.dir.path(),
    );
    let api = slow.api();
    let mut slowest_health = Duration::ZERO;
    let mut not_ready_answers = 0;
    let ready_after = loop {
        let asked = Instant::now();
        if let Ok(r) = api.get("/healthz").await {
            assert_eq!(r.code(), 200);
            slowest_health = slowest_health.max(asked.elapsed());
        }
        // The listing first: readiness never goes back, so a listing served before
        // /readyz answers 200 right after it is a partial index (the other order races
        // with the rebuild finishing between the two requests).
        let listing = api
            .get("/v1/datasets?limit=1000")
            .await
            .map(|r| (r.code(), r.json()));
        let ready = api.get("/readyz").await.map(|r| r.code());
        match (ready, listing) {
            (Ok(200), Ok((200, _))) => break started.elapsed(),
            (_, Ok((200, json))) => panic!(
                "a listing was served before /readyz said ready: {} datasets",
                json["datasets"].as_array().map_or(0, Vec::len)
            ),
            (_, Ok((code, _))) => {
                assert_eq!(code, 503, "listing while rebuilding");
                not_ready_answers += 1;
            }
            (_, Err(_)) => {} // not listening yet
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "never ready:\n{}",
            slow.log_text()
        );
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(list_all(&api).await.len(), DATASETS);
    assert!(not_ready_answers > 0, "the rebuild was too fast to observe");
    // 2,000 fetches at 20 ms each, 32 at a time, take at least 1.25 s.
    assert!(
        ready_after >= Duration::from_millis(1_250),
        "{ready_after:?}"
    );
    assert!(
        slowest_health < Duration::from_secs(1),
        "{slowest_health:?}"
    );
    let metrics = String::from_utf8_lossy(&api.get_ok("/metrics").await.body).into_owned();
    assert!(
        metrics.contains(&format!(
            "catalogd_rehydration_fetched_manifests {DATASETS}"
        )),
        "{metrics}"
    );
    println!(
        "slow store (+20 ms/request): {DATASETS} manifests, ready after {ready_after:?}, \
         {not_ready_answers} listings refused meanwhile, slowest /healthz {slowest_health:?}"
    );
}

#[actix_web::test]
async fn failed_calls_leak_no_sockets_and_no_file_descriptors() {
    let s = stack("500ms").await;
    let api = s.catalogd.api();
    let load = |tag: &'static str, n: usize, concurrency: usize| {
        let api = api.clone();
        async move {
            futures_util::stream::iter(0..n)
                .map(|i| {
                    let api = api.clone();
                    async move {
                        let body = register_body(&format!("leak.n{}", i % 64), "fp", 2, tag);
                        api.register(&body).await.map_or(0, |r| r.code())
                    }
                })
                .buffer_unordered(concurrency)
                .collect::<Vec<u16>>()
                .await
        }
    };
    let warm = load("warm", 400, 32).await;
    assert!(warm.iter().all(|c| *c == 200 || *c == 201), "{warm:?}");
    let baseline = s.catalogd.open_fds();

    let per_fault = faults::sized(500, 2_000);
    let mut failed = 0;
    for fault in [
        Fault::Reply(412),
        Fault::Reply(500),
        Fault::ResetBeforeForward,
        Fault::Blackhole,
    ] {
        s.proxy.set(fault);
        let codes = load("fault", per_fault, 64).await;
        assert!(codes.iter().all(|c| *c == 503), "{fault:?}: {codes:?}");
        failed += codes.len();

        assert!(
            established_to(s.proxy.port()) <= POOL_BOUND,
            "{fault:?}: {} connections to storaged",
            established_to(s.proxy.port())
        );
    }
    s.proxy.set(Fault::Pass);
    let healed = load("healed", 400, 32).await;
    assert!(healed.iter().all(|c| *c == 200), "{healed:?}");
    let sockets = established_to(s.proxy.port());
    assert!(sockets <= POOL_BOUND, "{sockets} connections to storaged");
    // Connections the proxy closed sit in awc's pool until it drops them (idle for 15 s at
    // most); a leaked descriptor never comes back.
    let settled = Instant::now();
    let after = loop {
        let fds = s.catalogd.open_fds();
        if fds <= baseline || settled.elapsed() > Duration::from_secs(40) {
            break fds;
        }
        actix_web::rt::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(
        after <= baseline,
        "file descriptors: {baseline} before {failed} failed registers, {after} 40 s after"
    );
    println!(
        "{failed} failed registers (412, 500, reset, timeout): fds {baseline} → {after}, \
         {sockets} connections to storaged afterwards, back to baseline in {:?}",
        settled.elapsed()
    );
}

/// catalogd's connections to storaged: awc's pool holds at most 100 per client, and there
/// is one client per worker (2 on this machine) plus one for start-up and checkpoints.
const POOL_BOUND: usize = 300;

/// POSTs `body` as a register with `Idempotency-Key: key`.
async fn register_keyed(api: &Api, key: &str, body: &serde_json::Value) -> testkit::Reply {
    let req = api
        .request(awc::http::Method::POST, "/v1/datasets")
        .insert_header(("content-type", "application/json"))
        .insert_header(("idempotency-key", key.to_owned()));
    api.send(req, Some(serde_json::to_vec(body).unwrap().into()))
        .await
        .unwrap()
}

#[actix_web::test]
async fn an_idempotent_retry_after_a_lost_answer_and_a_kill_9_registers_once() {
    // The default checkpoint interval: the first checkpoint is written before serving, so
    // the keys survive a crash.
    let Stack {
        dir: _dir,
        storaged,
        proxy,
        mut catalogd,
    } = stack_with(&[("CATALOGD_STORAGED_TIMEOUT", "1s")]).await;
    let api = catalogd.api();
    let store = storaged.api();
    let body = register_body("idem.lost", "fp", 2, "first");

    // storaged commits the create, the answer is lost: a 503 whose outcome is unknown.
    proxy.set(Fault::ResetAfterReply { pass: 0 });
    let lost = register_keyed(&api, "nightly-1", &body).await;
    assert_eq!(lost.code(), 503, "{:?}", lost.json());
    assert_eq!(
        stored_version(&store, "idem.lost").await,
        1,
        "the create landed"
    );
    proxy.set(Fault::Pass);

    // The retry is told what happened, once; nothing is written again.
    let retry = register_keyed(&api, "nightly-1", &body).await;
    assert_eq!(retry.code(), 201, "{:?}", retry.json());
    assert_eq!(retry.header("idempotent-replayed"), Some("true"));
    assert_eq!(retry.json()["manifest"]["version"], 1);
    let again = register_keyed(&api, "nightly-1", &body).await;
    assert_eq!((again.code(), &again.body), (201, &retry.body));

    // kill -9 and a restart: the key is still remembered, byte for byte.
    catalogd.restart();
    catalogd.wait_ready().await;
    let api = catalogd.api();
    let after = register_keyed(&api, "nightly-1", &body).await;
    assert_eq!((after.code(), &after.body), (201, &retry.body));
    register_keyed(
        &api,
        "nightly-1",
        &register_body("idem.lost", "fp", 3, "other"),
    )
    .await
    .assert_error(422, "idempotency_key_reused");
    let history = api.get_ok("/v1/datasets/idem.lost/versions").await.json();
    assert_eq!(history["versions"].as_array().unwrap().len(), 1);
    let feed = api.get_ok("/v1/changes").await.json();
    let registered = feed["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["name"] == "idem.lost")
        .count();
    assert_eq!(registered, 1, "{feed}");
}
