//! Buckets: the first segment of native keys. A bucket exists while keys exist under it
//! or once CreateBucket has left its marker `_s3/buckets/<name>`.

use std::collections::BTreeMap;

use manifest_codec::ObjectKey;
use s3s::dto::{
    Bucket, CreateBucketInput, CreateBucketOutput, DeleteBucketInput, DeleteBucketOutput,
    GetBucketLocationInput, GetBucketLocationOutput, HeadBucketInput, HeadBucketOutput,
    ListBucketsInput, ListBucketsOutput,
};
use s3s::{s3_error, S3Request, S3Response, S3Result};

use super::convert::{storage_error, timestamp};
use super::S3Face;
use crate::backend::{list_delimited, Condition, Listed, StorageError};
use crate::http::auth::Access;

/// Where created buckets are remembered.
const MARKERS: &str = "_s3/buckets/";

/// A page of the listings walked to enumerate buckets.
const PAGE: usize = 1000;

fn marker(bucket: &str) -> Result<ObjectKey, s3s::S3Error> {
    ObjectKey::parse(&format!("{MARKERS}{bucket}"))
        .map_err(|e| s3_error!(InvalidBucketName, "bucket {bucket:?}: {e}"))
}

/// S3's bucket naming rules (3–63 of `a-z 0-9 . -`, alphanumeric at both ends), which also
/// keep `_catalog` and `_s3` out of sight.
fn is_bucket_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    (3..=63).contains(&bytes.len())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'.' || *b == b'-')
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
}

impl S3Face {
    /// Whether keys exist under `bucket/`, and whether it was created (its marker).
    async fn bucket_state(&self, bucket: &str) -> S3Result<(bool, bool)> {
        let has_keys = !self
            .backend
            .list(&format!("{bucket}/"), None, 1)
            .await
            .map_err(storage_error)?
            .objects
            .is_empty();
        let marker = marker(bucket)?;
        let created = self
            .backend
            .list(marker.as_str(), None, 1)
            .await
            .map_err(storage_error)?
            .objects
            .first()
            .is_some_and(|m| m.key == marker);
        Ok((has_keys, created))
    }

    /// `NoSuchBucket` unless `bucket` exists.
    pub(super) async fn require_bucket(&self, bucket: &str) -> S3Result<()> {
        match self.bucket_state(bucket).await? {
            (false, false) => Err(s3_error!(NoSuchBucket, "no bucket named {bucket:?}")),
            _ => Ok(()),
        }
    }
}

pub(super) async fn list_buckets(
    face: &S3Face,
    req: S3Request<ListBucketsInput>,
) -> S3Result<S3Response<ListBucketsOutput>> {
    let mut found: BTreeMap<String, Option<std::time::SystemTime>> = BTreeMap::new();
    let mut after: Option<String> = None;
    loop {
        let page = face
            .backend
            .list(MARKERS, after.as_deref(), PAGE)
            .await
            .map_err(storage_error)?;
        for meta in &page.objects {
            let name = &meta.key.as_str()[MARKERS.len()..];
            found.insert(name.to_owned(), Some(meta.last_modified));
        }
        after = page.objects.last().map(|m| m.key.to_string());
        if !page.is_truncated {
            break;
        }
    }
    let mut after: Option<String> = None;
    loop {
        let page = list_delimited(face.backend.as_ref(), "", "/", after.as_deref(), PAGE)
            .await
            .map_err(storage_error)?;
        for entry in &page.entries {
            if let Listed::Prefix(prefix) = entry {
                let name = prefix.trim_end_matches('/');
                found.entry(name.to_owned()).or_insert(None);
            }
        }
        after = page.entries.last().map(|e| e.position().to_owned());
        if !page.is_truncated {
            break;
        }
    }
    let buckets = found
        .into_iter()
        .filter(|(name, _)| is_bucket_name(name) && face.sees_bucket(&req, name))
        .map(|(name, created)| Bucket {
            name: Some(name),
            creation_date: Some(timestamp(created.unwrap_or(std::time::UNIX_EPOCH))),
            ..Default::default()
        })
        .collect();
    Ok(S3Response::new(ListBucketsOutput {
        buckets: Some(buckets),
        ..Default::default()
    }))
}

pub(super) async fn create_bucket(
    face: &S3Face,
    req: S3Request<CreateBucketInput>,
) -> S3Result<S3Response<CreateBucketOutput>> {
    let bucket = req.input.bucket.as_str();
    face.authorize(&req, Access::Write(&format!("{bucket}/")))?;
    if !is_bucket_name(bucket) {
        return Err(s3_error!(
            InvalidBucketName,
            "{bucket:?} breaks S3's bucket naming rules"
        ));
    }
    let exists = || s3_error!(BucketAlreadyOwnedByYou, "bucket {bucket:?} exists");
    if face.bucket_state(bucket).await? != (false, false) {
        return Err(exists());
    }
    let empty = futures_util::stream::once(async { Ok(bytes::Bytes::new()) });
    match face
        .backend
        .put(&marker(bucket)?, Condition::Absent, Box::pin(empty))
        .await
    {
        Ok(_) => {}
        Err(StorageError::PreconditionFailed { .. }) => return Err(exists()),
        Err(e) => return Err(storage_error(e)),
    }
    tracing::info!(bucket, "s3: bucket created");
    Ok(S3Response::new(CreateBucketOutput {
        location: Some(format!("/{bucket}")),
    }))
}

pub(super) async fn head_bucket(
    face: &S3Face,
    req: S3Request<HeadBucketInput>,
) -> S3Result<S3Response<HeadBucketOutput>> {
    face.authorize_bucket(&req, &req.input.bucket)?;
    face.require_bucket(&req.input.bucket).await?;
    Ok(S3Response::new(HeadBucketOutput::default()))
}

pub(super) async fn get_bucket_location(
    face: &S3Face,
    req: S3Request<GetBucketLocationInput>,
) -> S3Result<S3Response<GetBucketLocationOutput>> {
    face.authorize_bucket(&req, &req.input.bucket)?;
    face.require_bucket(&req.input.bucket).await?;
    Ok(S3Response::new(GetBucketLocationOutput::default()))
}

pub(super) async fn delete_bucket(
    face: &S3Face,
    req: S3Request<DeleteBucketInput>,
) -> S3Result<S3Response<DeleteBucketOutput>> {
    let bucket = req.input.bucket.as_str();
    face.authorize(&req, Access::Write(&format!("{bucket}/")))?;
    match face.bucket_state(bucket).await? {
        (true, _) => Err(s3_error!(BucketNotEmpty, "bucket {bucket:?} holds objects")),
        (false, false) => Err(s3_error!(NoSuchBucket, "no bucket named {bucket:?}")),
        (false, true) => {
            face.backend
                .delete(&marker(bucket)?, Condition::None)
                .await
                .map_err(storage_error)?;
            tracing::info!(bucket, "s3: bucket deleted");
            Ok(S3Response::new(DeleteBucketOutput::default()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names_follow_s3s_rules() {
        for good in ["lake", "my-bucket.2", "abc"] {
            assert!(is_bucket_name(good), "{good}");
        }
        for bad in [
            "_catalog",
            "_s3",
            "ab",
            "Lake",
            "-lake",
            "lake-",
            &"x".repeat(64),
        ] {
            assert!(!is_bucket_name(bad), "{bad}");
        }
    }
}
