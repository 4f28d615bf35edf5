//! Between S3's vocabulary and storaged's: keys, entity tags, conditions, errors.

use std::time::SystemTime;

use bytes::Bytes;
use futures_util::StreamExt;
use manifest_codec::ObjectKey;
use s3s::dto::{ETagCondition, StreamingBlob, Timestamp};
use s3s::{s3_error, S3Error, S3ErrorCode};

use crate::backend::{Attributes, Body, BodyError, Condition, ObjectMeta, S3Tag, StorageError};

/// The native key of `key` in `bucket`: `bucket/key`.
pub(super) fn native_key(bucket: &str, key: &str) -> Result<ObjectKey, S3Error> {
    ObjectKey::parse(&format!("{bucket}/{key}")).map_err(|e| {
        let code = if matches!(e, manifest_codec::KeyError::TooLong { .. }) {
            S3ErrorCode::KeyTooLongError
        } else {
            S3ErrorCode::InvalidArgument
        };
        S3Error::with_message(code, format!("object key {key:?} is not accepted: {e}"))
    })
}

/// The S3 key of a native key in `bucket` (the part after `bucket/`).
pub(super) fn s3_key<'k>(bucket: &str, native: &'k str) -> &'k str {
    native
        .strip_prefix(bucket)
        .and_then(|rest| rest.strip_prefix('/'))
        .unwrap_or(native)
}

/// The entity tag the S3 face shows for an object: the MD5 of its content, or of its
/// parts' MD5s with `-N`.
pub(super) fn etag(meta: &ObjectMeta) -> s3s::dto::ETag {
    s3s::dto::ETag::Strong(meta.s3_tag_or_legacy().to_string())
}

/// Whether the S3 tag `given` names `meta`'s content (weak tags never match, as for
/// `If-Match` in RFC 9110).
pub(super) fn tag_matches(given: &ETagCondition, meta: &ObjectMeta) -> bool {
    match given {
        ETagCondition::Any => true,
        ETagCondition::ETag(tag) => {
            tag.as_strong().and_then(S3Tag::parse) == Some(meta.s3_tag_or_legacy())
        }
    }
}

/// The backend condition of a write's `If-Match` / `If-None-Match`.
pub(super) fn write_condition(
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
) -> Result<Condition, S3Error> {
    match (if_match, if_none_match) {
        (None, None) => Ok(Condition::None),
        (None, Some(ETagCondition::Any)) => Ok(Condition::Absent),
        (Some(ETagCondition::Any), None) => Ok(Condition::Exists),
        (Some(ETagCondition::ETag(tag)), None) => {
            // A tag storaged never issues (not hex, a weak one) matches nothing.
            let never = S3Tag {
                digest: [0; 16],
                parts: u32::MAX,
            };
            let parsed = tag.as_strong().and_then(S3Tag::parse).unwrap_or(never);
            Ok(Condition::MatchesS3(parsed))
        }
        (None, Some(ETagCondition::ETag(_))) => Err(s3_error!(
            NotImplemented,
            "If-None-Match on a write takes only *"
        )),
        (Some(_), Some(_)) => Err(s3_error!(
            InvalidArgument,
            "give If-Match or If-None-Match, not both"
        )),
    }
}

/// Largest total size of user metadata (`x-amz-meta-*` names and values), as on S3.
const MAX_USER_METADATA: usize = 2048;

/// The attributes an S3 input that makes an object asks to store (PutObject, CopyObject
/// with `REPLACE`, CreateMultipartUpload all carry the same headers).
pub(super) trait StoredAttributes {
    fn attributes(&self) -> Result<Attributes, S3Error>;
}

macro_rules! stored_attributes {
    ($($input:ty),*) => {$(
        impl StoredAttributes for $input {
            fn attributes(&self) -> Result<Attributes, S3Error> {
                attributes(
                    self.content_type.as_ref(),
                    self.content_encoding.as_ref(),
                    self.cache_control.as_ref(),
                    self.content_disposition.as_ref(),
                    self.metadata.as_ref(),
                )
            }
        }
    )*};
}

stored_attributes!(
    s3s::dto::PutObjectInput,
    s3s::dto::CopyObjectInput,
    s3s::dto::CreateMultipartUploadInput
);

/// The attributes a write stores, from its headers.
fn attributes(
    content_type: Option<&String>,
    content_encoding: Option<&String>,
    cache_control: Option<&String>,
    content_disposition: Option<&String>,
    metadata: Option<&s3s::dto::Metadata>,
) -> Result<Attributes, S3Error> {
    let metadata: std::collections::BTreeMap<String, String> = metadata
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    let size: usize = metadata.iter().map(|(k, v)| k.len() + v.len()).sum();
    if size > MAX_USER_METADATA {
        return Err(s3_error!(
            MetadataTooLarge,
            "user metadata is {size} bytes; at most {MAX_USER_METADATA} are kept"
        ));
    }
    // `aws-chunked` frames the request body; it says nothing about the object.
    let content_encoding = content_encoding
        .map(|e| {
            e.split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty() && !t.eq_ignore_ascii_case("aws-chunked"))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .filter(|e| !e.is_empty());
    Ok(Attributes {
        content_type: content_type.cloned(),
        content_encoding,
        cache_control: cache_control.cloned(),
        content_disposition: content_disposition.cloned(),
        metadata,
    })
}

pub(super) fn timestamp(at: SystemTime) -> Timestamp {
    Timestamp::from(at)
}

/// Whether `at` (to the second, as HTTP dates are) is after `than`.
pub(super) fn modified_after(at: SystemTime, than: &Timestamp) -> bool {
    let at = time::OffsetDateTime::from(at).unix_timestamp();
    let than: time::OffsetDateTime = than.clone().into();
    at > than.unix_timestamp()
}

/// An S3 request body as a backend body.
pub(super) fn body(blob: Option<StreamingBlob>) -> Body {
    match blob {
        None => futures_util::stream::once(async { Ok(Bytes::new()) }).boxed(),
        Some(blob) => blob
            .map(|chunk| chunk.map_err(|e| BodyError::Aborted(e.to_string())))
            .boxed(),
    }
}

/// The S3 error of a storage failure; a 5xx logs its cause chain.
pub(super) fn storage_error(e: StorageError) -> S3Error {
    match e {
        StorageError::NotFound { .. } => s3_error!(NoSuchKey),
        StorageError::PreconditionFailed { .. } => s3_error!(
            PreconditionFailed,
            "at least one of the preconditions you specified did not hold"
        ),
        e @ StorageError::AttributesTooLarge { .. } => s3_error!(MetadataTooLarge, "{e}"),
        StorageError::KeyConflict { key, reason } => {
            s3_error!(InvalidArgument, "key {key:?} cannot be stored: {reason}")
        }
        StorageError::Body(BodyError::TooLarge { limit }) => s3_error!(
            EntityTooLarge,
            "the object is larger than the limit of {limit} bytes"
        ),
        StorageError::Body(e @ BodyError::IdleTimeout(_)) => {
            s3_error!(RequestTimeout, "{e}")
        }
        StorageError::Body(e @ BodyError::Aborted(_)) => s3_error!(IncompleteBody, "{e}"),
        StorageError::Body(BodyError::DigestMismatch(what)) => s3_error!(BadDigest, "{what}"),
        e @ StorageError::InsufficientStorage(_) => {
            tracing::error!(error = %service_kit::ErrorChain(&e), "s3: storage full");
            s3_error!(ServiceUnavailable, "insufficient storage")
        }
        e @ (StorageError::Io { .. } | StorageError::Config(_)) => {
            tracing::error!(error = %service_kit::ErrorChain(&e), "s3: storage failure");
            s3_error!(InternalError, "storage failure")
        }
        e @ StorageError::Unknown { .. } => {
            tracing::error!(error = %service_kit::ErrorChain(&e), "s3: storage stopped taking writes");
            s3_error!(
                ServiceUnavailable,
                "storage stopped taking writes; retry later"
            )
        }
        e @ StorageError::NotDurable { .. } => {
            tracing::error!(error = %service_kit::ErrorChain(&e), "s3: a change may not be durable");
            s3_error!(
                ServiceUnavailable,
                "the outcome is unknown: storage could not make the change durable; retry"
            )
        }
        e @ StorageError::Remote { .. } => {
            tracing::error!(error = %service_kit::ErrorChain(&e), "s3: object store failure");
            s3_error!(ServiceUnavailable, "the object store is unavailable; retry")
        }
        StorageError::Unsupported { what } => s3_error!(NotImplemented, "{what}"),
    }
}
