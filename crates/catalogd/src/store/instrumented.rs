//! A [`ManifestStore`] decorator that records the latency and failures of every call.

use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use manifest_codec::{DatasetName, Manifest};
use prometheus::{HistogramVec, IntCounterVec};

use super::{Listing, ManifestStore, StoreError, StoredManifest, WriteCondition};

/// Wraps a store, observing `latency{op}` and counting `errors{op, kind}`.
#[derive(Debug)]
pub struct Instrumented<S> {
    inner: S,
    latency: HistogramVec,
    errors: IntCounterVec,
}

impl<S> Instrumented<S> {
    /// Instruments `inner` with the given metric families.
    pub fn new(inner: S, latency: HistogramVec, errors: IntCounterVec) -> Self {
        Self {
            inner,
            latency,
            errors,
        }
    }

    fn record<T>(&self, op: &str, started: Instant, result: &Result<T, StoreError>) {
        self.latency
            .with_label_values(&[op])
            .observe(started.elapsed().as_secs_f64());
        if let Err(e) = result {
            self.errors.with_label_values(&[op, e.kind()]).inc();
        }
    }
}

#[async_trait(?Send)]
impl<S: ManifestStore> ManifestStore for Instrumented<S> {
    async fn get(&self, name: &DatasetName) -> Result<Option<StoredManifest>, StoreError> {
        let started = Instant::now();
        let result = self.inner.get(name).await;
        self.record("get", started, &result);
        result
    }

    async fn put(
        &self,
        manifest: &Manifest,
        condition: WriteCondition,
    ) -> Result<String, StoreError> {
        let started = Instant::now();
        let result = self.inner.put(manifest, condition).await;
        self.record("put", started, &result);
        result
    }

    async fn delete(&self, name: &DatasetName, etag: &str) -> Result<(), StoreError> {
        let started = Instant::now();
        let result = self.inner.delete(name, etag).await;
        self.record("delete", started, &result);
        result
    }

    async fn list(&self) -> Result<Listing, StoreError> {
        let started = Instant::now();
        let result = self.inner.list().await;
        self.record("list", started, &result);
        result
    }

    async fn get_checkpoint(&self) -> Result<Option<Bytes>, StoreError> {
        let started = Instant::now();
        let result = self.inner.get_checkpoint().await;
        self.record("get_checkpoint", started, &result);
        result
    }

    async fn put_checkpoint(&self, bytes: Bytes) -> Result<(), StoreError> {
        let started = Instant::now();
        let result = self.inner.put_checkpoint(bytes).await;
        self.record("put_checkpoint", started, &result);
        result
    }
}
