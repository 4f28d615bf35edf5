//! Rust's `object_store` (the AmazonS3 client with conditional puts) against the real
//! storaged: every call an S3-backed Rust service makes, including create-only and
//! compare-and-swap writes and a multipart upload.

use futures_util::TryStreamExt;
use object_store::aws::{AmazonS3Builder, S3ConditionalPut};
use object_store::path::Path;
use object_store::{
    ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion, WriteMultipart,
};

use crate::S3Stack;

fn store(stack: &S3Stack) -> impl ObjectStore {
    let _ = rustls::crypto::ring::default_provider().install_default();
    AmazonS3Builder::new()
        .with_endpoint(stack.endpoint())
        .with_bucket_name("lake")
        .with_access_key_id("k")
        .with_secret_access_key("s")
        .with_region("us-east-1")
        .with_allow_http(true)
        .with_conditional_put(S3ConditionalPut::ETagMatch)
        .build()
        .unwrap()
}

#[tokio::test]
async fn object_store_reads_writes_lists_and_puts_conditionally() {
    let stack = S3Stack::open();
    stack.create_bucket("lake");
    let s3 = store(&stack);

    let key = Path::from("orders/part-0.parquet");
    let put = s3
        .put(&key, PutPayload::from_static(b"hello world"))
        .await
        .unwrap();
    let got = s3.get(&key).await.unwrap();
    assert_eq!(got.meta.size, 11);
    assert_eq!(got.meta.e_tag, put.e_tag);
    assert_eq!(got.bytes().await.unwrap().as_ref(), b"hello world");
    assert_eq!(s3.get_range(&key, 6..11).await.unwrap().as_ref(), b"world");
    assert_eq!(s3.head(&key).await.unwrap().size, 11);

    // Create-only: a second create is AlreadyExists; compare-and-swap on the ETag.
    let once = Path::from("once");
    let create = PutOptions::from(PutMode::Create);
    let first = s3
        .put_opts(&once, "v1".into(), create.clone())
        .await
        .unwrap();
    let again = s3.put_opts(&once, "v2".into(), create).await.unwrap_err();
    assert!(
        matches!(again, object_store::Error::AlreadyExists { .. }),
        "{again}"
    );
    let version = UpdateVersion {
        e_tag: first.e_tag.clone(),
        version: None,
    };
    s3.put_opts(&once, "v3".into(), PutMode::Update(version.clone()).into())
        .await
        .unwrap();
    let stale = s3
        .put_opts(&once, "v4".into(), PutMode::Update(version).into())
        .await
        .unwrap_err();
    assert!(
        matches!(stale, object_store::Error::Precondition { .. }),
        "{stale}"
    );
    assert_eq!(
        s3.get(&once).await.unwrap().bytes().await.unwrap().as_ref(),
        b"v3"
    );

    // Listing with and without a delimiter.
    for i in 0..5 {
        s3.put(&Path::from(format!("orders/2025/{i}.parquet")), "x".into())
            .await
            .unwrap();
    }
    let all: Vec<_> = s3
        .list(Some(&Path::from("orders")))
        .try_collect()
        .await
        .unwrap();
    assert_eq!(all.len(), 6);
    let level = s3
        .list_with_delimiter(Some(&Path::from("orders")))
        .await
        .unwrap();
    assert_eq!(level.common_prefixes, vec![Path::from("orders/2025")]);
    assert_eq!(level.objects.len(), 1);

    // Multipart: three parts of 5 MiB and a tail.
    let big = Path::from("big.bin");
    let content: Vec<u8> = (0..16 * 1024 * 1024 + 7_u32)
        .map(|i| u8::try_from(i % 251).unwrap())
        .collect();
    let upload = s3.put_multipart(&big).await.unwrap();
    let mut writer = WriteMultipart::new_with_chunk_size(upload, 5 * 1024 * 1024);
    writer.write(&content);
    writer.finish().await.unwrap();
    let back = s3.get(&big).await.unwrap();
    assert!(
        back.meta.e_tag.as_deref().unwrap().ends_with("-4\""),
        "{:?}",
        back.meta.e_tag
    );
    assert!(back.bytes().await.unwrap().as_ref() == content.as_slice());

    // Copy, rename, delete.
    s3.copy(&key, &Path::from("copy")).await.unwrap();
    s3.rename(&Path::from("copy"), &Path::from("renamed"))
        .await
        .unwrap();
    assert_eq!(
        s3.get(&Path::from("renamed"))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .as_ref(),
        b"hello world"
    );
    s3.delete(&Path::from("renamed")).await.unwrap();
    let gone = s3.head(&Path::from("renamed")).await.unwrap_err();
    assert!(
        matches!(gone, object_store::Error::NotFound { .. }),
        "{gone}"
    );
}
