//! The S3 face: the S3 REST API (s3s) on its own listener, over the same backend as the
//! native API (docs/s3-compatibility.md, ADR 0015).
//!
//! Bucket `b` and key `k` are the native key `b/k`. A bucket exists once created or while
//! keys exist under it; a created bucket is remembered by the object `_s3/buckets/<b>`
//! (invisible here: no bucket name begins with `_`). The face runs on its own
//! multi-threaded tokio runtime, so its requests never wait behind actix's workers.

mod access;
mod buckets;
mod checksum;
mod convert;
mod copy;
mod list;
pub(crate) mod multipart;
mod objects;
mod open;
mod serve;
mod uploads;

use std::sync::Arc;

use s3s::dto::{
    AbortMultipartUploadInput, AbortMultipartUploadOutput, CompleteMultipartUploadInput,
    CompleteMultipartUploadOutput, CopyObjectInput, CopyObjectOutput, CreateBucketInput,
    CreateBucketOutput, CreateMultipartUploadInput, CreateMultipartUploadOutput, DeleteBucketInput,
    DeleteBucketOutput, DeleteObjectInput, DeleteObjectOutput, DeleteObjectsInput,
    DeleteObjectsOutput, GetBucketLocationInput, GetBucketLocationOutput, GetObjectInput,
    GetObjectOutput, HeadBucketInput, HeadBucketOutput, HeadObjectInput, HeadObjectOutput,
    ListBucketsInput, ListBucketsOutput, ListMultipartUploadsInput, ListMultipartUploadsOutput,
    ListObjectsInput, ListObjectsOutput, ListObjectsV2Input, ListObjectsV2Output, ListPartsInput,
    ListPartsOutput, PutObjectInput, PutObjectOutput, UploadPartCopyInput, UploadPartCopyOutput,
    UploadPartInput, UploadPartOutput,
};
use s3s::{S3Request, S3Response, S3Result};
use service_kit::credentials::CredentialStore;

use crate::backend::Backend;
use crate::http::auth::StoragedScope;
use crate::metrics::Metrics;

pub use serve::S3Server;

/// What every S3 operation shares.
#[derive(Debug, Clone)]
pub struct S3Face {
    backend: Arc<dyn Backend>,
    credentials: Arc<CredentialStore<StoragedScope>>,
    metrics: Metrics,
    max_object_size: u64,
}

impl S3Face {
    /// The face over `backend`, authorizing with `credentials` (none: open).
    pub fn new(
        backend: Arc<dyn Backend>,
        credentials: Arc<CredentialStore<StoragedScope>>,
        metrics: Metrics,
        max_object_size: u64,
    ) -> Self {
        Self {
            backend,
            credentials,
            metrics,
            max_object_size,
        }
    }
}

/// Names the operation of `req` for the metrics (see `serve`).
fn named<T>(req: &S3Request<T>, operation: &'static str) {
    if let Some(slot) = req.extensions.get::<serve::Operation>() {
        slot.set(operation);
    }
}

#[async_trait::async_trait]
impl s3s::S3 for S3Face {
    async fn list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        named(&req, "ListBuckets");
        buckets::list_buckets(self, req).await
    }

    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        named(&req, "CreateBucket");
        buckets::create_bucket(self, req).await
    }

    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        named(&req, "HeadBucket");
        buckets::head_bucket(self, req).await
    }

    async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        named(&req, "DeleteBucket");
        buckets::delete_bucket(self, req).await
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        named(&req, "GetBucketLocation");
        buckets::get_bucket_location(self, req).await
    }

    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        named(&req, "PutObject");
        objects::put_object(self, req).await
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        named(&req, "GetObject");
        objects::get_object(self, req).await
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        named(&req, "HeadObject");
        objects::head_object(self, req).await
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        named(&req, "DeleteObject");
        objects::delete_object(self, req).await
    }

    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        named(&req, "DeleteObjects");
        objects::delete_objects(self, req).await
    }

    async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        named(&req, "CopyObject");
        copy::copy_object(self, req).await
    }

    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        named(&req, "ListObjects");
        list::list_objects(self, req).await
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        named(&req, "ListObjectsV2");
        list::list_objects_v2(self, req).await
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        named(&req, "CreateMultipartUpload");
        multipart::create(self, req).await
    }

    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        named(&req, "UploadPart");
        multipart::upload_part(self, req).await
    }

    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        named(&req, "UploadPartCopy");
        copy::upload_part_copy(self, req).await
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        named(&req, "CompleteMultipartUpload");
        multipart::complete(self, req).await
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        named(&req, "AbortMultipartUpload");
        multipart::abort(self, req).await
    }

    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        named(&req, "ListParts");
        uploads::list_parts(self, req).await
    }

    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        named(&req, "ListMultipartUploads");
        uploads::list_uploads(self, req).await
    }
}
