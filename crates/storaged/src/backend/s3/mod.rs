//! The S3 backend: objects live in a bucket of an S3-compatible store (AWS S3, Ceph RGW,
//! MinIO, Garage, moto), through `object_store`'s `AmazonS3` (ADR 0016).
//!
//! storaged keeps no state of its own here: ETags and listings are the store's. The
//! register contract rests on the store's conditional writes (`If-None-Match: *` to
//! create, `If-Match` to update and delete), so [`S3Store::open`] probes for them and
//! refuses a store that ignores any.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use futures_util::{StreamExt, TryStreamExt};
use manifest_codec::ObjectKey;
use object_store::aws::{AmazonS3, AmazonS3Builder, S3ConditionalPut, S3CopyIfNotExists};
use object_store::list::{PaginatedListOptions, PaginatedListStore};
use object_store::path::Path;
use object_store::signer::Signer;
use object_store::{
    BackoffConfig, ClientOptions, GetOptions, GetRange, ObjectStore, ObjectStoreExt, RetryConfig,
};

use super::{
    Backend, Body, ByteStream, Condition, Content, ListPage, NewObject, ObjectMeta, ObjectReader,
    PutOutcome, StorageError,
};
use crate::config::S3Settings;

mod attrs;
mod delete;
mod keys;
mod probe;
mod upload;

use keys::Layout;

/// A bucket (and prefix) of an S3-compatible store.
#[derive(Debug, Clone)]
pub struct S3Store {
    store: Arc<AmazonS3>,
    layout: Layout,
    /// For the requests `object_store` cannot make (a conditional delete).
    http: reqwest::Client,
    /// With anonymous access (no credentials), the bucket's path-style URL: such requests
    /// go there unsigned rather than presigned.
    anonymous: Option<reqwest::Url>,
    /// Where the store is, for messages.
    endpoint: String,
}

impl S3Store {
    /// Connects to the bucket and checks that the store honours conditional writes; a
    /// store that does not is refused with a message naming the missing feature.
    pub async fn open(settings: &S3Settings) -> Result<Self, StorageError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let secret = settings
            .secret_access_key()
            .map_err(|e| StorageError::Config(e.to_string()))?;
        let mut builder = AmazonS3Builder::new()
            .with_region(&settings.region)
            .with_bucket_name(&settings.bucket)
            .with_allow_http(settings.allow_http)
            .with_conditional_put(S3ConditionalPut::ETagMatch)
            .with_copy_if_not_exists(S3CopyIfNotExists::Multipart)
            .with_retry(RetryConfig {
                backoff: BackoffConfig::default(),
                max_retries: 4,
                retry_timeout: settings.timeout,
            })
            .with_client_options(
                ClientOptions::new()
                    .with_allow_http(settings.allow_http)
                    .with_timeout(settings.timeout)
                    .with_connect_timeout(settings.timeout.min(Duration::from_secs(5))),
            );
        if let Some(endpoint) = &settings.endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        match (&settings.access_key_id, secret) {
            (Some(id), Some(secret)) => {
                builder = builder
                    .with_access_key_id(id)
                    .with_secret_access_key(secret);
            }
            (None, None) => builder = builder.with_skip_signature(true),
            _ => return Err(StorageError::Config(
                "s3: access_key_id and secret_access_key (or secret_access_key_file) go together"
                    .into(),
            )),
        }
        let store = builder
            .build()
            .map_err(|e| StorageError::Config(format!("s3: {e}")))?;
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .build()
            .map_err(|e| StorageError::Config(format!("s3: http client: {e}")))?;
        let anonymous = match (&settings.access_key_id, &settings.endpoint) {
            (Some(_), _) => None,
            (None, Some(endpoint)) => Some(format!(
                "{}/{}",
                endpoint.trim_end_matches('/'),
                settings.bucket
            )),
            (None, None) => Some(format!(
                "https://s3.{}.amazonaws.com/{}",
                settings.region, settings.bucket
            )),
        };
        let anonymous = anonymous
            .map(|url| reqwest::Url::parse(&url))
            .transpose()
            .map_err(|e| StorageError::Config(format!("s3: endpoint: {e}")))?;
        let this = Self {
            store: Arc::new(store),
            layout: Layout::new(&settings.prefix),
            http,
            anonymous,
            endpoint: settings
                .endpoint
                .clone()
                .unwrap_or_else(|| format!("AWS S3 ({})", settings.region)),
        };
        probe::probe(&this, &settings.bucket).await?;
        Ok(this)
    }

    /// The URL for a request `object_store` cannot make: presigned, or plain with
    /// anonymous access.
    async fn request_url(
        &self,
        method: reqwest::Method,
        path: &Path,
    ) -> Result<reqwest::Url, object_store::Error> {
        let Some(base) = &self.anonymous else {
            return self
                .store
                .signed_url(method, path, Duration::from_secs(300))
                .await;
        };
        let mut url = base.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments
                .pop_if_empty()
                .extend(path.parts().map(|p| p.as_ref().to_owned()));
        }
        Ok(url)
    }

    /// The current version's raw ETag, or `None` when the key is absent.
    async fn head_etag(
        &self,
        path: &Path,
        key: &ObjectKey,
    ) -> Result<Option<String>, StorageError> {
        match self.store.head(path).await {
            Ok(meta) => Ok(meta.e_tag),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(remote("reading an object's metadata", key, e)),
        }
    }

    /// The raw `If-Match` value for a condition on the current version: `Ok(None)` when
    /// the condition cannot hold, `Err(PreconditionFailed)` likewise for clarity.
    async fn if_match(
        &self,
        path: &Path,
        key: &ObjectKey,
        condition: Condition,
    ) -> Result<String, StorageError> {
        let current = self.head_etag(path, key).await?;
        let holds = match (&current, condition) {
            (Some(_), Condition::Exists) => true,
            (Some(raw), Condition::Matches(want)) => keys::tags(raw).0 == want,
            (Some(raw), Condition::MatchesS3(want)) => keys::tags(raw).1 == Some(want),
            (None, _) | (Some(_), Condition::None | Condition::Absent) => false,
        };
        match current {
            Some(raw) if holds => Ok(raw),
            _ => Err(precondition(key)),
        }
    }

    fn meta(key: &ObjectKey, meta: &object_store::ObjectMeta) -> ObjectMeta {
        let (etag, s3_tag) = keys::tags(meta.e_tag.as_deref().unwrap_or_default());
        ObjectMeta {
            key: key.clone(),
            size: meta.size,
            etag,
            s3_tag,
            last_modified: SystemTime::from(meta.last_modified),
        }
    }
}

/// A store failure that is neither "absent" nor "condition failed": the outcome of a
/// write is unknown unless the error says it was never sent.
fn remote(op: &'static str, key: &ObjectKey, e: object_store::Error) -> StorageError {
    match e {
        object_store::Error::NotFound { .. } => StorageError::NotFound {
            key: key.to_string(),
        },
        object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. } => {
            precondition(key)
        }
        other => StorageError::Remote {
            op,
            source: Box::new(other),
        },
    }
}

fn precondition(key: &ObjectKey) -> StorageError {
    StorageError::PreconditionFailed {
        key: key.to_string(),
    }
}

#[async_trait]
impl Backend for S3Store {
    async fn write(
        &self,
        key: &ObjectKey,
        new: NewObject,
        body: Body,
    ) -> Result<PutOutcome, StorageError> {
        upload::write(self, key, new, body).await
    }

    async fn assemble(
        &self,
        key: &ObjectKey,
        new: NewObject,
        parts: Vec<ObjectKey>,
    ) -> Result<PutOutcome, StorageError> {
        // Every part must exist before anything is written.
        let mut readers = Vec::with_capacity(parts.len());
        for part in &parts {
            readers.push(self.get(part).await?);
        }
        let body = futures_util::stream::iter(readers)
            .map(|reader| {
                let size = reader.meta.size;
                reader
                    .stream(0, size)
                    .map_err(|e| super::BodyError::Aborted(format!("reading a part: {e}")))
            })
            .flatten()
            .boxed();
        upload::write(self, key, new, body).await
    }

    async fn get(&self, key: &ObjectKey) -> Result<ObjectReader, StorageError> {
        let path = self.layout.path(key);
        let got = self
            .store
            .get_opts(&path, GetOptions::default())
            .await
            .map_err(|e| remote("reading an object", key, e))?;
        let meta = Self::meta(key, &got.meta);
        let attrs = attrs::from_store(&got.attributes);
        let content = StoreContent {
            store: self.store.clone(),
            path,
            e_tag: got.meta.e_tag.clone(),
            size: got.meta.size,
            whole: Some(got),
        };
        Ok(ObjectReader {
            meta,
            attrs,
            content: Box::new(content),
        })
    }

    async fn delete(&self, key: &ObjectKey, condition: Condition) -> Result<(), StorageError> {
        delete::delete(self, key, condition).await
    }

    async fn list(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<ListPage, StorageError> {
        let raw_prefix = self.layout.raw_prefix(prefix);
        let mut offset = after.map(|a| self.layout.raw_name(a));
        let mut objects = Vec::new();
        let mut page_token = None;
        loop {
            let opts = PaginatedListOptions {
                offset: offset.take(),
                max_keys: Some((limit + 1 - objects.len()).min(1000)),
                page_token: page_token.take(),
                ..PaginatedListOptions::default()
            };
            let page = self
                .store
                .list_paginated(
                    (!raw_prefix.is_empty()).then_some(raw_prefix.as_str()),
                    opts,
                )
                .await
                .map_err(|e| StorageError::Remote {
                    op: "listing objects",
                    source: Box::new(e),
                })?;
            for found in &page.result.objects {
                if let Some(key) = self.layout.key(&found.location) {
                    objects.push(Self::meta(&key, found));
                }
            }
            page_token = page.page_token;
            if objects.len() > limit || page_token.is_none() {
                break;
            }
        }
        let is_truncated = objects.len() > limit;
        objects.truncate(limit);
        Ok(ListPage {
            objects,
            is_truncated,
        })
    }

    async fn is_ready(&self) -> bool {
        let opts = PaginatedListOptions {
            max_keys: Some(1),
            ..PaginatedListOptions::default()
        };
        self.store.list_paginated(None, opts).await.is_ok()
    }

    fn store_etags(&self) -> bool {
        true
    }
}

/// One version of an object in the store: the GET that opened it streams the whole
/// object; a range is a second GET pinned to the same ETag, so an overwrite in between
/// fails the read instead of mixing versions.
struct StoreContent {
    store: Arc<AmazonS3>,
    path: Path,
    e_tag: Option<String>,
    size: u64,
    whole: Option<object_store::GetResult>,
}

impl std::fmt::Debug for StoreContent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreContent")
            .field("path", &self.path)
            .field("e_tag", &self.e_tag)
            .finish_non_exhaustive()
    }
}

impl Content for StoreContent {
    fn range(mut self: Box<Self>, start: u64, len: u64) -> ByteStream {
        let io = |e: object_store::Error| std::io::Error::other(e);
        if len == 0 {
            return futures_util::stream::empty().boxed();
        }
        if start == 0 && len == self.size {
            if let Some(whole) = self.whole.take() {
                return whole.into_stream().map_err(io).boxed();
            }
        }
        drop(self.whole.take());
        let opts = GetOptions {
            range: Some(GetRange::Bounded(start..start + len)),
            if_match: self.e_tag.clone(),
            ..GetOptions::default()
        };
        let store = self.store.clone();
        let path = self.path.clone();
        futures_util::stream::once(async move { store.get_opts(&path, opts).await })
            .map_ok(object_store::GetResult::into_stream)
            .try_flatten()
            .map_err(io)
            .boxed()
    }
}

#[cfg(test)]
mod tests;
