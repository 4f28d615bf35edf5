//! [`ManifestStore`] over storaged's HTTP API (awc).
//!
//! Every call has a deadline. Failures are classified by what they prove: a refused
//! connection, a 4xx or a 507 means nothing was written; a timeout, a broken connection or
//! a 500 (storaged can fail after the rename, while fsyncing the directory) means the
//! outcome is unknown.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use awc::error::SendRequestError;
use awc::http::{header, StatusCode};
use bytes::Bytes;
use manifest_codec::layout::{version_from_key, versions_prefix, MANIFEST_PREFIX};
use manifest_codec::{name_from_manifest_key, DatasetName, ObjectKey, Record};
use serde::Deserialize;

use super::{
    CatalogFile, ListedManifest, Listing, ManifestStore, Slot, StoreError, StoredRecord,
    WriteCondition,
};

/// Largest manifest accepted from storaged (a 100,000-object manifest is a few MiB).
const MAX_MANIFEST_BYTES: usize = 256 * 1024 * 1024;

/// Largest checkpoint read (100,000 datasets of 10 objects take ~10 MiB).
const MAX_CHECKPOINT_BYTES: usize = 2 * 1024 * 1024 * 1024;

/// A checkpoint can be large: its transfer gets at least this long.
const CHECKPOINT_TIMEOUT: Duration = Duration::from_secs(60);

/// storaged as a manifest store.
#[derive(Clone)]
pub struct HttpManifestStore {
    client: awc::Client,
    base: String,
    token: Option<String>,
    timeout: Duration,
}

impl std::fmt::Debug for HttpManifestStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpManifestStore")
            .field("base", &self.base)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

fn client(timeout: Duration, tls: Option<Arc<service_kit::tls::ClientConfig>>) -> awc::Client {
    let builder = awc::Client::builder().timeout(timeout).disable_redirects();
    match tls {
        Some(tls) => builder
            .connector(awc::Connector::new().rustls_0_23(tls))
            .finish(),
        None => builder.finish(),
    }
}

enum Outcome {
    NotWritten(String),
    Unknown(String),
}

impl From<Outcome> for StoreError {
    fn from(o: Outcome) -> Self {
        match o {
            Outcome::NotWritten(m) => StoreError::Unavailable(m),
            Outcome::Unknown(m) => StoreError::Unknown(m),
        }
    }
}

impl HttpManifestStore {
    /// A client for the storaged at `base` (e.g. `http://127.0.0.1:8101`); every call
    /// must finish within `timeout`.
    pub fn new(base: &str, token: Option<String>, timeout: Duration) -> Self {
        Self {
            client: client(timeout, None),
            base: base.trim_end_matches('/').to_owned(),
            token,
            timeout,
        }
    }

    /// The same store speaking HTTPS with `tls` (which says which CAs to trust).
    #[must_use]
    pub fn with_tls(mut self, tls: Arc<service_kit::tls::ClientConfig>) -> Self {
        self.client = client(self.timeout, Some(tls));
        self
    }

    fn url(&self, key: &str) -> String {
        // Catalog keys (valid names, digits) need no escaping in a URL path.
        format!("{}/v1/objects/{key}", self.base)
    }

    /// Every key (with its quoted entity tag) under `prefix`, walking every page.
    async fn list_prefix(&self, prefix: &str) -> Result<Vec<(String, String)>, StoreError> {
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut url = format!(
                "{}/v1/objects?prefix={}&limit=10000",
                self.base,
                percent_encoding::utf8_percent_encode(prefix, percent_encoding::NON_ALPHANUMERIC)
            );
            if let Some(token) = &token {
                url.push_str("&continuation_token=");
                url.push_str(token);
            }
            let mut res = self
                .request(awc::http::Method::GET, &url)
                .send()
                .await
                .map_err(|e| StoreError::from(Self::send_error(&e, false)))?;
            if res.status() != StatusCode::OK {
                return Err(StoreError::Unavailable(format!(
                    "listing {prefix}: {}",
                    Self::status_message(res.status())
                )));
            }
            let page: ListPage =
                tokio::time::timeout(self.timeout, res.json().limit(64 * 1024 * 1024))
                    .await
                    .map_err(|_| StoreError::Unavailable(format!("listing {prefix} timed out")))?
                    .map_err(|e| {
                        StoreError::Unavailable(format!("listing {prefix} failed: {e}"))
                    })?;
            // Listings carry the bare tag; headers (and so `StoredRecord`) quote it.
            keys.extend(
                page.objects
                    .into_iter()
                    .map(|o| (o.key, format!("\"{}\"", o.etag))),
            );
            match page.next_continuation_token {
                Some(next) => token = Some(next),
                None => return Ok(keys),
            }
        }
    }

    async fn get_bytes(
        &self,
        key: &str,
        limit: usize,
    ) -> Result<Option<(Bytes, String)>, StoreError> {
        let timeout = if limit > MAX_MANIFEST_BYTES {
            self.timeout.max(CHECKPOINT_TIMEOUT)
        } else {
            self.timeout
        };
        let mut res = self
            .request(awc::http::Method::GET, &self.url(key))
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| StoreError::Unavailable(format!("reading {key}: {e}")))?;
        match res.status() {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => return Ok(None),
            status => {
                return Err(StoreError::Unavailable(format!(
                    "reading {key}: {}",
                    Self::status_message(status)
                )))
            }
        }
        let etag = etag_of(&res)?;
        let body = tokio::time::timeout(timeout, res.body().limit(limit))
            .await
            .map_err(|_| StoreError::Unavailable(format!("reading {key} timed out")))?
            .map_err(|e| StoreError::Unavailable(format!("reading {key} failed: {e}")))?;
        Ok(Some((body, etag)))
    }

    fn request(&self, method: awc::http::Method, url: &str) -> awc::ClientRequest {
        let req = self.client.request(method, url);
        match &self.token {
            Some(token) => req.insert_header((header::AUTHORIZATION, format!("Bearer {token}"))),
            None => req,
        }
    }

    fn send_error(e: &SendRequestError, writes: bool) -> Outcome {
        match e {
            SendRequestError::Connect(_) | SendRequestError::Url(_) => {
                Outcome::NotWritten(format!("cannot reach storaged: {e}"))
            }
            _ if !writes => Outcome::NotWritten(format!("storaged read failed: {e}")),
            _ => Outcome::Unknown(format!("storaged call failed mid-way: {e}")),
        }
    }

    fn status_message(status: StatusCode) -> String {
        if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
            format!("storaged rejected the credentials ({status}); check storaged_token")
        } else {
            format!("storaged answered {status}")
        }
    }

    fn status_error(status: StatusCode) -> Outcome {
        let message = Self::status_message(status);
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            Outcome::Unknown(message)
        } else {
            Outcome::NotWritten(message)
        }
    }
}

#[derive(Deserialize)]
struct ListPage {
    objects: Vec<ListedObject>,
    next_continuation_token: Option<String>,
}

#[derive(Deserialize)]
struct ListedObject {
    key: String,
    etag: String,
}

fn etag_of(res: &awc::ClientResponse<impl Sized>) -> Result<String, StoreError> {
    res.headers()
        .get(header::ETAG)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .ok_or_else(|| StoreError::Unknown("storaged answered without an ETag".into()))
}

/// Escapes each segment of a key for a URL path (keys may hold spaces, `?`, `#`, `%`, any
/// Unicode); the `/` between segments stays.
fn encode_key(key: &str) -> String {
    key.split('/')
        .map(|s| {
            percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[async_trait(?Send)]
impl ManifestStore for HttpManifestStore {
    async fn get(
        &self,
        name: &DatasetName,
        slot: Slot,
    ) -> Result<Option<StoredRecord>, StoreError> {
        let key = slot.key(name);
        let Some((body, etag)) = self.get_bytes(key.as_str(), MAX_MANIFEST_BYTES).await? else {
            return Ok(None);
        };
        let record =
            manifest_codec::decode_record(&body).map_err(|source| StoreError::Corrupt {
                key: key.to_string(),
                source,
            })?;
        super::check_slot(&key, name, slot, &record)?;
        Ok(Some(StoredRecord { record, etag }))
    }

    async fn put(
        &self,
        record: &Record,
        slot: Slot,
        condition: WriteCondition,
    ) -> Result<String, StoreError> {
        let body = manifest_codec::encode_record(record).map_err(StoreError::Encode)?;
        let key = slot.key(&record.manifest.name);
        let req = self.request(awc::http::Method::PUT, &self.url(key.as_str()));
        let req = match &condition {
            WriteCondition::Absent => req.insert_header((header::IF_NONE_MATCH, "*")),
            WriteCondition::Matches(etag) => req.insert_header((header::IF_MATCH, etag.as_str())),
        };
        let mut res = req
            .send_body(body)
            .await
            .map_err(|e| StoreError::from(Self::send_error(&e, true)))?;
        // Drain the small JSON body so the pooled connection can be reused.
        let _ = tokio::time::timeout(self.timeout, res.body().limit(64 * 1024)).await;
        match res.status() {
            StatusCode::OK | StatusCode::CREATED => etag_of(&res),
            StatusCode::PRECONDITION_FAILED => Err(StoreError::PreconditionFailed),
            status => Err(Self::status_error(status).into()),
        }
    }

    async fn delete(
        &self,
        name: &DatasetName,
        slot: Slot,
        etag: Option<&str>,
    ) -> Result<(), StoreError> {
        let key = slot.key(name);
        let req = self.request(awc::http::Method::DELETE, &self.url(key.as_str()));
        let req = match etag {
            Some(etag) => req.insert_header((header::IF_MATCH, etag)),
            None => req,
        };
        let mut res = req
            .send()
            .await
            .map_err(|e| StoreError::from(Self::send_error(&e, true)))?;
        let _ = tokio::time::timeout(self.timeout, res.body().limit(64 * 1024)).await;
        match res.status() {
            StatusCode::NO_CONTENT | StatusCode::NOT_FOUND => Ok(()),
            StatusCode::PRECONDITION_FAILED => Err(StoreError::PreconditionFailed),
            status => Err(Self::status_error(status).into()),
        }
    }

    async fn list(&self) -> Result<Listing, StoreError> {
        let mut listing = Listing::default();
        for (key, etag) in self.list_prefix(MANIFEST_PREFIX).await? {
            match name_from_manifest_key(&key) {
                Some(name) => listing.manifests.push(ListedManifest { name, etag }),
                None => listing.foreign.push(key),
            }
        }
        Ok(listing)
    }

    async fn list_versions(&self, name: &DatasetName) -> Result<Vec<i64>, StoreError> {
        let listed = self.list_prefix(&versions_prefix(name)).await?;
        Ok(listed
            .iter()
            .filter_map(|(key, _)| version_from_key(name, key))
            .collect())
    }

    async fn get_file(&self, file: CatalogFile) -> Result<Option<Bytes>, StoreError> {
        Ok(self
            .get_bytes(file.key(), MAX_CHECKPOINT_BYTES)
            .await?
            .map(|(bytes, _)| bytes))
    }

    async fn put_file(&self, file: CatalogFile, bytes: Bytes) -> Result<(), StoreError> {
        let url = self.url(file.key());
        let mut res = self
            .request(awc::http::Method::PUT, &url)
            .timeout(self.timeout.max(CHECKPOINT_TIMEOUT))
            .send_body(bytes)
            .await
            .map_err(|e| StoreError::from(Self::send_error(&e, true)))?;
        let _ = tokio::time::timeout(self.timeout, res.body().limit(64 * 1024)).await;
        match res.status() {
            StatusCode::OK | StatusCode::CREATED => Ok(()),
            status => Err(Self::status_error(status).into()),
        }
    }

    async fn object_size(&self, key: &ObjectKey) -> Result<Option<u64>, StoreError> {
        let url = format!("{}/v1/objects/{}", self.base, encode_key(key.as_str()));
        let res = self
            .request(awc::http::Method::HEAD, &url)
            .send()
            .await
            .map_err(|e| StoreError::Unavailable(format!("checking {key}: {e}")))?;
        match res.status() {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => return Ok(None),
            StatusCode::FORBIDDEN => return Err(StoreError::Forbidden(key.to_string())),
            status => {
                return Err(StoreError::Unavailable(format!(
                    "checking {key}: {}",
                    Self::status_message(status)
                )))
            }
        }
        res.headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .map(Some)
            .ok_or_else(|| {
                StoreError::Unavailable(format!("checking {key}: storaged sent no Content-Length"))
            })
    }
}
