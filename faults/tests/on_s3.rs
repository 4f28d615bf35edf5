//! storaged on an S3 store (moto) under faults: kill -9 storms, and a fault-injecting proxy
//! between storaged and the store (blackhole, resets before and after the store commits,
//! 503 SlowDown, 500, latency). The guarantees are those between catalogd and storaged:
//! a timely 503, nothing acknowledged lost, and the catalog true to what is stored.

use std::time::{Duration, Instant};

use faults::proxy::{Fault, FaultProxy};
use faults::storm::{kill_storm, Victim};
use testkit::lake::{list_all, register_body};
use testkit::{free_port, Launch, Moto};

/// 5 kills in `make test`, 20 in `make chaos`.
fn kills() -> usize {
    faults::sized(5, 20)
}

#[actix_web::test]
async fn kill_9_storaged_on_s3_storm_loses_no_acknowledged_register() {
    let moto = Moto::start();
    moto.create_bucket("storm");
    kill_storm(Victim::Storaged, kills(), &moto.storaged_env("storm")).await;
}

#[actix_web::test]
async fn kill_9_catalogd_storm_with_storaged_on_s3_loses_no_acknowledged_register() {
    let moto = Moto::start();
    moto.create_bucket("storm");
    kill_storm(Victim::Catalogd, kills(), &moto.storaged_env("storm")).await;
}

/// storaged's deadline for each call to the store, retries included.
const STORE_TIMEOUT: Duration = Duration::from_secs(1);

#[actix_web::test]
async fn store_faults_are_timely_503s_and_the_catalog_stays_true_to_the_store() {
    let moto = Moto::start();
    moto.create_bucket("lake");
    let proxy = FaultProxy::start(moto.port());
    let dir = tempfile::tempdir().unwrap();
    let env: Vec<(String, String)> = moto
        .storaged_env("lake")
        .into_iter()
        .map(|(k, v)| match k.as_str() {
            "STORAGED_S3_ENDPOINT" => (k, format!("http://127.0.0.1:{}", proxy.port())),
            _ => (k, v),
        })
        .chain([("STORAGED_S3_TIMEOUT".to_owned(), "1s".to_owned())])
        .collect();
    let storaged = Launch::storaged(&dir.path().join("unused"), free_port())
        .envs(env)
        .log_dir(dir.path())
        .spawn();
    storaged.wait_ready().await;
    let catalogd = Launch::catalogd(&storaged.url(), free_port())
        .env("CATALOGD_STORAGED_TIMEOUT", "5s")
        .env("CATALOGD_CHECKPOINT_INTERVAL", "0s")
        .log_dir(dir.path())
        .spawn();
    catalogd.wait_ready().await;
    let (api, store) = (catalogd.api(), storaged.api());

    let faults = [
        Fault::Blackhole,
        Fault::ResetBeforeForward,
        Fault::Reply(503),
        Fault::Reply(500),
        Fault::ResetAfterReply { pass: 0 },
        Fault::Delay(STORE_TIMEOUT + Duration::from_millis(500)),
    ];
    for (i, fault) in faults.into_iter().enumerate() {
        let (old, new) = (format!("upd.f{i}"), format!("new.f{i}"));
        let reply = api.register(&register_body(&old, "fp", 3, "first")).await;
        assert_eq!(reply.unwrap().code(), 201, "{fault:?}");
        let before = api.get_ok(&format!("/v1/datasets/{old}")).await.json();

        proxy.set(fault);
        for name in [&old, &new] {
            let started = Instant::now();
            let reply = api
                .register(&register_body(name, "fp", 3, "second"))
                .await
                .unwrap();
            let took = started.elapsed();
            assert_eq!(reply.code(), 503, "{fault:?} {name}: {:?}", reply.json());
            assert!(
                took <= STORE_TIMEOUT * 4,
                "{fault:?} {name}: 503 after {took:?}"
            );
        }
        let direct = store.get("/v1/objects/anything").await.unwrap();
        assert_eq!(direct.code(), 503, "{fault:?}: storaged itself answers 503");
        assert_eq!(direct.header("retry-after"), Some("1"), "{fault:?}");
        assert_eq!(
            api.get_ok(&format!("/v1/datasets/{old}")).await.json(),
            before,
            "{fault:?}: reads are served from memory, unchanged"
        );

        // Healed (after a delayed write had time to land or not): the next acknowledged
        // write of each name continues from what the store holds.
        actix_web::rt::time::sleep(STORE_TIMEOUT).await;
        proxy.set(Fault::Pass);
        faults::heal::next_write_continues_from_store(
            &api,
            &store,
            &[&old, &new],
            &format!("{fault:?}"),
        )
        .await;
    }

    // A catalogd rebuilt straight from the store serves exactly what the running one does.
    let fresh = Launch::catalogd(&storaged.url(), free_port())
        .log_dir(dir.path())
        .spawn();
    fresh.wait_ready().await;
    let served = list_all(&api).await;
    assert_eq!(served.len(), 2 * faults.len());
    assert_eq!(list_all(&fresh.api()).await, served);
}
