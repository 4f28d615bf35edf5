//! ListObjects and ListObjectsV2 over the native listing: a bucket's keys are the native
//! keys under `bucket/`, common prefixes come from the same delimited walk as the native
//! API's, and a continuation token names the last key or common prefix returned.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use s3s::dto::{
    CommonPrefix, EncodingType, ListObjectsInput, ListObjectsOutput, ListObjectsV2Input,
    ListObjectsV2Output, Object,
};
use s3s::{s3_error, S3Request, S3Response, S3Result};

use super::convert::{etag, s3_key, storage_error, timestamp};
use super::S3Face;
use crate::backend::{list_delimited, Listed};
use crate::http::auth::Access;

const MAX_KEYS: usize = 1000;

/// What `encoding-type=url` escapes: all but unreserved characters and `/`.
const URL: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

/// One page of a bucket's listing, in S3's terms.
struct Walk {
    objects: Vec<Object>,
    prefixes: Vec<CommonPrefix>,
    is_truncated: bool,
    /// The native key or common prefix a continuation resumes after.
    last: Option<String>,
}

struct Query<'a> {
    bucket: &'a str,
    prefix: &'a str,
    delimiter: Option<&'a str>,
    /// Native key or common prefix to start after.
    after: Option<String>,
    max_keys: Option<i32>,
    url: bool,
}

fn encode(text: &str, url: bool) -> String {
    if url {
        utf8_percent_encode(text, URL).to_string()
    } else {
        text.to_owned()
    }
}

async fn walk<T>(face: &S3Face, req: &S3Request<T>, q: &Query<'_>) -> S3Result<Walk> {
    let native_prefix = format!("{}/{}", q.bucket, q.prefix);
    face.authorize(req, Access::List(&native_prefix))?;
    face.require_bucket(q.bucket).await?;
    let limit = match q.max_keys {
        None => MAX_KEYS,
        Some(n) if n < 0 => {
            return Err(s3_error!(InvalidArgument, "max-keys must not be negative"))
        }
        Some(n) => usize::try_from(n).unwrap_or(MAX_KEYS).min(MAX_KEYS),
    };
    if limit == 0 {
        return Ok(Walk {
            objects: Vec::new(),
            prefixes: Vec::new(),
            is_truncated: false,
            last: None,
        });
    }
    let after = q.after.as_deref();
    let (entries, is_truncated) = if let Some(delimiter) = q.delimiter.filter(|d| !d.is_empty()) {
        let page = list_delimited(
            face.backend.as_ref(),
            &native_prefix,
            delimiter,
            after,
            limit,
        )
        .await
        .map_err(storage_error)?;
        (page.entries, page.is_truncated)
    } else {
        let page = face
            .backend
            .list(&native_prefix, after, limit)
            .await
            .map_err(storage_error)?;
        let entries = page.objects.into_iter().map(Listed::Object).collect();
        (entries, page.is_truncated)
    };
    let visibility = face.visibility(req)?;
    let last = entries.last().map(|e| e.position().to_owned());
    let mut objects = Vec::new();
    let mut prefixes = Vec::new();
    for entry in entries {
        if !visibility.shows(entry.position()) {
            continue;
        }
        match entry {
            Listed::Object(meta) => objects.push(Object {
                key: Some(encode(s3_key(q.bucket, meta.key.as_str()), q.url)),
                size: Some(i64::try_from(meta.size).unwrap_or(i64::MAX)),
                e_tag: Some(etag(&meta)),
                last_modified: Some(timestamp(meta.last_modified)),
                storage_class: Some(s3s::dto::ObjectStorageClass::from_static(
                    s3s::dto::ObjectStorageClass::STANDARD,
                )),
                ..Default::default()
            }),
            Listed::Prefix(prefix) => prefixes.push(CommonPrefix {
                prefix: Some(encode(s3_key(q.bucket, &prefix), q.url)),
            }),
        }
    }
    Ok(Walk {
        objects,
        prefixes,
        is_truncated,
        last,
    })
}

fn wants_url(encoding: Option<&EncodingType>) -> S3Result<bool> {
    match encoding {
        None => Ok(false),
        Some(e) if e.as_str() == EncodingType::URL => Ok(true),
        Some(e) => Err(s3_error!(
            InvalidArgument,
            "unknown encoding-type {:?}",
            e.as_str()
        )),
    }
}

pub(super) async fn list_objects_v2(
    face: &S3Face,
    req: S3Request<ListObjectsV2Input>,
) -> S3Result<S3Response<ListObjectsV2Output>> {
    let input = &req.input;
    let bucket = input.bucket.as_str();
    let prefix = input.prefix.as_deref().unwrap_or_default();
    let after = match (&input.continuation_token, &input.start_after) {
        (Some(token), _) => {
            let raw = service_kit::decode_page_token(token)
                .and_then(|raw| String::from_utf8(raw).ok())
                .filter(|position| position.starts_with(&format!("{bucket}/{prefix}")))
                .ok_or_else(|| {
                    s3_error!(
                        InvalidArgument,
                        "the continuation token is not one this listing gave"
                    )
                })?;
            Some(raw)
        }
        (None, Some(start)) => Some(format!("{bucket}/{start}")),
        (None, None) => None,
    };
    let url = wants_url(input.encoding_type.as_ref())?;
    let walk = walk(
        face,
        &req,
        &Query {
            bucket,
            prefix,
            delimiter: input.delimiter.as_deref(),
            after,
            max_keys: input.max_keys,
            url,
        },
    )
    .await?;
    let key_count = walk.objects.len() + walk.prefixes.len();
    let next = walk
        .is_truncated
        .then(|| walk.last.as_deref().map(service_kit::encode_page_token))
        .flatten();
    Ok(S3Response::new(ListObjectsV2Output {
        name: Some(bucket.to_owned()),
        prefix: Some(encode(prefix, url)),
        delimiter: input.delimiter.as_deref().map(|d| encode(d, url)),
        max_keys: Some(input.max_keys.unwrap_or(1000)),
        key_count: Some(i32::try_from(key_count).unwrap_or(i32::MAX)),
        continuation_token: input.continuation_token.clone(),
        next_continuation_token: next,
        start_after: input.start_after.as_deref().map(|s| encode(s, url)),
        is_truncated: Some(walk.is_truncated),
        contents: Some(walk.objects),
        common_prefixes: Some(walk.prefixes),
        encoding_type: input.encoding_type.clone(),
        ..Default::default()
    }))
}

pub(super) async fn list_objects(
    face: &S3Face,
    req: S3Request<ListObjectsInput>,
) -> S3Result<S3Response<ListObjectsOutput>> {
    let input = &req.input;
    let bucket = input.bucket.as_str();
    let prefix = input.prefix.as_deref().unwrap_or_default();
    let url = wants_url(input.encoding_type.as_ref())?;
    let walk = walk(
        face,
        &req,
        &Query {
            bucket,
            prefix,
            delimiter: input.delimiter.as_deref(),
            after: input.marker.as_ref().map(|m| format!("{bucket}/{m}")),
            max_keys: input.max_keys,
            url,
        },
    )
    .await?;
    let next_marker = walk
        .is_truncated
        .then(|| walk.last.as_deref().map(|l| encode(s3_key(bucket, l), url)))
        .flatten();
    Ok(S3Response::new(ListObjectsOutput {
        name: Some(bucket.to_owned()),
        prefix: Some(encode(prefix, url)),
        delimiter: input.delimiter.as_deref().map(|d| encode(d, url)),
        marker: input.marker.as_deref().map(|m| encode(m, url)),
        max_keys: Some(input.max_keys.unwrap_or(1000)),
        next_marker,
        is_truncated: Some(walk.is_truncated),
        contents: Some(walk.objects),
        common_prefixes: Some(walk.prefixes),
        encoding_type: input.encoding_type.clone(),
        ..Default::default()
    }))
}
