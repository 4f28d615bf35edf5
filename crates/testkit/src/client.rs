//! One small HTTP client over awc: every call returns status, headers and the whole body.

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

    /// A header's value, if present and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The status code as a number.
    pub fn code(&self) -> u16 {
        self.status.as_u16()
    }

    /// Asserts an error reply's status and JSON `error` code; returns its message.
    pub fn assert_error(&self, status: u16, code: &str) -> String {
        assert_eq!(
            self.code(),
            status,
            "body: {:?}",
            String::from_utf8_lossy(&self.body)
        );
        let json = self.json();
        assert_eq!(json["error"], code, "{json}");
        json["message"].as_str().unwrap_or_default().to_owned()
    }
}

/// A client for one service.
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
    /// A client for the service at `127.0.0.1:port`.
    pub fn new(port: u16) -> Self {
        Self::at(&format!("http://127.0.0.1:{port}"))
    }

    /// A client for the service at `base` (`http://host:port`, no trailing slash needed).
    pub fn at(base: &str) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            client: awc::Client::builder()
                .timeout(Duration::from_secs(120))
                .disable_redirects()
                .finish(),
        }
    }

    /// A client for the HTTPS service at `base` that trusts the CA certificates of the
    /// PEM `ca_file` only.
    pub fn at_with_ca(base: &str, ca_file: &std::path::Path) -> Self {
        let tls = service_kit::tls::client_config(Some(ca_file))
            .unwrap_or_else(|e| panic!("tls client configuration: {e}"));
        Self {
            base: base.trim_end_matches('/').to_owned(),
            client: awc::Client::builder()
                .timeout(Duration::from_secs(120))
                .disable_redirects()
                .connector(awc::Connector::new().rustls_0_23(std::sync::Arc::new(tls)))
                .finish(),
        }
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// A request for `path` (which starts with `/`).
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

    /// GET `path`.
    pub async fn get(&self, path: &str) -> Result<Reply, String> {
        self.send(self.request(Method::GET, path), None).await
    }

    /// GET that must get an answer.
    pub async fn get_ok(&self, path: &str) -> Reply {
        self.get(path)
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    /// PUT `body` to `path`.
    pub async fn put(&self, path: &str, body: impl Into<Bytes>) -> Result<Reply, String> {
        self.send(self.request(Method::PUT, path), Some(body.into()))
            .await
    }

    /// DELETE `path`.
    pub async fn delete(&self, path: &str) -> Result<Reply, String> {
        self.send(self.request(Method::DELETE, path), None).await
    }

    /// POST `body` to `path` as JSON.
    pub async fn post_json(&self, path: &str, body: &Value) -> Result<Reply, String> {
        let bytes = serde_json::to_vec(body).map_err(|e| e.to_string())?;
        self.send(
            self.request(Method::POST, path)
                .insert_header(("content-type", "application/json")),
            Some(bytes.into()),
        )
        .await
    }

    /// POST /v1/datasets with `body` as JSON.
    pub async fn register(&self, body: &Value) -> Result<Reply, String> {
        self.post_json("/v1/datasets", body).await
    }

    /// A register that must get an answer.
    pub async fn register_ok(&self, body: &Value) -> Reply {
        self.register(body)
            .await
            .unwrap_or_else(|e| panic!("POST /v1/datasets: {e}"))
    }
}
