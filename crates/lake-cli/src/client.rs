//! The two services over HTTP (awc, as the services use): storaged's object API and
//! catalogd's dataset API. Errors carry the server's own message.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use awc::http::{header, Method, StatusCode};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::Deserialize;
use serde_json::Value;

use crate::error::{LakeError, Result};

/// What stays unescaped in a key segment or a query value: RFC 3986's unreserved set.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A key escaped for a URL path: each segment escaped, `/` kept.
pub fn encode_key(key: &str) -> String {
    key.split('/')
        .map(|s| utf8_percent_encode(s, UNRESERVED).to_string())
        .collect::<Vec<_>>()
        .join("/")
}

/// A query value, escaped.
pub fn encode_query(value: &str) -> String {
    utf8_percent_encode(value, UNRESERVED).to_string()
}

/// Largest JSON answer read (a listing page of 10,000 keys is a few MiB).
const MAX_JSON: usize = 256 * 1024 * 1024;

/// One service: its base URL, its bearer token, one client.
#[derive(Clone)]
pub struct Service {
    name: &'static str,
    base: String,
    token: Option<String>,
    client: awc::Client,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("name", &self.name)
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl Service {
    /// A client for `name` at `base` (speaking TLS with `tls` for `https://`). Transfers
    /// have no overall deadline (a 2 GiB upload takes what it takes); connecting does.
    pub fn new(
        name: &'static str,
        base: &str,
        token: Option<String>,
        tls: Option<Arc<service_kit::tls::ClientConfig>>,
    ) -> Self {
        let mut connector = awc::Connector::new().timeout(Duration::from_secs(10));
        if let Some(tls) = tls {
            connector = connector.rustls_0_23(tls);
        }
        let client = awc::Client::builder()
            .disable_timeout()
            .disable_redirects()
            .connector(connector)
            .finish();
        Self {
            name,
            base: base.trim_end_matches('/').to_owned(),
            token,
            client,
        }
    }

    /// The service's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn request(&self, method: Method, path: &str) -> awc::ClientRequest {
        let req = self.client.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(t) => req.insert_header((header::AUTHORIZATION, format!("Bearer {t}"))),
            None => req,
        }
    }

    fn unreachable(&self, e: impl std::fmt::Display) -> LakeError {
        LakeError::Unreachable {
            service: self.name,
            url: self.base.clone(),
            message: e.to_string(),
        }
    }

    /// The error an unsuccessful answer stands for, with the server's message.
    async fn error(&self, mut res: awc::ClientResponse) -> LakeError {
        let status = res.status();
        let body = res.body().limit(1 << 20).await.unwrap_or_default();
        let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let message = json["message"].as_str().map_or_else(
            || String::from_utf8_lossy(&body).trim().to_owned(),
            str::to_owned,
        );
        LakeError::Server {
            service: self.name,
            status: status.as_u16(),
            code: json["error"].as_str().unwrap_or_default().to_owned(),
            message: if message.is_empty() {
                status.canonical_reason().unwrap_or("error").to_owned()
            } else {
                message
            },
        }
    }

    async fn send(
        &self,
        req: awc::ClientRequest,
        body: Option<Bytes>,
    ) -> Result<awc::ClientResponse> {
        let sent = match body {
            Some(b) => req.send_body(b).await,
            None => req.send().await,
        };
        sent.map_err(|e| self.unreachable(e))
    }

    async fn read_json<T: serde::de::DeserializeOwned>(
        &self,
        mut res: awc::ClientResponse,
    ) -> Result<T> {
        let body = res
            .body()
            .limit(MAX_JSON)
            .await
            .map_err(|e| self.unreachable(e))?;
        serde_json::from_slice(&body)
            .map_err(|e| self.unreachable(format!("answered with unexpected JSON: {e}")))
    }

    /// GET `path` as JSON.
    pub async fn get_json(&self, path: &str) -> Result<Value> {
        let res = self.send(self.request(Method::GET, path), None).await?;
        match res.status() {
            StatusCode::OK => self.read_json(res).await,
            _ => Err(self.error(res).await),
        }
    }

    /// POST `body` as JSON to `path` (no body when `None`); the status and the JSON
    /// answer of a success.
    pub async fn post_json(&self, path: &str, body: Option<&Value>) -> Result<(u16, Value)> {
        let req = self.request(Method::POST, path);
        let res = match body {
            Some(body) => {
                let req = req.insert_header((header::CONTENT_TYPE, "application/json"));
                self.send(req, Some(Bytes::from(body.to_string()))).await?
            }
            None => self.send(req, None).await?,
        };
        if res.status().is_success() {
            let status = res.status().as_u16();
            Ok((status, self.read_json(res).await?))
        } else {
            Err(self.error(res).await)
        }
    }

    /// DELETE `path`.
    pub async fn delete(&self, path: &str) -> Result<()> {
        let res = self.send(self.request(Method::DELETE, path), None).await?;
        if res.status().is_success() {
            Ok(())
        } else {
            Err(self.error(res).await)
        }
    }
}

/// An object as a listing shows it.
#[derive(Debug, Clone, Deserialize)]
pub struct ListedObject {
    pub key: String,
    pub size: u64,
    pub etag: String,
    pub last_modified: String,
}

/// One page of a listing.
#[derive(Debug, Deserialize)]
pub struct ListPage {
    pub objects: Vec<ListedObject>,
    #[serde(default)]
    pub common_prefixes: Vec<String>,
    pub next_continuation_token: Option<String>,
}

/// What a HEAD says about an object.
#[derive(Debug, Clone)]
pub struct Head {
    pub size: u64,
    pub etag: String,
    pub last_modified: Option<String>,
    pub content_type: Option<String>,
}

/// storaged's object API.
#[derive(Debug, Clone)]
pub struct Storaged(pub Service);

impl Storaged {
    /// One page of the listing under `prefix`.
    pub async fn list_page(
        &self,
        prefix: &str,
        delimiter: Option<&str>,
        token: Option<&str>,
    ) -> Result<ListPage> {
        let mut path = format!("/v1/objects?limit=10000&prefix={}", encode_query(prefix));
        if let Some(d) = delimiter {
            path.push_str("&delimiter=");
            path.push_str(&encode_query(d));
        }
        if let Some(t) = token {
            path.push_str("&continuation_token=");
            path.push_str(&encode_query(t));
        }
        let res = self
            .0
            .send(self.0.request(Method::GET, &path), None)
            .await?;
        if res.status() != StatusCode::OK {
            return Err(self.0.error(res).await);
        }
        self.0.read_json(res).await
    }

    /// Every object under `prefix`, in key order, walking every page.
    pub async fn list_all(&self, prefix: &str) -> Result<Vec<ListedObject>> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self.list_page(prefix, None, token.as_deref()).await?;
            out.extend(page.objects);
            match page.next_continuation_token {
                Some(t) => token = Some(t),
                None => return Ok(out),
            }
        }
    }

    fn object_path(key: &str) -> String {
        format!("/v1/objects/{}", encode_key(key))
    }

    /// The full URL of an object, as a plain HTTP reader (DuckDB) would fetch it.
    pub fn object_url(&self, key: &str) -> String {
        format!("{}{}", self.0.base, Self::object_path(key))
    }

    /// What storaged has under `key`, if anything.
    pub async fn head(&self, key: &str) -> Result<Option<Head>> {
        let res = self
            .0
            .send(self.0.request(Method::HEAD, &Self::object_path(key)), None)
            .await?;
        match res.status() {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => return Ok(None),
            _ => return Err(self.0.error(res).await),
        }
        let h = |name: header::HeaderName| {
            res.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        Ok(Some(Head {
            size: h(header::CONTENT_LENGTH)
                .and_then(|v| v.parse().ok())
                .unwrap_or_default(),
            etag: h(header::ETAG)
                .unwrap_or_default()
                .trim_matches('"')
                .to_owned(),
            last_modified: h(header::LAST_MODIFIED),
            content_type: h(header::CONTENT_TYPE),
        }))
    }

    /// Opens `key` for reading (`range` is a `Range` header value); `None` on 404.
    pub async fn get(&self, key: &str, range: Option<&str>) -> Result<Option<awc::ClientResponse>> {
        let mut req = self.0.request(Method::GET, &Self::object_path(key));
        if let Some(r) = range {
            req = req.insert_header((header::RANGE, r));
        }
        let res = self.0.send(req, None).await?;
        match res.status() {
            StatusCode::OK | StatusCode::PARTIAL_CONTENT => Ok(Some(res)),
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(self.0.error(res).await),
        }
    }

    /// A byte range of `key` read whole (footers and other small reads).
    pub async fn get_range(&self, key: &str, range: &str) -> Result<Bytes> {
        let Some(mut res) = self.get(key, Some(range)).await? else {
            return Err(LakeError::Invalid(format!("{key}: no such object")));
        };
        res.body()
            .limit(MAX_JSON)
            .await
            .map_err(|e| self.0.unreachable(e))
    }

    /// Stores `len` bytes of `body` under `key`. storaged writes atomically: if the body
    /// breaks off (Ctrl-C, a dead connection) nothing becomes visible.
    pub async fn put_stream<S, E>(&self, key: &str, len: Option<u64>, body: S) -> Result<()>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + 'static,
        E: Into<Box<dyn std::error::Error>> + 'static,
    {
        let req = self.0.request(Method::PUT, &Self::object_path(key));
        let sent = match len {
            Some(n) => {
                req.send_body(awc::body::SizedStream::new(
                    n,
                    body.map(|c| c.map_err(Into::into)),
                ))
                .await
            }
            None => req.send_stream(body).await,
        };
        let res = sent.map_err(|e| self.0.unreachable(e))?;
        if res.status().is_success() {
            Ok(())
        } else {
            Err(self.0.error(res).await)
        }
    }

    /// Stores `body` under `key` (small objects, sent in one piece).
    pub async fn put_bytes(&self, key: &str, body: Bytes) -> Result<()> {
        let res = self
            .0
            .send(
                self.0.request(Method::PUT, &Self::object_path(key)),
                Some(body),
            )
            .await?;
        if res.status().is_success() {
            Ok(())
        } else {
            Err(self.0.error(res).await)
        }
    }

    /// Removes `key`.
    pub async fn delete(&self, key: &str) -> Result<()> {
        self.0.delete(&Self::object_path(key)).await
    }
}

/// catalogd's dataset API.
#[derive(Debug, Clone)]
pub struct Catalogd(pub Service);

/// A local file's content hash as storaged's ETag spells it (BLAKE3, first 128 bits, hex),
/// so `--update` can tell an unchanged file without transferring it.
pub fn file_etag(path: &Path) -> Result<String> {
    let mut hasher = blake3::Hasher::new();
    let mut file = std::fs::File::open(path).map_err(|e| LakeError::io(path.display(), e))?;
    std::io::copy(&mut file, &mut hasher).map_err(|e| LakeError::io(path.display(), e))?;
    Ok(hasher.finalize().to_hex()[..32].to_owned())
}
