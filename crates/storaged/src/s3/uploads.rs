//! ListParts and ListMultipartUploads (markers, delimiter, `max-uploads`): what is staged
//! under `_s3/uploads/<bucket>/`.

use std::time::{Duration, UNIX_EPOCH};

use s3s::dto::{
    CommonPrefix, ListMultipartUploadsInput, ListMultipartUploadsOutput, ListPartsInput,
    ListPartsOutput, MultipartUpload, Part,
};
use s3s::{s3_error, S3Request, S3Response, S3Result};

use super::convert::{etag, native_key, storage_error, timestamp};
use super::multipart::{RECORD, UPLOADS};
use super::S3Face;
use crate::backend::ObjectMeta;
use crate::http::auth::Access;

pub(super) async fn list_parts(
    face: &S3Face,
    req: S3Request<ListPartsInput>,
) -> S3Result<S3Response<ListPartsOutput>> {
    let input = &req.input;
    let target = native_key(&input.bucket, &input.key)?;
    face.authorize(&req, Access::Read(target.as_str()))?;
    face.upload(&input.bucket, &input.key, &input.upload_id)
        .await?;
    let marker = u32::try_from(input.part_number_marker.unwrap_or(0)).unwrap_or(0);
    let max = usize::try_from(input.max_parts.unwrap_or(1000).clamp(0, 1000)).unwrap_or(1000);
    let staged: Vec<(u32, ObjectMeta)> = face
        .parts(&input.bucket, &input.upload_id)
        .await?
        .into_iter()
        .filter(|(n, _)| *n > marker)
        .collect();
    let is_truncated = staged.len() > max;
    let parts: Vec<Part> = staged
        .into_iter()
        .take(max)
        .map(|(n, meta)| Part {
            part_number: i32::try_from(n).ok(),
            e_tag: Some(etag(&meta)),
            size: i64::try_from(meta.size).ok(),
            last_modified: Some(timestamp(meta.last_modified)),
            ..Default::default()
        })
        .collect();
    let next = parts.last().and_then(|p| p.part_number);
    Ok(S3Response::new(ListPartsOutput {
        bucket: Some(input.bucket.clone()),
        key: Some(input.key.clone()),
        upload_id: Some(input.upload_id.clone()),
        max_parts: Some(i32::try_from(max).unwrap_or(1000)),
        part_number_marker: input.part_number_marker,
        next_part_number_marker: if is_truncated { next } else { None },
        is_truncated: Some(is_truncated),
        parts: Some(parts),
        ..Default::default()
    }))
}

pub(super) async fn list_uploads(
    face: &S3Face,
    req: S3Request<ListMultipartUploadsInput>,
) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
    let input = &req.input;
    let bucket = input.bucket.as_str();
    let prefix = input.prefix.as_deref().unwrap_or_default();
    face.authorize(&req, Access::List(&format!("{bucket}/{prefix}")))?;
    face.require_bucket(bucket).await?;
    let root = format!("{UPLOADS}{bucket}/");
    let mut uploads = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = face
            .backend
            .list(&root, after.as_deref(), 1000)
            .await
            .map_err(storage_error)?;
        for meta in &page.objects {
            let rest = &meta.key.as_str()[root.len()..];
            if let Some(id) = rest.strip_suffix(&format!("/{RECORD}")) {
                uploads.push(id.to_owned());
            }
        }
        after = page.objects.last().map(|m| m.key.to_string());
        if !page.is_truncated {
            break;
        }
    }
    let mut listed: Vec<(String, String, u64)> = Vec::new();
    for id in uploads {
        let Some(upload) = face.record(bucket, &id).await? else {
            continue;
        };
        if upload.key.starts_with(prefix) {
            listed.push((upload.key, id, upload.initiated));
        }
    }
    listed.sort();
    let page = page_of_uploads(listed, input)?;
    let to_upload = |(key, id, initiated): (String, String, u64)| MultipartUpload {
        key: Some(key),
        upload_id: Some(id),
        initiated: Some(timestamp(UNIX_EPOCH + Duration::from_secs(initiated))),
        ..Default::default()
    };
    Ok(S3Response::new(ListMultipartUploadsOutput {
        bucket: Some(bucket.to_owned()),
        prefix: input.prefix.clone(),
        delimiter: input.delimiter.clone(),
        key_marker: input.key_marker.clone(),
        upload_id_marker: input.upload_id_marker.clone(),
        max_uploads: Some(i32::try_from(page.max).unwrap_or(1000)),
        is_truncated: Some(page.next.is_some()),
        next_key_marker: page.next.as_ref().map(|(k, _)| k.clone()),
        next_upload_id_marker: page.next.and_then(|(_, id)| id),
        uploads: Some(page.uploads.into_iter().map(to_upload).collect()),
        common_prefixes: Some(
            page.prefixes
                .into_iter()
                .map(|p| CommonPrefix { prefix: Some(p) })
                .collect(),
        ),
        ..Default::default()
    }))
}

/// One page of a bucket's uploads.
struct UploadsPage {
    uploads: Vec<(String, String, u64)>,
    prefixes: Vec<String>,
    max: usize,
    /// Where the next page starts (key marker, upload id marker), when there is one.
    next: Option<(String, Option<String>)>,
}

/// The page of `all` (sorted by key, then upload id) that `input`'s markers, delimiter and
/// `max-uploads` ask for: after (`key-marker`, `upload-id-marker`), keys that hold the
/// delimiter past the prefix rolled up into common prefixes.
fn page_of_uploads(
    all: Vec<(String, String, u64)>,
    input: &ListMultipartUploadsInput,
) -> S3Result<UploadsPage> {
    let max = match input.max_uploads {
        None => 1000,
        Some(n) if n < 0 => {
            return Err(s3_error!(
                InvalidArgument,
                "max-uploads must not be negative"
            ))
        }
        Some(n) => usize::try_from(n).unwrap_or(1000).min(1000),
    };
    let prefix = input.prefix.as_deref().unwrap_or_default();
    let delimiter = input.delimiter.as_deref().filter(|d| !d.is_empty());
    let key_marker = input.key_marker.as_deref();
    let id_marker = input.upload_id_marker.as_deref();
    let after = |key: &str, id: &str| match (key_marker, id_marker) {
        (None, _) => true,
        (Some(k), None) => key > k,
        (Some(k), Some(i)) => key > k || (key == k && id > i),
    };
    let mut page = UploadsPage {
        uploads: Vec::new(),
        prefixes: Vec::new(),
        max,
        next: None,
    };
    for (key, id, initiated) in all.into_iter().filter(|(k, i, _)| after(k, i)) {
        let rolled = delimiter.and_then(|d| {
            key[prefix.len()..]
                .find(d)
                .map(|at| key[..prefix.len() + at + d.len()].to_owned())
        });
        if let Some(common) = &rolled {
            if page.prefixes.last() == Some(common)
                || key_marker.is_some_and(|k| k.starts_with(common.as_str()))
            {
                continue;
            }
        }
        if page.uploads.len() + page.prefixes.len() == max {
            page.next = Some(match (page.uploads.last(), page.prefixes.last()) {
                (Some((k, i, _)), Some(p)) if k.as_str() > p.as_str() => {
                    (k.clone(), Some(i.clone()))
                }
                (_, Some(p)) => (p.clone(), None),
                (Some((k, i, _)), None) => (k.clone(), Some(i.clone())),
                (None, None) => break,
            });
            break;
        }
        match rolled {
            Some(common) => page.prefixes.push(common),
            None => page.uploads.push((key, id, initiated)),
        }
    }
    Ok(page)
}
