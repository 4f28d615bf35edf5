//! Deletes. An unconditional delete is `object_store`'s; a conditional one is a DELETE
//! with `If-Match` on a presigned URL, since `object_store` has no conditional delete and
//! the catalog's retention relies on one.

use manifest_codec::ObjectKey;
use object_store::ObjectStoreExt;
use reqwest::{Method, StatusCode};

use super::{precondition, remote, S3Store};
use crate::backend::{Condition, StorageError};

/// Removes `key` if `condition` holds.
pub(super) async fn delete(
    store: &S3Store,
    key: &ObjectKey,
    condition: Condition,
) -> Result<(), StorageError> {
    let path = store.layout.path(key);
    let if_match = match condition {
        Condition::None => {
            return store
                .store
                .delete(&path)
                .await
                .map_err(|e| remote("deleting an object", key, e));
        }
        Condition::Absent => {
            return match store.head_etag(&path, key).await? {
                None => Ok(()),
                Some(_) => Err(precondition(key)),
            };
        }
        Condition::Matches(etag) => format!("\"{etag}\""),
        Condition::MatchesS3(tag) => format!("\"{tag}\""),
        Condition::Exists => store.if_match(&path, key, condition).await?,
    };
    match delete_if_match(store, &path, key, &if_match).await {
        // The tag may be the digest of a multipart ETag (`<hex>-N`): ask for the current
        // one and try again with it if it is the same version.
        Err(StorageError::PreconditionFailed { .. })
            if matches!(condition, Condition::Matches(_)) =>
        {
            let raw = store.if_match(&path, key, condition).await?;
            if raw == if_match {
                return Err(precondition(key));
            }
            delete_if_match(store, &path, key, &raw).await
        }
        other => other,
    }
}

async fn delete_if_match(
    store: &S3Store,
    path: &object_store::path::Path,
    key: &ObjectKey,
    if_match: &str,
) -> Result<(), StorageError> {
    let url = store
        .request_url(Method::DELETE, path)
        .await
        .map_err(|e| remote("signing a conditional delete", key, e))?;
    let response = store
        .http
        .delete(url)
        .header(reqwest::header::IF_MATCH, if_match)
        .send()
        .await
        .map_err(|e| StorageError::Remote {
            op: "deleting an object conditionally",
            source: Box::new(e),
        })?;
    match response.status() {
        status if status.is_success() => Ok(()),
        // The key is absent (S3 answers 404 to If-Match on a missing key) or changed.
        StatusCode::PRECONDITION_FAILED | StatusCode::NOT_FOUND => Err(precondition(key)),
        status => {
            let body = response.text().await.unwrap_or_default();
            Err(StorageError::Remote {
                op: "deleting an object conditionally",
                source: format!("the store answered {status}: {}", body.trim()).into(),
            })
        }
    }
}
