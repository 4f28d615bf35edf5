//! Multipart uploads. Parts are staged as ordinary durable objects under
//! `_s3/uploads/<bucket>/<upload id>/` (`00001`..`10000`, and the record `upload`);
//! CompleteMultipartUpload streams them, in order, into one backend write (atomic: a crash
//! before the acknowledgement leaves no object, after it the whole object), then removes
//! the staging. Uploads left behind are removed after `multipart_expiry` (`sweep`).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use manifest_codec::ObjectKey;
use md5::Digest as _;
use s3s::dto::{
    AbortMultipartUploadInput, AbortMultipartUploadOutput, CompleteMultipartUploadInput,
    CompleteMultipartUploadOutput, CreateMultipartUploadInput, CreateMultipartUploadOutput,
    UploadPartInput, UploadPartOutput,
};
use s3s::{s3_error, S3Request, S3Response, S3Result};
use serde::{Deserialize, Serialize};

use super::convert::{self, etag, native_key, storage_error, StoredAttributes};
use super::S3Face;
use crate::backend::{
    Attributes, Backend, Body, Condition, NewObject, ObjectMeta, PutOutcome, S3Tag, StorageError,
};
use crate::http::auth::Access;

pub(super) const UPLOADS: &str = "_s3/uploads/";
pub(super) const RECORD: &str = "upload";
pub(super) const MAX_PARTS: i32 = 10_000;
/// Every part but the last must be at least this big, as on S3.
const MIN_PART: u64 = 5 * 1024 * 1024;

/// What CreateMultipartUpload records.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Upload {
    pub(super) key: String,
    attrs: Attributes,
    /// Seconds since the Unix epoch.
    pub(super) initiated: u64,
}

fn staging(bucket: &str, id: &str) -> String {
    format!("{UPLOADS}{bucket}/{id}/")
}

fn staged_key(text: &str) -> S3Result<ObjectKey> {
    ObjectKey::parse(text).map_err(|e| s3_error!(InternalError, "staging key {text:?}: {e}"))
}

/// An upload id storaged could have issued: 32 lowercase hex digits.
fn check_id(id: &str) -> S3Result<()> {
    let ok = id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if ok {
        Ok(())
    } else {
        Err(s3_error!(NoSuchUpload, "no upload with id {id:?}"))
    }
}

fn new_id(bucket: &str, key: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = blake3::Hasher::new();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    h.update(&now.as_nanos().to_le_bytes());
    h.update(&COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    h.update(&std::process::id().to_le_bytes());
    h.update(bucket.as_bytes());
    h.update(key.as_bytes());
    h.finalize().to_hex()[..32].to_owned()
}

fn part_number(n: i32) -> S3Result<u32> {
    u32::try_from(n)
        .ok()
        .filter(|n| (1..=MAX_PARTS.unsigned_abs()).contains(n))
        .ok_or_else(|| {
            s3_error!(
                InvalidArgument,
                "part numbers run from 1 to {MAX_PARTS}, not {n}"
            )
        })
}

fn whole(body: Vec<u8>) -> Body {
    futures_util::stream::once(async move { Ok(bytes::Bytes::from(body)) }).boxed()
}

impl S3Face {
    /// The record of upload `id` in `bucket`, if there is one.
    pub(super) async fn record(&self, bucket: &str, id: &str) -> S3Result<Option<Upload>> {
        let record = staged_key(&format!("{}{RECORD}", staging(bucket, id)))?;
        let reader = match self.backend.get(&record).await {
            Ok(reader) => reader,
            Err(StorageError::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(storage_error(e)),
        };
        let size = reader.meta.size;
        let mut raw = Vec::new();
        let mut stream = reader.stream(0, size);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk
                .map_err(|e| storage_error(StorageError::io("reading an upload record", e)))?;
            raw.extend_from_slice(&chunk);
        }
        serde_json::from_slice(&raw)
            .map(Some)
            .map_err(|e| s3_error!(InternalError, "upload record {id}: {e}"))
    }

    /// The upload `id` of `bucket/key`, or `NoSuchUpload`.
    pub(super) async fn upload(&self, bucket: &str, key: &str, id: &str) -> S3Result<Upload> {
        check_id(id)?;
        let Some(upload) = self.record(bucket, id).await? else {
            return Err(s3_error!(NoSuchUpload, "no upload with id {id:?}"));
        };
        if upload.key != key {
            return Err(s3_error!(
                NoSuchUpload,
                "upload {id:?} is not for key {key:?}"
            ));
        }
        Ok(upload)
    }

    /// The staging key of part `n` of upload `id` of `bucket/key`, once the upload is
    /// known to exist.
    pub(super) async fn staged_part(
        &self,
        bucket: &str,
        key: &str,
        id: &str,
        n: i32,
    ) -> S3Result<ObjectKey> {
        let n = part_number(n)?;
        self.upload(bucket, key, id).await?;
        staged_key(&format!("{}{n:05}", staging(bucket, id)))
    }

    /// The staged parts of upload `id`, by part number.
    pub(super) async fn parts(&self, bucket: &str, id: &str) -> S3Result<Vec<(u32, ObjectMeta)>> {
        let prefix = staging(bucket, id);
        let mut parts = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self
                .backend
                .list(&prefix, after.as_deref(), 1000)
                .await
                .map_err(storage_error)?;
            for meta in &page.objects {
                if let Ok(n) = meta.key.as_str()[prefix.len()..].parse::<u32>() {
                    parts.push((n, meta.clone()));
                }
            }
            after = page.objects.last().map(|m| m.key.to_string());
            if !page.is_truncated {
                return Ok(parts);
            }
        }
    }

    /// Removes upload `id`: its record first (so no part can join it), then its parts.
    async fn remove_upload(&self, bucket: &str, id: &str) -> S3Result<()> {
        let record = staged_key(&format!("{}{RECORD}", staging(bucket, id)))?;
        self.backend
            .delete(&record, Condition::None)
            .await
            .map_err(storage_error)?;
        for (_, meta) in self.parts(bucket, id).await? {
            self.backend
                .delete(&meta.key, Condition::None)
                .await
                .map_err(storage_error)?;
        }
        Ok(())
    }
}

pub(super) async fn create(
    face: &S3Face,
    req: S3Request<CreateMultipartUploadInput>,
) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
    let input = &req.input;
    let target = native_key(&input.bucket, &input.key)?;
    face.authorize(&req, Access::Write(target.as_str()))?;
    face.require_bucket(&input.bucket).await?;
    let attrs = input.attributes()?;
    let id = new_id(&input.bucket, &input.key);
    let initiated = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let record = Upload {
        key: input.key.clone(),
        attrs,
        initiated,
    };
    let raw = serde_json::to_vec(&record).map_err(|e| s3_error!(InternalError, "{e}"))?;
    let record_key = staged_key(&format!("{}{RECORD}", staging(&input.bucket, &id)))?;
    face.backend
        .put(&record_key, Condition::Absent, whole(raw))
        .await
        .map_err(storage_error)?;
    tracing::info!(key = target.as_str(), upload = %id, "s3: multipart upload created");
    Ok(S3Response::new(CreateMultipartUploadOutput {
        bucket: Some(input.bucket.clone()),
        key: Some(input.key.clone()),
        upload_id: Some(id),
        ..Default::default()
    }))
}

pub(super) async fn upload_part(
    face: &S3Face,
    mut req: S3Request<UploadPartInput>,
) -> S3Result<S3Response<UploadPartOutput>> {
    let input = &req.input;
    let target = native_key(&input.bucket, &input.key)?;
    face.authorize(&req, Access::Write(target.as_str()))?;
    let part = face
        .staged_part(
            &input.bucket,
            &input.key,
            &input.upload_id,
            input.part_number,
        )
        .await?;
    let expected = super::checksum::expected(&req)?;
    let body =
        super::checksum::verify(face.limited(convert::body(req.input.body.take())), expected);
    let outcome = face
        .backend
        .write(&part, NewObject::default(), body)
        .await
        .map_err(storage_error)?;
    Ok(S3Response::new(UploadPartOutput {
        e_tag: Some(etag(&outcome.meta)),
        ..Default::default()
    }))
}

/// The staged parts a CompleteMultipartUpload names, checked: ascending numbers, each
/// uploaded with the ETag given, all but the last at least 5 MiB.
fn chosen_parts(
    asked: &[s3s::dto::CompletedPart],
    staged: &[(u32, ObjectMeta)],
) -> S3Result<Vec<ObjectMeta>> {
    let mut numbers = Vec::with_capacity(asked.len());
    for part in asked {
        let n = part_number(part.part_number.unwrap_or(0))?;
        if numbers.last().is_some_and(|previous| n <= *previous) {
            return Err(s3_error!(
                InvalidPartOrder,
                "parts must be listed in ascending order"
            ));
        }
        numbers.push(n);
    }
    let mut chosen: Vec<ObjectMeta> = Vec::with_capacity(asked.len());
    for (part, n) in asked.iter().zip(numbers) {
        let Some((_, meta)) = staged.iter().find(|(m, _)| *m == n) else {
            return Err(s3_error!(InvalidPart, "part {n} was never uploaded"));
        };
        let tag_ok = part
            .e_tag
            .as_ref()
            .is_none_or(|t| t.as_strong().and_then(S3Tag::parse) == Some(meta.s3_tag_or_legacy()));
        if !tag_ok {
            return Err(s3_error!(
                InvalidPart,
                "part {n}'s ETag does not match the uploaded part"
            ));
        }
        chosen.push(meta.clone());
    }
    if let Some(small) = chosen[..chosen.len() - 1]
        .iter()
        .find(|m| m.size < MIN_PART)
    {
        return Err(s3_error!(
            EntityTooSmall,
            "part {} is {} bytes; all but the last must be at least 5 MiB",
            small.key.as_str().rsplit('/').next().unwrap_or_default(),
            small.size
        ));
    }
    Ok(chosen)
}

/// Publishes the staged `parts`, in order, as `target`: one backend assembly (atomic, as
/// a write; on the local disk the parts are linked, not copied), so a crash before it
/// returns leaves no new object and after it the whole object.
pub(crate) async fn publish(
    backend: &Arc<dyn Backend>,
    target: &ObjectKey,
    parts: Vec<ObjectKey>,
    new: NewObject,
) -> Result<PutOutcome, StorageError> {
    backend.assemble(target, new, parts).await
}

pub(super) async fn complete(
    face: &S3Face,
    req: S3Request<CompleteMultipartUploadInput>,
) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
    let input = &req.input;
    let target = native_key(&input.bucket, &input.key)?;
    let caller = face.authorize(&req, Access::Write(target.as_str()))?;
    let condition =
        convert::write_condition(input.if_match.as_ref(), input.if_none_match.as_ref())?;
    let upload = face
        .upload(&input.bucket, &input.key, &input.upload_id)
        .await?;
    let asked = input
        .multipart_upload
        .as_ref()
        .and_then(|m| m.parts.as_ref())
        .filter(|p| !p.is_empty())
        .ok_or_else(|| s3_error!(MalformedXML, "CompleteMultipartUpload names no parts"))?;
    let staged = face.parts(&input.bucket, &input.upload_id).await?;
    let chosen = chosen_parts(asked, &staged)?;
    let total: u64 = chosen.iter().map(|m| m.size).sum();
    if total > face.max_object_size {
        return Err(s3_error!(
            EntityTooLarge,
            "the parts add up to {total} bytes, over the limit of {}",
            face.max_object_size
        ));
    }
    let mut digests = md5::Md5::new();
    for meta in &chosen {
        digests.update(meta.s3_tag_or_legacy().digest);
    }
    let s3_tag = S3Tag {
        digest: digests.finalize().into(),
        parts: u32::try_from(chosen.len()).unwrap_or(u32::MAX),
    };
    let parts = chosen.into_iter().map(|m| m.key).collect();
    let new = NewObject {
        condition,
        attrs: upload.attrs,
        s3_tag: Some(s3_tag),
    };
    let outcome = publish(&face.backend, &target, parts, new)
        .await
        .map_err(storage_error)?;
    tracing::info!(
        credential = caller.name(),
        method = "CompleteMultipartUpload",
        key = target.as_str(),
        outcome = if outcome.created {
            "created"
        } else {
            "replaced"
        },
        parts = s3_tag.parts,
        face = "s3",
        "audit"
    );
    face.remove_upload(&input.bucket, &input.upload_id).await?;
    Ok(S3Response::new(CompleteMultipartUploadOutput {
        bucket: Some(input.bucket.clone()),
        key: Some(input.key.clone()),
        e_tag: Some(etag(&outcome.meta)),
        location: Some(format!("/{}/{}", input.bucket, input.key)),
        ..Default::default()
    }))
}

pub(super) async fn abort(
    face: &S3Face,
    req: S3Request<AbortMultipartUploadInput>,
) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
    let input = &req.input;
    let target = native_key(&input.bucket, &input.key)?;
    face.authorize(&req, Access::Write(target.as_str()))?;
    face.upload(&input.bucket, &input.key, &input.upload_id)
        .await?;
    face.remove_upload(&input.bucket, &input.upload_id).await?;
    tracing::info!(key = target.as_str(), upload = %input.upload_id, "s3: multipart upload aborted");
    Ok(S3Response::new(AbortMultipartUploadOutput::default()))
}

/// Removes every upload that has taken no part for `expiry` (its record and newest part
/// are that old), and parts whose upload record is gone (an abort or completion
/// interrupted by a crash) once they are that old. An upload still taking parts stays.
pub(super) async fn sweep(face: &S3Face, expiry: Duration) -> Result<usize, StorageError> {
    let now = SystemTime::now();
    let mut removed = 0;
    let mut after: Option<String> = None;
    // Per upload directory: its objects and whether one of them is recent.
    let mut uploads: std::collections::BTreeMap<String, (Vec<ObjectKey>, bool)> =
        std::collections::BTreeMap::new();
    loop {
        let page = face.backend.list(UPLOADS, after.as_deref(), 1000).await?;
        for meta in &page.objects {
            let recent = now.duration_since(meta.last_modified).unwrap_or_default() <= expiry;
            let dir = meta
                .key
                .as_str()
                .rsplit_once('/')
                .map_or(meta.key.as_str(), |(dir, _)| dir)
                .to_owned();
            let entry = uploads.entry(dir).or_default();
            entry.0.push(meta.key.clone());
            entry.1 |= recent;
        }
        after = page.objects.last().map(|m| m.key.to_string());
        if !page.is_truncated {
            break;
        }
    }
    let mut stale: Vec<ObjectKey> = uploads
        .into_values()
        .filter(|(_, recent)| !recent)
        .flat_map(|(keys, _)| keys)
        .collect();
    // Records first: an expired upload stops taking parts before its parts go.
    stale.sort_by_key(|k| !k.as_str().ends_with(RECORD));
    for key in stale {
        face.backend.delete(&key, Condition::None).await?;
        removed += 1;
    }
    Ok(removed)
}
