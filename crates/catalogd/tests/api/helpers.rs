//! In-process storaged + catalogd on port 0, and a small JSON client.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;
use awc::http::StatusCode;
use bytes::Bytes;
use catalogd::config::{Overrides, Settings};
use serde_json::{json, Value};

pub(crate) use testkit::Reply;

/// A running storaged (in-process) with its data directory.
pub(crate) struct Storaged {
    pub(crate) port: u16,
    pub(crate) handle: ServerHandle,
    pub(crate) _dir: tempfile::TempDir,
}

impl Storaged {
    pub(crate) fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

pub(crate) async fn spawn_storaged() -> Storaged {
    spawn_storaged_in(tempfile::tempdir().unwrap()).await
}

/// storaged over `dir/data` (which may hold objects already).
pub(crate) async fn spawn_storaged_in(dir: tempfile::TempDir) -> Storaged {
    let settings = storaged::config::Settings::load(
        None,
        // The smallest write-log segment: the tests start many storaged, each making one.
        &std::collections::HashMap::from([(
            "STORAGED_LOG_SEGMENT_SIZE".to_owned(),
            "8 MiB".to_owned(),
        )]),
        &storaged::config::Overrides {
            listen: Some("127.0.0.1:0".into()),
            s3_listen: Some(String::new()),
            data_dir: Some(dir.path().join("data")),
            ..Default::default()
        },
    )
    .unwrap();
    let app = storaged::startup::Application::build(settings)
        .await
        .unwrap();
    let port = app.port();
    let handle = app.handle();
    actix_web::rt::spawn(app.run_until_stopped());
    Storaged {
        port,
        handle,
        _dir: dir,
    }
}

/// A running catalogd (in-process).
pub(crate) struct Catalogd {
    pub(crate) port: u16,
    pub(crate) handle: ServerHandle,
    pub(crate) task: tokio::task::JoinHandle<Result<(), catalogd::Error>>,
}

pub(crate) fn catalogd_settings(storaged_url: &str) -> Settings {
    Settings::load(
        None,
        &HashMap::new(),
        &Overrides {
            listen: Some("127.0.0.1:0".into()),
            storaged_url: Some(storaged_url.to_owned()),
            ..Default::default()
        },
    )
    .unwrap()
}

/// Starts catalogd without waiting for it to be ready.
pub(crate) async fn start_catalogd(settings: Settings) -> Catalogd {
    let app = catalogd::startup::Application::build(settings)
        .await
        .unwrap();
    let port = app.port();
    let handle = app.handle();
    let task = actix_web::rt::spawn(app.run_until_stopped());
    Catalogd { port, handle, task }
}

/// Starts catalogd and waits until `/readyz` answers 200.
pub(crate) async fn spawn_catalogd(storaged_url: &str) -> Catalogd {
    let catalogd = start_catalogd(catalogd_settings(storaged_url)).await;
    wait_ready(catalogd.port).await;
    catalogd
}

pub(crate) async fn wait_ready(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(reply) = Api::new(port).get("/readyz").await {
            if reply.status == StatusCode::OK {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "catalogd on {port} never became ready"
        );
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Both services, in-process.
pub(crate) struct Stack {
    pub(crate) storaged: Storaged,
    pub(crate) catalogd: Catalogd,
    pub(crate) api: Api,
}

pub(crate) async fn spawn_stack() -> Stack {
    let storaged = spawn_storaged().await;
    let catalogd = spawn_catalogd(&storaged.url()).await;
    let api = Api::new(catalogd.port);
    Stack {
        storaged,
        catalogd,
        api,
    }
}

pub(crate) use testkit::Api;

/// POST `body` to `path` as JSON, whatever the bytes are.
pub(crate) async fn post_raw(api: &Api, path: &str, body: impl Into<Bytes>) -> Reply {
    let req = api
        .request(awc::http::Method::POST, path)
        .insert_header(("content-type", "application/json"));
    api.send(req, Some(body.into())).await.unwrap()
}

/// A register body with `n` objects under `lake/<name>/`.
pub(crate) fn body(name: &str, fingerprint: &str, n: usize) -> Value {
    let objects: Vec<Value> = (0..n)
        .map(|i| json!({"key": format!("lake/{name}/part-{i}.parquet"), "size": 1000 + i}))
        .collect();
    json!({"name": name, "schema_fingerprint": fingerprint, "objects": objects, "row_count": 42})
}

pub(crate) use testkit::lake::list_all;

/// The manifest object as storaged holds it.
pub(crate) async fn stored_manifest(storaged: &Storaged, name: &str) -> Option<Bytes> {
    testkit::lake::stored_manifest(&Api::new(storaged.port), name).await
}

/// Every key under `_catalog/` in storaged but the checkpoint's (caches, written at
/// start-up and in the background).
pub(crate) async fn catalog_keys(storaged: &Storaged) -> Vec<String> {
    testkit::lake::objects(
        &Api::new(storaged.port),
        manifest_codec::layout::CATALOG_PREFIX,
    )
    .await
    .into_iter()
    .map(|(key, _)| key)
    .filter(|key| !key.starts_with("_catalog/checkpoint/"))
    .collect()
}
