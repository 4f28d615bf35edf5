//! ListParts and ListMultipartUploads: what is staged under `_s3/uploads/<bucket>/`.

use std::time::{Duration, UNIX_EPOCH};

use s3s::dto::{
    ListMultipartUploadsInput, ListMultipartUploadsOutput, ListPartsInput, ListPartsOutput,
    MultipartUpload, Part,
};
use s3s::{S3Request, S3Response, S3Result};

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
    let mut listed = Vec::new();
    for id in uploads {
        let Some(upload) = face.record(bucket, &id).await? else {
            continue;
        };
        if upload.key.starts_with(prefix) {
            let initiated = UNIX_EPOCH + Duration::from_secs(upload.initiated);
            listed.push(MultipartUpload {
                key: Some(upload.key),
                upload_id: Some(id),
                initiated: Some(timestamp(initiated)),
                ..Default::default()
            });
        }
    }
    listed.sort_by(|a, b| (&a.key, &a.upload_id).cmp(&(&b.key, &b.upload_id)));
    Ok(S3Response::new(ListMultipartUploadsOutput {
        bucket: Some(bucket.to_owned()),
        prefix: input.prefix.clone(),
        is_truncated: Some(false),
        uploads: Some(listed),
        ..Default::default()
    }))
}
