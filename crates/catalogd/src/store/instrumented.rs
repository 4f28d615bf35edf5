//! A [`ManifestStore`] decorator that records the latency and failures of every call.

use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use manifest_codec::{DatasetName, ObjectKey, Record};
use prometheus::{HistogramVec, IntCounterVec};

use super::{CatalogFile, Listing, ManifestStore, Slot, StoreError, StoredRecord, WriteCondition};

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

fn op(slot: Slot, head: &'static str, version: &'static str) -> &'static str {
    match slot {
        Slot::Head => head,
        Slot::Version(_) => version,
    }
}

#[async_trait(?Send)]
impl<S: ManifestStore> ManifestStore for Instrumented<S> {
    async fn get(
        &self,
        name: &DatasetName,
        slot: Slot,
    ) -> Result<Option<StoredRecord>, StoreError> {
        let started = Instant::now();
        let result = self.inner.get(name, slot).await;
        self.record(op(slot, "get", "get_version"), started, &result);
        result
    }

    async fn put(
        &self,
        record: &Record,
        slot: Slot,
        condition: WriteCondition,
    ) -> Result<String, StoreError> {
        let started = Instant::now();
        let result = self.inner.put(record, slot, condition).await;
        self.record(op(slot, "put", "put_version"), started, &result);
        result
    }

    async fn delete(
        &self,
        name: &DatasetName,
        slot: Slot,
        etag: Option<&str>,
    ) -> Result<(), StoreError> {
        let started = Instant::now();
        let result = self.inner.delete(name, slot, etag).await;
        self.record(op(slot, "delete", "delete_version"), started, &result);
        result
    }

    async fn list(&self) -> Result<Listing, StoreError> {
        let started = Instant::now();
        let result = self.inner.list().await;
        self.record("list", started, &result);
        result
    }

    async fn list_versions(&self, name: &DatasetName) -> Result<Vec<i64>, StoreError> {
        let started = Instant::now();
        let result = self.inner.list_versions(name).await;
        self.record("list_versions", started, &result);
        result
    }

    async fn get_file(&self, file: CatalogFile) -> Result<Option<Bytes>, StoreError> {
        let started = Instant::now();
        let result = self.inner.get_file(file).await;
        self.record("get_checkpoint", started, &result);
        result
    }

    async fn put_file(&self, file: CatalogFile, bytes: Bytes) -> Result<(), StoreError> {
        let started = Instant::now();
        let result = self.inner.put_file(file, bytes).await;
        self.record("put_checkpoint", started, &result);
        result
    }

    async fn object_size(&self, key: &ObjectKey) -> Result<Option<u64>, StoreError> {
        let started = Instant::now();
        let result = self.inner.object_size(key).await;
        self.record("head_object", started, &result);
        result
    }
}
