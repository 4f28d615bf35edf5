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
    let dir = tempfile::tempdir().unwrap();
    let settings = storaged::config::Settings::load(
        None,
        &HashMap::new(),
        &storaged::config::Overrides {
            listen: Some("127.0.0.1:0".into()),
            data_dir: Some(dir.path().join("data")),
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

/// A JSON client for one server.
#[derive(Clone)]
pub(crate) struct Api {
    pub(crate) base: String,
    client: awc::Client,
}

impl Api {
    pub(crate) fn new(port: u16) -> Self {
        Self {
            base: format!("http://127.0.0.1:{port}"),
            client: awc::Client::builder()
                .timeout(Duration::from_secs(60))
                .finish(),
        }
    }

    pub(crate) async fn send(
        &self,
        req: awc::ClientRequest,
        body: Option<Bytes>,
    ) -> Result<Reply, String> {
        let mut res = match body {
            Some(body) => req.send_body(body).await,
            None => req.send().await,
        }
        .map_err(|e| e.to_string())?;
        let body = res
            .body()
            .limit(512 * 1024 * 1024)
            .await
            .map_err(|e| e.to_string())?;
        Ok(Reply {
            status: res.status(),
            headers: res.headers().clone(),
            body,
        })
    }

    pub(crate) async fn get(&self, path: &str) -> Result<Reply, String> {
        self.send(self.client.get(format!("{}{path}", self.base)), None)
            .await
    }

    pub(crate) async fn get_ok(&self, path: &str) -> Reply {
        self.get(path).await.unwrap()
    }

    pub(crate) fn request(&self, method: awc::http::Method, path: &str) -> awc::ClientRequest {
        self.client.request(method, format!("{}{path}", self.base))
    }

    pub(crate) async fn post_raw(&self, path: &str, body: impl Into<Bytes>) -> Reply {
        let req = self
            .request(awc::http::Method::POST, path)
            .insert_header(("content-type", "application/json"));
        self.send(req, Some(body.into())).await.unwrap()
    }

    pub(crate) async fn register(&self, body: &Value) -> Reply {
        self.post_raw("/v1/datasets", serde_json::to_vec(body).unwrap())
            .await
    }

    pub(crate) async fn delete(&self, path: &str) -> Reply {
        self.send(self.request(awc::http::Method::DELETE, path), None)
            .await
            .unwrap()
    }
}

/// A register body with `n` objects under `lake/<name>/`.
pub(crate) fn body(name: &str, fingerprint: &str, n: usize) -> Value {
    let objects: Vec<Value> = (0..n)
        .map(|i| json!({"key": format!("lake/{name}/part-{i}.parquet"), "size": 1000 + i}))
        .collect();
    json!({"name": name, "schema_fingerprint": fingerprint, "objects": objects, "row_count": 42})
}

/// Every dataset catalogd lists, walking all pages.
pub(crate) async fn list_all(api: &Api) -> Vec<Value> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let path = match &token {
            Some(t) => format!("/v1/datasets?limit=1000&page_token={t}"),
            None => "/v1/datasets?limit=1000".to_owned(),
        };
        let reply = api.get_ok(&path).await;
        assert_eq!(reply.status, StatusCode::OK);
        let json = reply.json();
        out.extend(json["datasets"].as_array().unwrap().iter().cloned());
        match json["next_page_token"].as_str() {
            Some(t) => token = Some(t.to_owned()),
            None => return out,
        }
    }
}

/// The manifest object as storaged holds it.
pub(crate) async fn stored_manifest(storaged: &Storaged, name: &str) -> Option<Bytes> {
    let reply = Api::new(storaged.port)
        .get_ok(&format!("/v1/objects/_catalog/manifests/{name}.parquet"))
        .await;
    match reply.status.as_u16() {
        200 => Some(reply.body),
        404 => None,
        other => panic!("storaged answered {other}"),
    }
}

/// Every key under `_catalog/` in storaged.
pub(crate) async fn catalog_keys(storaged: &Storaged) -> Vec<String> {
    let reply = Api::new(storaged.port)
        .get_ok("/v1/objects?prefix=_catalog%2F&limit=10000")
        .await;
    reply.json()["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["key"].as_str().unwrap().to_owned())
        .collect()
}
