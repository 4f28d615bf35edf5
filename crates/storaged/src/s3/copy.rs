//! CopyObject and UploadPartCopy: the source streams from the backend into the target's
//! durable write; `x-amz-copy-source-if-*` conditions are checked on the source.

use futures_util::{StreamExt, TryStreamExt};
use s3s::dto::{
    CopyObjectInput, CopyObjectOutput, CopyObjectResult, CopyPartResult, CopySource,
    UploadPartCopyInput, UploadPartCopyOutput,
};
use s3s::{s3_error, S3Request, S3Response, S3Result};

use super::convert::{etag, native_key, storage_error, timestamp, StoredAttributes};
use super::objects::{audit, read_conditions};
use super::S3Face;
use crate::backend::{Body, BodyError, Condition, NewObject, ObjectReader};
use crate::http::auth::Access;

/// The bucket and key of a copy source.
fn source(copy_source: &CopySource) -> S3Result<(&str, &str)> {
    let CopySource::Bucket {
        bucket,
        key,
        version_id,
    } = copy_source
    else {
        return Err(s3_error!(NotImplemented, "copy sources are bucket/key"));
    };
    if version_id.is_some() {
        return Err(s3_error!(
            NotImplemented,
            "storaged keeps no object versions"
        ));
    }
    Ok((bucket, key))
}

/// `object`'s bytes `start..start+len` as an upload body.
fn body_of(object: ObjectReader, start: u64, len: u64) -> Body {
    object
        .stream(start, len)
        .map_err(|e| BodyError::Aborted(format!("reading the copy source: {e}")))
        .boxed()
}

/// Checks the `x-amz-copy-source-if-*` conditions: a source that fails one is a 412 (S3
/// answers 412 for the "not modified" cases of a copy too).
fn source_conditions(
    object: &ObjectReader,
    if_match: Option<&s3s::dto::ETagCondition>,
    if_none_match: Option<&s3s::dto::ETagCondition>,
    if_modified_since: Option<&s3s::dto::Timestamp>,
    if_unmodified_since: Option<&s3s::dto::Timestamp>,
) -> S3Result<()> {
    read_conditions(
        &object.meta,
        if_match,
        if_none_match,
        if_modified_since,
        if_unmodified_since,
    )
    .map_err(|e| {
        if *e.code() == s3s::S3ErrorCode::NotModified {
            s3_error!(PreconditionFailed, "the copy source was not modified")
        } else {
            e
        }
    })
}

pub(super) async fn copy_object(
    face: &S3Face,
    req: S3Request<CopyObjectInput>,
) -> S3Result<S3Response<CopyObjectOutput>> {
    let input = &req.input;
    let CopySource::Bucket {
        bucket: src_bucket,
        key: src_key,
        version_id,
    } = &input.copy_source
    else {
        return Err(s3_error!(NotImplemented, "copy sources are bucket/key"));
    };
    if version_id.is_some() {
        return Err(s3_error!(
            NotImplemented,
            "storaged keeps no object versions"
        ));
    }
    let source = native_key(src_bucket, src_key)?;
    let target = native_key(&input.bucket, &input.key)?;
    face.authorize(&req, Access::Read(source.as_str()))?;
    let caller = face.authorize(&req, Access::Write(target.as_str()))?;
    face.require_bucket(&input.bucket).await?;
    let object = face.open(src_bucket, &source).await?;
    source_conditions(
        &object,
        input.copy_source_if_match.as_ref(),
        input.copy_source_if_none_match.as_ref(),
        input.copy_source_if_modified_since.as_ref(),
        input.copy_source_if_unmodified_since.as_ref(),
    )?;
    let replace = input
        .metadata_directive
        .as_ref()
        .is_some_and(|d| d.as_str() == s3s::dto::MetadataDirective::REPLACE);
    let attrs = if replace {
        input.attributes()?
    } else {
        object.attrs.clone()
    };
    let size = object.meta.size;
    let body = body_of(object, 0, size);
    let new = NewObject {
        condition: Condition::None,
        attrs,
        s3_tag: None,
    };
    let outcome = face
        .backend
        .write(&target, new, body)
        .await
        .map_err(storage_error)?;
    audit(
        &caller,
        "CopyObject",
        target.as_str(),
        if outcome.created {
            "created"
        } else {
            "replaced"
        },
    );
    Ok(S3Response::new(CopyObjectOutput {
        copy_object_result: Some(CopyObjectResult {
            e_tag: Some(etag(&outcome.meta)),
            last_modified: Some(timestamp(outcome.meta.last_modified)),
            ..Default::default()
        }),
        ..Default::default()
    }))
}

/// `bytes=first-last` of an object of `size` bytes, as (start, len).
fn copy_range(range: &str, size: u64) -> S3Result<(u64, u64)> {
    let invalid = || {
        s3_error!(
            InvalidArgument,
            "x-amz-copy-source-range must be bytes=first-last within the source"
        )
    };
    let (first, last) = range
        .strip_prefix("bytes=")
        .and_then(|r| r.split_once('-'))
        .ok_or_else(invalid)?;
    let first: u64 = first.parse().map_err(|_| invalid())?;
    let last: u64 = last.parse().map_err(|_| invalid())?;
    if first > last || last >= size {
        return Err(s3_error!(
            InvalidRange,
            "the copy range {range} is outside a source of {size} bytes"
        ));
    }
    Ok((first, last - first + 1))
}

pub(super) async fn upload_part_copy(
    face: &S3Face,
    req: S3Request<UploadPartCopyInput>,
) -> S3Result<S3Response<UploadPartCopyOutput>> {
    let input = &req.input;
    let (src_bucket, src_key) = source(&input.copy_source)?;
    let source = native_key(src_bucket, src_key)?;
    let target = native_key(&input.bucket, &input.key)?;
    face.authorize(&req, Access::Read(source.as_str()))?;
    face.authorize(&req, Access::Write(target.as_str()))?;
    let part = face
        .staged_part(
            &input.bucket,
            &input.key,
            &input.upload_id,
            input.part_number,
        )
        .await?;
    let object = face.open(src_bucket, &source).await?;
    source_conditions(
        &object,
        input.copy_source_if_match.as_ref(),
        input.copy_source_if_none_match.as_ref(),
        input.copy_source_if_modified_since.as_ref(),
        input.copy_source_if_unmodified_since.as_ref(),
    )?;
    let size = object.meta.size;
    let (start, len) = match &input.copy_source_range {
        Some(range) => copy_range(range, size)?,
        None => (0, size),
    };
    let outcome = face
        .backend
        .write(&part, NewObject::default(), body_of(object, start, len))
        .await
        .map_err(storage_error)?;
    Ok(S3Response::new(UploadPartCopyOutput {
        copy_part_result: Some(CopyPartResult {
            e_tag: Some(etag(&outcome.meta)),
            last_modified: Some(timestamp(outcome.meta.last_modified)),
            ..Default::default()
        }),
        ..Default::default()
    }))
}

#[cfg(test)]
mod tests {
    #[test]
    fn copy_ranges_are_inclusive_and_checked() {
        assert_eq!(super::copy_range("bytes=0-9", 10).unwrap(), (0, 10));
        assert_eq!(super::copy_range("bytes=5-5", 10).unwrap(), (5, 1));
        for bad in ["bytes=5-10", "bytes=6-5", "0-5", "bytes=a-b", "bytes=-5"] {
            assert!(super::copy_range(bad, 10).is_err(), "{bad}");
        }
    }
}
