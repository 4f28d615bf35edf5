//! Rehydration: the index survives restarts, start-up waits for storaged, and a manifest
//! that cannot be read stops start-up naming its key.

use std::time::Duration;

use futures_util::StreamExt;

use testkit::lake::manifest_key_of;

use crate::helpers::{
    body, catalog_keys, catalogd_settings, list_all, spawn_catalogd, spawn_stack, spawn_storaged,
    start_catalogd, wait_ready, Api, Storaged,
};

#[actix_web::test]
async fn a_thousand_datasets_survive_a_restart_unchanged() {
    let stack = spawn_stack().await;
    let api = stack.api.clone();
    futures_util::stream::iter(0..1000)
        .map(|i| {
            let api = api.clone();
            async move {
                let name = format!("restart.ds-{i:04}");
                let reply = api.register_ok(&body(&name, "fp", i % 7)).await;
                assert_eq!(reply.status.as_u16(), 201);
                if i % 10 == 0 {
                    assert_eq!(
                        api.register_ok(&body(&name, "fp", 2)).await.status.as_u16(),
                        200
                    );
                }
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
    let before = list_all(&api).await;
    assert_eq!(before.len(), 1000);
    let etag_before = api
        .get_ok("/v1/datasets/restart.ds-0010")
        .await
        .header("etag")
        .map(str::to_owned);

    stack.catalogd.handle.stop(true).await;
    stack.catalogd.task.await.unwrap().unwrap();
    let catalogd = spawn_catalogd(&stack.storaged.url()).await;
    let api = Api::new(catalogd.port);
    let after = list_all(&api).await;
    assert_eq!(after, before, "the rebuilt index differs");
    let reply = api.get_ok("/v1/datasets/restart.ds-0010").await;
    assert_eq!(reply.json()["version"], 2);
    assert_eq!(reply.header("etag").map(str::to_owned), etag_before);
    let metrics = String::from_utf8(api.get_ok("/metrics").await.body.to_vec()).unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l == "catalogd_rehydration_manifests 1000"),
        "{metrics}"
    );
    // The version sequence continues.
    assert_eq!(
        api.register_ok(&body("restart.ds-0010", "fp", 1))
            .await
            .json()["manifest"]["version"],
        3
    );
}

#[actix_web::test]
async fn not_ready_until_storaged_answers_then_ready() {
    // A port with nothing listening on it, which storaged takes later.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let catalogd = start_catalogd(catalogd_settings(&url)).await;
    let api = Api::new(catalogd.port);
    for _ in 0..3 {
        assert_eq!(api.get_ok("/healthz").await.status.as_u16(), 200);
        let ready = api.get_ok("/readyz").await;
        ready.assert_error(503, "not_ready");
        api.get_ok("/v1/datasets")
            .await
            .assert_error(503, "not_ready");
        api.get_ok("/v1/datasets/a")
            .await
            .assert_error(503, "not_ready");
        api.register_ok(&body("a", "fp", 1))
            .await
            .assert_error(503, "not_ready");
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let settings = storaged::config::Settings::load(
        None,
        // The smallest write-log segment: the tests start many storaged, each making one.
        &std::collections::HashMap::from([(
            "STORAGED_LOG_SEGMENT_SIZE".to_owned(),
            "8 MiB".to_owned(),
        )]),
        &storaged::config::Overrides {
            listen: Some(format!("127.0.0.1:{port}")),
            s3_listen: Some(String::new()),
            data_dir: Some(dir.path().join("data")),
            ..Default::default()
        },
    )
    .unwrap();
    let app = storaged::startup::Application::build(settings)
        .await
        .unwrap();
    actix_web::rt::spawn(app.run_until_stopped());
    wait_ready(catalogd.port).await;
    assert_eq!(
        api.register_ok(&body("a", "fp", 1)).await.status.as_u16(),
        201
    );
}

async fn plant(storaged: &Storaged, key: &str, bytes: Vec<u8>) {
    let api = Api::new(storaged.port);
    let reply = api
        .send(
            api.request(
                awc::http::Method::PUT,
                &format!("/v1/objects/{}", key.replace(' ', "%20")),
            ),
            Some(bytes.into()),
        )
        .await
        .unwrap();
    assert!(reply.status.is_success(), "{:?}", reply.status);
}

/// Starts catalogd over `storaged` and expects start-up to fail with an error naming
/// `key`, never becoming ready and writing nothing.
async fn assert_start_fails_naming(storaged: &Storaged, key: &str) {
    let keys_before = catalog_keys(storaged).await;
    let catalogd = start_catalogd(catalogd_settings(&storaged.url())).await;
    let api = Api::new(catalogd.port);
    // Either still rebuilding (503) or already stopped (connection refused or reset).
    if let Ok(readyz) = api.get("/readyz").await {
        assert_eq!(readyz.status.as_u16(), 503);
    }
    let result = tokio::time::timeout(Duration::from_secs(30), catalogd.task)
        .await
        .expect("start-up did not stop")
        .unwrap();
    let error = format!(
        "{:?}",
        result.expect_err("start-up succeeded over a corrupt manifest")
    );
    assert!(error.contains(key), "{error} does not name {key}");
    assert_eq!(
        catalog_keys(storaged).await,
        keys_before,
        "a failed start wrote to storaged"
    );
}

#[actix_web::test]
async fn a_corrupt_manifest_stops_start_up_naming_its_key() {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/corrupt");
    for (file, needle) in [
        ("garbage.parquet", "parquet"),
        ("zero_rows.parquet", "0 rows"),
        ("two_rows.parquet", "2 rows"),
        ("missing_column.parquet", "version"),
    ] {
        let storaged = spawn_storaged().await;
        let good = spawn_catalogd(&storaged.url()).await;
        for name in ["aa", "bb", "cc"] {
            Api::new(good.port).register_ok(&body(name, "fp", 1)).await;
        }
        good.handle.stop(true).await;
        let key = format!(
            "{}bad-{}.parquet",
            manifest_codec::layout::MANIFEST_PREFIX,
            file.trim_end_matches(".parquet").replace('_', "-")
        );
        plant(&storaged, &key, std::fs::read(fixtures.join(file)).unwrap()).await;
        assert_start_fails_naming(&storaged, &key).await;
        let catalogd = start_catalogd(catalogd_settings(&storaged.url())).await;
        let error = format!("{:?}", catalogd.task.await.unwrap().unwrap_err());
        assert!(error.contains(needle), "{file}: {error} lacks {needle:?}");
    }
}

#[actix_web::test]
async fn a_misplaced_manifest_stops_start_up_and_a_foreign_key_is_skipped() {
    let storaged = spawn_storaged().await;
    let good = spawn_catalogd(&storaged.url()).await;
    Api::new(good.port)
        .register_ok(&body("alpha", "fp", 1))
        .await;
    good.handle.stop(true).await;
    let alpha = crate::helpers::stored_manifest(&storaged, "alpha")
        .await
        .unwrap();

    // alpha's manifest copied under beta's key.
    let beta = manifest_key_of("beta");
    plant(&storaged, &beta, alpha.to_vec()).await;
    assert_start_fails_naming(&storaged, &beta).await;
    Api::new(storaged.port)
        .delete(&format!("/v1/objects/{beta}"))
        .await
        .unwrap();

    // Keys that are not `<valid name>.parquet` are no manifests: skipped and counted.
    plant(&storaged, &manifest_key_of("Not A Name"), alpha.to_vec()).await;
    let notes = format!("{}notes.txt", manifest_codec::layout::MANIFEST_PREFIX);
    plant(&storaged, &notes, b"any bytes".to_vec()).await;
    let catalogd = spawn_catalogd(&storaged.url()).await;
    let api = Api::new(catalogd.port);
    assert_eq!(api.get_ok("/v1/datasets/alpha").await.code(), 200);
    assert_eq!(list_all(&api).await.len(), 1);
    assert_eq!(
        metric(&metrics_of(&api).await, "catalogd_foreign_manifest_keys").as_deref(),
        Some("2")
    );
}

fn metric(metrics: &str, name: &str) -> Option<String> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
        .map(str::to_owned)
}

async fn metrics_of(api: &Api) -> String {
    String::from_utf8(api.get_ok("/metrics").await.body.to_vec()).unwrap()
}

/// Waits until catalogd has written `n` checkpoints.
async fn wait_checkpoints(api: &Api, n: u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let written = metric(
            &metrics_of(api).await,
            "catalogd_checkpoint_writes_total{outcome=\"ok\"}",
        );
        if written.and_then(|v| v.parse::<u64>().ok()).unwrap_or(0) >= n {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no checkpoint written"
        );
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
}

#[actix_web::test]
async fn a_restart_reads_the_checkpoint_and_fetches_only_what_changed() {
    let storaged = spawn_storaged().await;
    let mut settings = catalogd_settings(&storaged.url());
    settings.checkpoint_interval = Duration::from_millis(50);
    let catalogd = start_catalogd(settings.clone()).await;
    wait_ready(catalogd.port).await;
    let api = Api::new(catalogd.port);
    for i in 0..20 {
        let reply = api
            .register_ok(&body(&format!("ckpt.d{i:02}"), "fp", 3))
            .await;
        assert_eq!(reply.status.as_u16(), 201);
    }
    // Wait for a checkpoint that holds all 20.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while stored_checkpoint(&storaged.url()).await.map(|c| c.len()) != Some(20) {
        assert!(
            std::time::Instant::now() < deadline,
            "no complete checkpoint"
        );
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    let before = list_all(&api).await;
    catalogd.handle.stop(true).await;
    catalogd.task.await.unwrap().unwrap();

    // A change the checkpoint does not know: a register through another catalogd, which
    // writes no checkpoint itself (its first one could land after the register when the
    // machine is loaded, and would then know the change).
    let mut other_settings = catalogd_settings(&storaged.url());
    other_settings.checkpoint_interval = Duration::ZERO;
    let other = start_catalogd(other_settings).await;
    wait_ready(other.port).await;
    let other_api = Api::new(other.port);
    assert_eq!(
        other_api
            .register_ok(&body("ckpt.d05", "fp", 1))
            .await
            .status
            .as_u16(),
        200
    );
    let changed = other_api.get_ok("/v1/datasets/ckpt.d05").await.json();
    other.handle.stop(true).await;
    other.task.await.unwrap().unwrap();

    let restarted = start_catalogd(settings).await;
    wait_ready(restarted.port).await;
    let api = Api::new(restarted.port);
    let metrics = metrics_of(&api).await;
    assert_eq!(
        metric(&metrics, "catalogd_rehydration_manifests").as_deref(),
        Some("20")
    );
    assert_eq!(
        metric(&metrics, "catalogd_rehydration_fetched_manifests").as_deref(),
        Some("1"),
        "only the manifest changed since the checkpoint is fetched"
    );
    let after = list_all(&api).await;
    assert_eq!(api.get_ok("/v1/datasets/ckpt.d05").await.json(), changed);
    for (b, a) in before.iter().zip(&after) {
        if b["name"] != "ckpt.d05" {
            assert_eq!(a, b);
        }
    }
}

#[actix_web::test]
async fn a_corrupt_checkpoint_is_ignored_and_rewritten() {
    let stack = spawn_stack().await;
    for i in 0..10 {
        let reply = stack
            .api
            .register_ok(&body(&format!("bad.d{i}"), "fp", 2))
            .await;
        assert_eq!(reply.status.as_u16(), 201);
    }
    let before = list_all(&stack.api).await;
    stack.catalogd.handle.stop(true).await;
    stack.catalogd.task.await.unwrap().unwrap();
    let mut res = awc::Client::default()
        .put(format!(
            "{}/v1/objects/{}",
            stack.storaged.url(),
            manifest_codec::layout::CHECKPOINT_KEY
        ))
        .send_body("this is not a checkpoint")
        .await
        .unwrap();
    assert!(res.status().is_success());
    let _ = res.body().await;

    let catalogd = spawn_catalogd(&stack.storaged.url()).await;
    let api = Api::new(catalogd.port);
    assert_eq!(list_all(&api).await, before);
    let metrics = metrics_of(&api).await;
    assert_eq!(
        metric(&metrics, "catalogd_rehydration_fetched_manifests").as_deref(),
        Some("10")
    );
    // The stale checkpoint is replaced at once.
    wait_checkpoints(&api, 1).await;
    let checkpoint = stored_checkpoint(&stack.storaged.url()).await.unwrap();
    assert_eq!(checkpoint.len(), 10);
}

/// The checkpoint stored in storaged, if there is one that decodes.
async fn stored_checkpoint(storaged: &str) -> Option<Vec<manifest_codec::CheckpointEntry>> {
    let mut res = awc::Client::default()
        .get(format!(
            "{storaged}/v1/objects/{}",
            manifest_codec::layout::CHECKPOINT_KEY
        ))
        .send()
        .await
        .ok()?;
    let bytes = res.body().limit(64 << 20).await.ok()?;
    manifest_codec::decode_checkpoint(&bytes).ok()
}
