//! Writes. A body up to [`SINGLE_PUT`] is sent as one PUT carrying the condition; a
//! longer one streams as a multipart upload of [`PART_SIZE`] parts, a few at once, so
//! memory stays bounded whatever the size. A conditional create of a long body is uploaded
//! to a scratch name first and then copied into place with `If-None-Match: *` (one
//! UploadPartCopy and a conditional CompleteMultipartUpload), which is atomic.

use std::time::SystemTime;

use bytes::Bytes;
use futures_util::stream::FuturesUnordered;
use futures_util::StreamExt;
use manifest_codec::ObjectKey;
use object_store::path::Path;
use object_store::{
    ObjectStore, ObjectStoreExt, PutMode, PutMultipartOptions, PutOptions, PutPayload, PutResult,
    UpdateVersion,
};

use super::{attrs, keys, precondition, remote, S3Store};
use crate::backend::{Body, Condition, NewObject, ObjectMeta, PutOutcome, StorageError};

/// Bodies up to this size are one PUT.
pub(super) const SINGLE_PUT: usize = 8 * 1024 * 1024;
/// The size of every part but the last of a multipart upload.
pub(super) const PART_SIZE: usize = 8 * 1024 * 1024;
/// Parts in flight at once.
const PARTS_IN_FLIGHT: usize = 4;

/// Stores `body` under `key` if `new.condition` holds.
pub(super) async fn write(
    store: &S3Store,
    key: &ObjectKey,
    new: NewObject,
    mut body: Body,
) -> Result<PutOutcome, StorageError> {
    let mut head = Vec::new();
    let mut len = 0;
    while len <= SINGLE_PUT {
        match body.next().await {
            None => return put_single(store, key, &new, head, len).await,
            Some(Err(e)) => return Err(e.into()),
            Some(Ok(chunk)) => {
                len += chunk.len();
                head.push(chunk);
            }
        }
    }
    let path = store.layout.path(key);
    match new.condition {
        Condition::None => {
            let existed = store.head_etag(&path, key).await?.is_some();
            let result = upload(store, &path, key, &new, head, body).await?;
            Ok(outcome(key, result, !existed))
        }
        Condition::Absent => {
            let nanos = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos();
            let scratch = store
                .layout
                .scratch(&format!("staging-{}-{nanos}", std::process::id()));
            upload(store, &scratch, key, &new, head, body).await?;
            let copied = store.store.copy_if_not_exists(&scratch, &path).await;
            let _ = store.store.delete(&scratch).await;
            copied.map_err(|e| remote("copying a staged upload into place", key, e))?;
            let meta = store
                .store
                .head(&path)
                .await
                .map_err(|e| remote("reading the new object's metadata", key, e))?;
            Ok(PutOutcome {
                meta: S3Store::meta(key, &meta),
                created: true,
            })
        }
        Condition::Exists | Condition::Matches(_) | Condition::MatchesS3(_) => {
            Err(StorageError::Unsupported {
                what: format!(
                    "a conditional overwrite (If-Match) of an object larger than {} MiB on the s3 backend",
                    SINGLE_PUT >> 20
                ),
            })
        }
    }
}

/// One PUT with the condition as `If-None-Match` / `If-Match`.
async fn put_single(
    store: &S3Store,
    key: &ObjectKey,
    new: &NewObject,
    chunks: Vec<Bytes>,
    len: usize,
) -> Result<PutOutcome, StorageError> {
    let path = store.layout.path(key);
    let payload = PutPayload::from_iter(chunks);
    let put = |mode: PutMode| {
        let opts = PutOptions {
            mode,
            attributes: attrs::to_store(&new.attrs),
            ..PutOptions::default()
        };
        let payload = payload.clone();
        let path = path.clone();
        async move { store.store.put_opts(&path, payload, opts).await }
    };
    let update = |raw: String| {
        PutMode::Update(UpdateVersion {
            e_tag: Some(raw),
            version: None,
        })
    };
    let op = "writing an object";
    let (result, created) = match new.condition {
        Condition::None => match put(PutMode::Create).await {
            Ok(result) => (result, true),
            Err(object_store::Error::AlreadyExists { .. }) => (
                put(PutMode::Overwrite)
                    .await
                    .map_err(|e| remote(op, key, e))?,
                false,
            ),
            Err(e) => return Err(remote(op, key, e)),
        },
        Condition::Absent => (
            put(PutMode::Create).await.map_err(|e| remote(op, key, e))?,
            true,
        ),
        Condition::MatchesS3(tag) => (
            put(update(format!("\"{tag}\"")))
                .await
                .map_err(|e| remote(op, key, e))?,
            false,
        ),
        Condition::Matches(etag) => match put(update(format!("\"{etag}\""))).await {
            Ok(result) => (result, false),
            // The tag may be the digest of a multipart ETag (`<hex>-N`).
            Err(object_store::Error::Precondition { .. }) => {
                let raw = store.if_match(&path, key, new.condition).await?;
                if raw == format!("\"{etag}\"") {
                    return Err(precondition(key));
                }
                (
                    put(update(raw)).await.map_err(|e| remote(op, key, e))?,
                    false,
                )
            }
            Err(e) => return Err(remote(op, key, e)),
        },
        Condition::Exists => {
            let raw = store.if_match(&path, key, new.condition).await?;
            (
                put(update(raw)).await.map_err(|e| remote(op, key, e))?,
                false,
            )
        }
    };
    Ok(outcome(key, (result, len as u64), created))
}

/// Streams `head` and the rest of `body` to `path` as a multipart upload; aborts it if
/// the body or a part fails.
async fn upload(
    store: &S3Store,
    path: &Path,
    key: &ObjectKey,
    new: &NewObject,
    head: Vec<Bytes>,
    mut body: Body,
) -> Result<(PutResult, u64), StorageError> {
    let opts = PutMultipartOptions {
        attributes: attrs::to_store(&new.attrs),
        ..PutMultipartOptions::default()
    };
    let op = "uploading an object in parts";
    let mut upload = store
        .store
        .put_multipart_opts(path, opts)
        .await
        .map_err(|e| remote(op, key, e))?;
    let mut buffer: Vec<Bytes> = Vec::new();
    let mut buffered = 0;
    let mut total = 0_u64;
    let mut in_flight: FuturesUnordered<object_store::UploadPart> = FuturesUnordered::new();
    let mut pending = head.into_iter();
    let result: Result<(), StorageError> = async {
        loop {
            let chunk = match pending.next() {
                Some(chunk) => Some(chunk),
                None => body.next().await.transpose()?,
            };
            let done = chunk.is_none();
            if let Some(chunk) = chunk {
                total += chunk.len() as u64;
                buffered += chunk.len();
                buffer.push(chunk);
            }
            while buffered >= PART_SIZE || (done && buffered > 0) {
                let (part, rest) = split_off(std::mem::take(&mut buffer), PART_SIZE);
                buffered = rest.iter().map(Bytes::len).sum();
                buffer = rest;
                if in_flight.len() >= PARTS_IN_FLIGHT {
                    if let Some(sent) = in_flight.next().await {
                        sent.map_err(|e| remote(op, key, e))?;
                    }
                }
                in_flight.push(upload.put_part(PutPayload::from_iter(part)));
            }
            if done {
                break;
            }
        }
        while let Some(sent) = in_flight.next().await {
            sent.map_err(|e| remote(op, key, e))?;
        }
        Ok(())
    }
    .await;
    if let Err(e) = result {
        drop(in_flight);
        let _ = upload.abort().await;
        return Err(e);
    }
    let done = upload.complete().await.map_err(|e| remote(op, key, e))?;
    Ok((done, total))
}

/// The first `size` bytes of `chunks`, and the rest.
fn split_off(chunks: Vec<Bytes>, size: usize) -> (Vec<Bytes>, Vec<Bytes>) {
    let mut part = Vec::new();
    let mut rest = Vec::new();
    let mut taken = 0;
    for mut chunk in chunks {
        if taken >= size {
            rest.push(chunk);
            continue;
        }
        let room = size - taken;
        if chunk.len() > room {
            rest.push(chunk.split_off(room));
        }
        taken += chunk.len();
        part.push(chunk);
    }
    // `rest` gathered the tail of a split chunk before the untouched chunks after it.
    (part, rest)
}

fn outcome(key: &ObjectKey, (result, size): (PutResult, u64), created: bool) -> PutOutcome {
    let (etag, s3_tag) = keys::tags(result.e_tag.as_deref().unwrap_or_default());
    PutOutcome {
        meta: ObjectMeta {
            key: key.clone(),
            size,
            etag,
            s3_tag,
            last_modified: SystemTime::now(),
        },
        created,
    }
}
