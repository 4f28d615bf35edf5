//! The start-up probe. The register contract rests on the store's conditional writes, and
//! a store that ignores a condition does not say so — it overwrites or deletes — so each
//! one is tried on a scratch object and a store that gets any wrong is refused, naming
//! every condition it got wrong.

use std::time::SystemTime;

use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};
use reqwest::{Method, StatusCode};

use super::S3Store;
use crate::backend::StorageError;

const WRONG_TAG: &str = "\"00000000000000000000000000000000\"";

/// Creates a scratch object, then checks that a second create, an update with a wrong
/// `If-Match` and a delete with a wrong `If-Match` are refused, and that an update with
/// the object's own ETag is accepted.
pub(super) async fn probe(store: &S3Store, bucket: &str) -> Result<(), StorageError> {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let path = store
        .layout
        .scratch(&format!("probe-{}-{nanos}", std::process::id()));
    let unreachable = |e: &dyn std::fmt::Display| {
        StorageError::Config(format!(
            "cannot write to bucket {bucket:?} at {}: {e}",
            store.endpoint
        ))
    };
    let payload = || PutPayload::from_static(b"probe");
    let update = |tag: &str| {
        PutOptions::from(PutMode::Update(UpdateVersion {
            e_tag: Some(tag.to_owned()),
            version: None,
        }))
    };
    let s3 = &store.store;
    let created = s3
        .put_opts(&path, payload(), PutMode::Create.into())
        .await
        .map_err(|e| unreachable(&e))?;

    let mut ignored = Vec::new();
    match s3.put_opts(&path, payload(), PutMode::Create.into()).await {
        Err(object_store::Error::AlreadyExists { .. }) => {}
        _ => ignored.push("If-None-Match: * on PUT (a second create was not refused)"),
    }
    match s3.put_opts(&path, payload(), update(WRONG_TAG)).await {
        Err(object_store::Error::Precondition { .. }) => {}
        _ => ignored.push("If-Match on PUT (a wrong ETag was not refused)"),
    }
    let own = created.e_tag.unwrap_or_default();
    match s3.put_opts(&path, payload(), update(&own)).await {
        Ok(_) => {}
        Err(object_store::Error::Precondition { .. }) => {
            ignored.push("If-Match on PUT (the object's own ETag was refused)");
        }
        Err(e) => return Err(unreachable(&e)),
    }
    let url = store
        .request_url(Method::DELETE, &path)
        .await
        .map_err(|e| unreachable(&e))?;
    let response = store
        .http
        .delete(url)
        .header(reqwest::header::IF_MATCH, WRONG_TAG)
        .send()
        .await
        .map_err(|e| unreachable(&e))?;
    if response.status() != StatusCode::PRECONDITION_FAILED {
        ignored.push("If-Match on DELETE (a wrong ETag did not stop the delete)");
    }
    let _ = s3.delete(&path).await;

    if ignored.is_empty() {
        tracing::info!(endpoint = %store.endpoint, bucket, "s3 store honours conditional writes");
        return Ok(());
    }
    Err(StorageError::Config(format!(
        "the object store at {} does not honour conditional writes: {}; storaged's register \
         contract needs them: use a store that supports them (AWS S3, MinIO, Garage 1.0+, \
         Ceph RGW releases that pass this check)",
        store.endpoint,
        ignored.join("; ")
    )))
}
