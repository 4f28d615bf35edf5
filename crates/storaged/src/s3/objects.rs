//! Object operations: PutObject, GetObject, HeadObject, DeleteObject, DeleteObjects,
//! CopyObject. Every write goes through the backend's durable `put`/`delete`.

use futures_util::{StreamExt, TryStreamExt};
use s3s::dto::{
    DeleteObjectInput, DeleteObjectOutput, DeleteObjectsInput, DeleteObjectsOutput, DeletedObject,
    GetObjectInput, GetObjectOutput, HeadObjectInput, HeadObjectOutput, PutObjectInput,
    PutObjectOutput, StreamingBlob,
};
use s3s::{s3_error, S3Error, S3Request, S3Response, S3Result};

use super::convert::{self, etag, native_key, storage_error, timestamp, StoredAttributes};
use super::S3Face;
use crate::backend::{Attributes, Body, BodyError, Condition, NewObject, ObjectMeta, ObjectReader};
use crate::http::auth::{Access, Caller};

/// Deletes of one DeleteObjects request in flight at once.
const DELETE_CONCURRENCY: usize = 16;

pub(super) fn audit(caller: &Caller, operation: &str, key: &str, outcome: &str) {
    tracing::info!(
        credential = caller.name(),
        method = operation,
        key,
        outcome,
        face = "s3",
        "audit"
    );
}

impl S3Face {
    /// `body` ending with [`BodyError::TooLarge`] past the object size limit.
    pub(super) fn limited(&self, body: Body) -> Body {
        let limit = self.max_object_size;
        let bytes_in = self.metrics.bytes_in.clone();
        body.scan(0_u64, move |seen, chunk| {
            let item = chunk.and_then(|chunk| {
                *seen += chunk.len() as u64;
                bytes_in.inc_by(chunk.len() as u64);
                if *seen > limit {
                    Err(BodyError::TooLarge { limit })
                } else {
                    Ok(chunk)
                }
            });
            futures_util::future::ready(Some(item))
        })
        .boxed()
    }

    /// Opens `bucket/key`; a missing key is `NoSuchBucket` when its bucket is missing too.
    pub(super) async fn open(
        &self,
        bucket: &str,
        key: &manifest_codec::ObjectKey,
    ) -> S3Result<ObjectReader> {
        match self.backend.get(key).await {
            Ok(reader) => Ok(reader),
            Err(crate::backend::StorageError::NotFound { .. }) => {
                self.require_bucket(bucket).await?;
                Err(s3_error!(
                    NoSuchKey,
                    "no object with key {:?}",
                    convert::s3_key(bucket, key.as_str())
                ))
            }
            Err(e) => Err(storage_error(e)),
        }
    }
}

pub(super) async fn put_object(
    face: &S3Face,
    mut req: S3Request<PutObjectInput>,
) -> S3Result<S3Response<PutObjectOutput>> {
    let input = &req.input;
    let key = native_key(&input.bucket, &input.key)?;
    let caller = face.authorize(&req, Access::Write(key.as_str()))?;
    let condition =
        convert::write_condition(input.if_match.as_ref(), input.if_none_match.as_ref())?;
    let attrs = input.attributes()?;
    if let Some(length) = input.content_length {
        if u64::try_from(length).is_ok_and(|l| l > face.max_object_size) {
            return Err(s3_error!(
                EntityTooLarge,
                "the object is larger than the limit of {} bytes",
                face.max_object_size
            ));
        }
    }
    face.require_bucket(&input.bucket).await?;
    let expected = super::checksum::expected(&req)?;
    let body =
        super::checksum::verify(face.limited(convert::body(req.input.body.take())), expected);
    let new = NewObject {
        condition,
        attrs,
        s3_tag: None,
    };
    let outcome = match face.backend.write(&key, new, body).await {
        Ok(outcome) => outcome,
        Err(e) => {
            let e = storage_error(e);
            audit(&caller, "PutObject", key.as_str(), e.code().as_str());
            return Err(e);
        }
    };
    audit(
        &caller,
        "PutObject",
        key.as_str(),
        if outcome.created {
            "created"
        } else {
            "replaced"
        },
    );
    Ok(S3Response::new(PutObjectOutput {
        e_tag: Some(etag(&outcome.meta)),
        ..Default::default()
    }))
}

/// The stored Content-Type, or S3's default.
fn content_type(attrs: &Attributes) -> String {
    attrs
        .content_type
        .clone()
        .unwrap_or_else(|| "binary/octet-stream".to_owned())
}

fn user_metadata(
    metadata: std::collections::BTreeMap<String, String>,
) -> Option<s3s::dto::Metadata> {
    (!metadata.is_empty()).then(|| metadata.into_iter().collect())
}

/// The answer to a read's conditions: go on, or stop with this error (412 or 304).
pub(super) fn read_conditions(
    meta: &ObjectMeta,
    if_match: Option<&s3s::dto::ETagCondition>,
    if_none_match: Option<&s3s::dto::ETagCondition>,
    if_modified_since: Option<&s3s::dto::Timestamp>,
    if_unmodified_since: Option<&s3s::dto::Timestamp>,
) -> S3Result<()> {
    let failed = || {
        s3_error!(
            PreconditionFailed,
            "at least one of the preconditions you specified did not hold"
        )
    };
    // RFC 9110 §13.2.2: If-Match, then If-Unmodified-Since (only without If-Match),
    // then If-None-Match, then If-Modified-Since (only without If-None-Match).
    match if_match {
        Some(tag) if !convert::tag_matches(tag, meta) => return Err(failed()),
        Some(_) => {}
        None => {
            if if_unmodified_since.is_some_and(|t| convert::modified_after(meta.last_modified, t)) {
                return Err(failed());
            }
        }
    }
    let not_modified = match if_none_match {
        Some(tag) => convert::tag_matches(tag, meta),
        None => if_modified_since.is_some_and(|t| !convert::modified_after(meta.last_modified, t)),
    };
    if not_modified {
        return Err(s3_error!(NotModified));
    }
    Ok(())
}

pub(super) async fn get_object(
    face: &S3Face,
    req: S3Request<GetObjectInput>,
) -> S3Result<S3Response<GetObjectOutput>> {
    let input = &req.input;
    let key = native_key(&input.bucket, &input.key)?;
    face.authorize(&req, Access::Read(key.as_str()))?;
    if input.part_number.is_some() {
        return Err(s3_error!(
            NotImplemented,
            "GetObject by partNumber is not supported"
        ));
    }
    let object = face.open(&input.bucket, &key).await?;
    let meta = object.meta.clone();
    let attrs = object.attrs.clone();
    read_conditions(
        &meta,
        input.if_match.as_ref(),
        input.if_none_match.as_ref(),
        input.if_modified_since.as_ref(),
        input.if_unmodified_since.as_ref(),
    )?;
    let (start, len, content_range) = match &input.range {
        None => (0, meta.size, None),
        Some(range) => {
            let range = range.check(meta.size).map_err(|_| {
                s3_error!(
                    InvalidRange,
                    "the range is not satisfiable for an object of {} bytes",
                    meta.size
                )
            })?;
            let len = range.end - range.start;
            let content_range = format!("bytes {}-{}/{}", range.start, range.end - 1, meta.size);
            (range.start, len, Some(content_range))
        }
    };
    let bytes_out = face.metrics.bytes_out.clone();
    let stream = object.stream(start, len).inspect_ok(move |chunk| {
        bytes_out.inc_by(chunk.len() as u64);
    });
    let body = StreamingBlob::wrap(sync_wrapper::SyncStream::new(stream));
    Ok(S3Response::new(GetObjectOutput {
        body: Some(body),
        content_length: Some(i64::try_from(len).unwrap_or(i64::MAX)),
        content_range,
        accept_ranges: Some("bytes".into()),
        e_tag: Some(etag(&meta)),
        last_modified: Some(timestamp(meta.last_modified)),
        content_type: Some(content_type(&attrs)),
        content_encoding: attrs.content_encoding,
        cache_control: attrs.cache_control,
        content_disposition: attrs.content_disposition,
        metadata: user_metadata(attrs.metadata),
        ..Default::default()
    }))
}

pub(super) async fn head_object(
    face: &S3Face,
    req: S3Request<HeadObjectInput>,
) -> S3Result<S3Response<HeadObjectOutput>> {
    let input = &req.input;
    let key = native_key(&input.bucket, &input.key)?;
    face.authorize(&req, Access::Read(key.as_str()))?;
    let object = face.open(&input.bucket, &key).await?;
    let (meta, attrs) = (object.meta, object.attrs);
    read_conditions(
        &meta,
        input.if_match.as_ref(),
        input.if_none_match.as_ref(),
        input.if_modified_since.as_ref(),
        input.if_unmodified_since.as_ref(),
    )?;
    Ok(S3Response::new(HeadObjectOutput {
        content_length: Some(i64::try_from(meta.size).unwrap_or(i64::MAX)),
        accept_ranges: Some("bytes".into()),
        e_tag: Some(etag(&meta)),
        last_modified: Some(timestamp(meta.last_modified)),
        content_type: Some(content_type(&attrs)),
        content_encoding: attrs.content_encoding,
        cache_control: attrs.cache_control,
        content_disposition: attrs.content_disposition,
        metadata: user_metadata(attrs.metadata),
        ..Default::default()
    }))
}

pub(super) async fn delete_object(
    face: &S3Face,
    req: S3Request<DeleteObjectInput>,
) -> S3Result<S3Response<DeleteObjectOutput>> {
    let input = &req.input;
    let key = native_key(&input.bucket, &input.key)?;
    let caller = face.authorize(&req, Access::Write(key.as_str()))?;
    let condition = convert::write_condition(input.if_match.as_ref(), None)?;
    face.require_bucket(&input.bucket).await?;
    let result = face.backend.delete(&key, condition).await;
    let outcome = match &result {
        Ok(()) => "deleted",
        Err(_) => "failed",
    };
    audit(&caller, "DeleteObject", key.as_str(), outcome);
    result.map_err(storage_error)?;
    Ok(S3Response::new(DeleteObjectOutput::default()))
}

pub(super) async fn delete_objects(
    face: &S3Face,
    req: S3Request<DeleteObjectsInput>,
) -> S3Result<S3Response<DeleteObjectsOutput>> {
    let bucket = req.input.bucket.clone();
    face.authorize_bucket(&req, &bucket)?;
    face.require_bucket(&bucket).await?;
    if req.input.delete.objects.len() > 1000 {
        return Err(s3_error!(
            MalformedXML,
            "DeleteObjects takes at most 1000 keys"
        ));
    }
    let quiet = req.input.delete.quiet.unwrap_or(false);
    let checked: Vec<(String, S3Result<(manifest_codec::ObjectKey, Caller)>)> = req
        .input
        .delete
        .objects
        .iter()
        .map(|object| {
            let key = native_key(&bucket, &object.key).and_then(|key| {
                let caller = face.authorize(&req, Access::Write(key.as_str()))?;
                Ok((key, caller))
            });
            (object.key.clone(), key)
        })
        .collect();
    let attempts = checked.into_iter().map(|(s3_key, checked)| {
        let backend = face.backend.clone();
        async move {
            let (key, caller) = match checked {
                Ok(checked) => checked,
                Err(e) => return Err((s3_key, e)),
            };
            let result = backend.delete(&key, Condition::None).await;
            let outcome = if result.is_ok() { "deleted" } else { "failed" };
            audit(&caller, "DeleteObjects", key.as_str(), outcome);
            match result {
                Ok(()) => Ok(s3_key),
                Err(e) => Err((s3_key, storage_error(e))),
            }
        }
    });
    let results: Vec<Result<String, (String, S3Error)>> = futures_util::stream::iter(attempts)
        .buffered(DELETE_CONCURRENCY)
        .collect()
        .await;
    let mut deleted = Vec::new();
    let mut errors = Vec::new();
    for result in results {
        match result {
            Ok(key) if !quiet => deleted.push(DeletedObject {
                key: Some(key),
                ..Default::default()
            }),
            Ok(_) => {}
            Err((key, e)) => errors.push(s3s::dto::Error {
                code: Some(e.code().as_str().to_owned()),
                key: Some(key),
                message: e.message().map(str::to_owned),
                version_id: None,
            }),
        }
    }
    Ok(S3Response::new(DeleteObjectsOutput {
        deleted: Some(deleted),
        errors: Some(errors),
        ..Default::default()
    }))
}
