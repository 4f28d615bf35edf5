//! The checks of what S3 clients rely on: attributes, S3 tags, assembled objects.

use super::body;
use super::{key, read, read_range};
use crate::backend::{Attributes, Backend, Condition, NewObject, S3Tag, StorageError as Error};

/// An object assembled from parts reads as their concatenation, keeps its attributes and
/// S3 tag, outlives its parts, and is overwritten and deleted like any other.
pub async fn assembled_objects(store: &dyn Backend) {
    let one: Vec<u8> = (0..300 * 1024_u32).map(|i| (i % 241) as u8).collect();
    let two = vec![b'2'; 1000];
    store
        .put(&key("conf/asm/p/1"), Condition::None, body(one.clone()))
        .await
        .unwrap();
    store
        .put(&key("conf/asm/p/2"), Condition::None, body(two.clone()))
        .await
        .unwrap();
    let parts = vec![key("conf/asm/p/1"), key("conf/asm/p/2")];
    let tag = S3Tag {
        digest: [5; 16],
        parts: 2,
    };
    let new = NewObject {
        attrs: Attributes {
            content_type: Some("application/x-parquet".into()),
            ..Attributes::default()
        },
        s3_tag: Some(tag),
        ..NewObject::default()
    };
    let made = store
        .assemble(&key("conf/asm/whole"), new, parts.clone())
        .await
        .unwrap();
    assert!(made.created);
    assert_eq!(made.meta.size, 301 * 1024 - 24);
    if !store.store_etags() {
        assert_eq!(made.meta.s3_tag, Some(tag), "the given tag is kept");
    }
    let whole: Vec<u8> = one.iter().chain(two.iter()).copied().collect();
    assert_eq!(whole.len() as u64, made.meta.size);
    assert!(read(store, "conf/asm/whole").await.unwrap() == whole);
    let edge = read_range(store, "conf/asm/whole", 300 * 1024 - 10, 20).await;
    assert_eq!(edge, whole[300 * 1024 - 10..300 * 1024 + 10]);
    let got = store.get(&key("conf/asm/whole")).await.unwrap();
    assert_eq!(
        (got.meta.etag, got.meta.s3_tag),
        (made.meta.etag, made.meta.s3_tag),
        "the tags are stable"
    );
    assert_eq!(
        got.attrs.content_type.as_deref(),
        Some("application/x-parquet")
    );
    let again = NewObject {
        condition: Condition::Absent,
        ..NewObject::default()
    };
    assert!(matches!(
        store
            .assemble(&key("conf/asm/whole"), again, parts.clone())
            .await,
        Err(Error::PreconditionFailed { .. })
    ));
    let missing = vec![key("conf/asm/p/1"), key("conf/asm/p/9")];
    assert!(matches!(
        store
            .assemble(&key("conf/asm/other"), NewObject::default(), missing)
            .await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        store.get(&key("conf/asm/other")).await,
        Err(Error::NotFound { .. })
    ));
    for part in &parts {
        store.delete(part, Condition::None).await.unwrap();
    }
    assert!(
        read(store, "conf/asm/whole").await.unwrap() == whole,
        "outlives its parts"
    );
    store
        .put(&key("conf/asm/whole"), Condition::None, body("plain now"))
        .await
        .unwrap();
    assert_eq!(read(store, "conf/asm/whole").await.unwrap(), b"plain now");
    store
        .delete(&key("conf/asm/whole"), Condition::None)
        .await
        .unwrap();
    assert!(matches!(
        store.get(&key("conf/asm/whole")).await,
        Err(Error::NotFound { .. })
    ));
}

/// Attributes come back with the content; the S3 tag is the MD5, or the one given for an
/// object assembled from parts; S3 conditions check it; directory markers are objects.
pub async fn attributes_and_s3_tags(store: &dyn Backend) {
    use md5::Digest as _;
    let attrs = Attributes {
        content_type: Some("application/x-parquet".into()),
        cache_control: Some("no-cache".into()),
        metadata: [("owner".to_owned(), "data-eng".to_owned())].into(),
        ..Attributes::default()
    };
    let large = vec![7_u8; 300 * 1024];
    for (k, content) in [
        ("conf/attrs/small", b"hello".to_vec()),
        ("conf/attrs/large", large),
    ] {
        let new = NewObject {
            attrs: attrs.clone(),
            ..NewObject::default()
        };
        let put = store
            .write(&key(k), new, body(content.clone()))
            .await
            .unwrap();
        let md5 = S3Tag::single(md5::Md5::digest(&content).into());
        assert_eq!(put.meta.s3_tag, Some(md5), "{k}");
        let got = store.get(&key(k)).await.unwrap();
        assert_eq!((got.meta.s3_tag, &got.attrs), (Some(md5), &attrs), "{k}");
        assert_eq!(read(store, k).await.unwrap(), content, "{k}");
        let wrong = S3Tag::single([0; 16]);
        assert!(matches!(
            store
                .put(&key(k), Condition::MatchesS3(wrong), body("x"))
                .await,
            Err(Error::PreconditionFailed { .. })
        ));
        store
            .put(&key(k), Condition::MatchesS3(md5), body(content.clone()))
            .await
            .unwrap();
        let plain = store.get(&key(k)).await.unwrap();
        assert_eq!(
            plain.attrs,
            Attributes::default(),
            "a new version has its own attributes"
        );
    }
    let assembled = S3Tag {
        digest: [9; 16],
        parts: 3,
    };
    let new = NewObject {
        s3_tag: Some(assembled),
        ..NewObject::default()
    };
    let put = store
        .write(&key("conf/attrs/parts"), new, body("abc"))
        .await
        .unwrap();
    if !store.store_etags() {
        assert_eq!(put.meta.s3_tag, Some(assembled));
    }
    let listed = store.list("conf/attrs/", None, 10).await.unwrap();
    let tags: Vec<Option<S3Tag>> = listed.objects.iter().map(|m| m.s3_tag).collect();
    assert_eq!(
        tags[1], put.meta.s3_tag,
        "listings carry the S3 tag: {tags:?}"
    );
    store
        .put(&key("conf/attrs/dir/"), Condition::Absent, body(""))
        .await
        .unwrap();
    store
        .put(&key("conf/attrs/dir/inner"), Condition::Absent, body("i"))
        .await
        .unwrap();
    assert_eq!(read(store, "conf/attrs/dir/").await.unwrap(), b"");
    store
        .delete(&key("conf/attrs/dir/"), Condition::None)
        .await
        .unwrap();
    assert_eq!(read(store, "conf/attrs/dir/inner").await.unwrap(), b"i");
}
