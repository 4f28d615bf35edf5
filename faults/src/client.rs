//! A small HTTP client over awc for the tests: every call returns status, headers and body.

use std::time::Duration;

use awc::http::{Method, StatusCode};
use bytes::Bytes;
use serde_json::Value;

/// A complete HTTP response.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: awc::http::header::HeaderMap,
    pub body: Bytes,
}

impl Reply {
    /// The body as JSON (`Value::Null` when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn code(&self) -> u16 {
        self.status.as_u16()
    }
}

/// A client for one service at `127.0.0.1:port`.
#[derive(Clone)]
pub struct Api {
    base: String,
    client: awc::Client,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl Api {
    pub fn new(port: u16) -> Self {
        Self {
            base: format!("http://127.0.0.1:{port}"),
            client: awc::Client::builder()
                .timeout(Duration::from_secs(30))
                .disable_redirects()
                .finish(),
        }
    }

    pub fn request(&self, method: Method, path: &str) -> awc::ClientRequest {
        self.client.request(method, format!("{}{path}", self.base))
    }

    /// Sends `req` with `body` and reads the whole reply; a transport error is `Err`.
    pub async fn send(
        &self,
        req: awc::ClientRequest,
        body: Option<Bytes>,
    ) -> Result<Reply, String> {
        let sent = match body {
            Some(b) => req.send_body(b).await,
            None => req.send().await,
        };
        let mut res = sent.map_err(|e| e.to_string())?;
        let body = res.body().limit(1 << 30).await.map_err(|e| e.to_string())?;
        Ok(Reply {
            status: res.status(),
            headers: res.headers().clone(),
            body,
        })
    }

    pub async fn get(&self, path: &str) -> Result<Reply, String> {
        self.send(self.request(Method::GET, path), None).await
    }

    /// GET that must get an answer.
    pub async fn get_ok(&self, path: &str) -> Reply {
        self.get(path)
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    pub async fn put(&self, path: &str, body: impl Into<Bytes>) -> Result<Reply, String> {
        self.send(self.request(Method::PUT, path), Some(body.into()))
            .await
    }

    /// POST /v1/datasets with `body` as JSON.
    pub async fn register(&self, body: &Value) -> Result<Reply, String> {
        self.send(
            self.request(Method::POST, "/v1/datasets")
                .insert_header(("content-type", "application/json")),
            Some(serde_json::to_vec(body).unwrap().into()),
        )
        .await
    }
}

/// A register request for `name` with `n` objects whose keys carry `tag`.
pub fn register_body(name: &str, fingerprint: &str, n: usize, tag: &str) -> Value {
    let objects: Vec<Value> = (0..n)
        .map(|i| serde_json::json!({"key": format!("lake/{name}/{tag}-{i}.parquet"), "size": 100 + i}))
        .collect();
    serde_json::json!({"name": name, "schema_fingerprint": fingerprint, "objects": objects, "row_count": n})
}

/// Every dataset a catalogd lists, walking all pages.
pub async fn list_all(api: &Api) -> Vec<Value> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let path = match &token {
            Some(t) => format!("/v1/datasets?limit=1000&page_token={t}"),
            None => "/v1/datasets?limit=1000".to_owned(),
        };
        let reply = api.get_ok(&path).await;
        assert_eq!(reply.code(), 200, "{path}: {:?}", reply.json());
        let json = reply.json();
        out.extend(json["datasets"].as_array().unwrap().iter().cloned());
        match json["next_page_token"].as_str() {
            Some(t) => token = Some(t.to_owned()),
            None => return out,
        }
    }
}

/// Every object storaged lists under `prefix`, as (key, ETag), walking all pages.
pub async fn objects(storaged: &Api, prefix: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut path = format!("/v1/objects?limit=1000&prefix={prefix}");
        if let Some(t) = &token {
            path.push_str("&page_token=");
            path.push_str(t);
        }
        let json = storaged.get_ok(&path).await.json();
        for o in json["objects"].as_array().expect("a listing") {
            out.push((
                o["key"].as_str().unwrap().to_owned(),
                o["etag"].as_str().unwrap().to_owned(),
            ));
        }
        match json["next_page_token"].as_str() {
            Some(t) => token = Some(t.to_owned()),
            None => return out,
        }
    }
}

/// The manifest of `name` as storaged holds it (bytes), if any.
pub async fn stored_manifest(storaged: &Api, name: &str) -> Option<Bytes> {
    let reply = storaged
        .get_ok(&format!("/v1/objects/_catalog/manifests/{name}.parquet"))
        .await;
    match reply.code() {
        200 => Some(reply.body),
        404 => None,
        other => panic!("storaged answered {other} for {name}'s manifest"),
    }
}

/// The version storaged holds for `name` (0 when it holds none).
pub async fn stored_version(storaged: &Api, name: &str) -> i64 {
    match stored_manifest(storaged, name).await {
        Some(bytes) => {
            manifest_codec::decode(&bytes)
                .unwrap_or_else(|e| panic!("{name}'s manifest is torn: {e}"))
                .version
        }
        None => 0,
    }
}

/// TCP connections in state ESTABLISHED whose remote end is `127.0.0.1:port` (the
/// connections clients hold to a server on that port).
pub fn established_to(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    let remote = format!("0100007F:{port:04X}");
    table
        .lines()
        .skip(1)
        .filter(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            cols.len() > 3 && cols[2] == remote && cols[3] == "01"
        })
        .count()
}
