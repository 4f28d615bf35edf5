//! The contract every [`Backend`] must meet, as plain async functions that each backend's
//! tests call (object_store's `integration.rs` pattern).

use bytes::Bytes;
use futures_util::StreamExt;
use manifest_codec::ObjectKey;

mod s3_features;

pub use s3_features::{assembled_objects, attributes_and_s3_tags};

use super::{Backend, Body, BodyError, Condition, ETag, StorageError as Error};

/// A body that yields `data` in one chunk.
pub fn body(data: impl Into<Bytes>) -> Body {
    let data = data.into();
    futures_util::stream::once(async move { Ok(data) }).boxed()
}

/// A body that yields `data` and then fails.
pub fn failing_body(data: impl Into<Bytes>) -> Body {
    let data = data.into();
    futures_util::stream::iter([Ok(data), Err(BodyError::Aborted("client went away".into()))])
        .boxed()
}

fn key(k: &str) -> ObjectKey {
    ObjectKey::parse(k).unwrap()
}

/// The ETag a backend gives `content` written in one piece.
pub fn etag_of(store: &dyn Backend, content: &[u8]) -> ETag {
    use md5::Digest as _;
    if store.store_etags() {
        ETag::from_bytes(md5::Md5::digest(content).into())
    } else {
        ETag::of(content)
    }
}

/// Reads a whole object.
pub async fn read(store: &dyn Backend, k: &str) -> Result<Vec<u8>, Error> {
    let reader = store.get(&key(k)).await?;
    let size = reader.meta.size;
    let mut stream = reader.stream(0, size);
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk.unwrap());
    }
    Ok(out)
}

/// Runs every check in this module.
pub async fn run_all(store: &dyn Backend) {
    put_get_overwrite(store).await;
    ranges(store).await;
    conditions(store).await;
    failed_body_stores_nothing(store).await;
    concurrent_creates(store).await;
    concurrent_sibling_keys(store).await;
    listing(store).await;
    file_and_directory_keys_coexist(store).await;
    attributes_and_s3_tags(store).await;
    assembled_objects(store).await;
    assert!(store.is_ready().await);
}

/// Reads `start..start+len` of `k`.
async fn read_range(store: &dyn Backend, k: &str, start: u64, len: u64) -> Vec<u8> {
    let mut stream = store.get(&key(k)).await.unwrap().stream(start, len);
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk.unwrap());
    }
    out
}

/// Put, get, overwrite, ETag semantics, delete idempotence.
pub async fn put_get_overwrite(store: &dyn Backend) {
    let k = key("conf/basic/object.bin");
    let first = store.put(&k, Condition::None, body("hello")).await.unwrap();
    assert!(first.created);
    assert_eq!(first.meta.size, 5);
    assert_eq!(first.meta.etag, etag_of(store, b"hello"));
    assert_eq!(
        read(store, "conf/basic/object.bin").await.unwrap(),
        b"hello"
    );
    let got = store.get(&k).await.unwrap();
    assert_eq!(got.meta.etag, first.meta.etag);
    assert_eq!(got.meta.size, 5);

    let second = store
        .put(&k, Condition::None, body("world!"))
        .await
        .unwrap();
    assert!(!second.created);
    assert_ne!(second.meta.etag, first.meta.etag);
    assert_eq!(
        read(store, "conf/basic/object.bin").await.unwrap(),
        b"world!"
    );

    let empty = store
        .put(&key("conf/basic/empty"), Condition::None, body(""))
        .await
        .unwrap();
    assert_eq!(empty.meta.size, 0);
    assert_eq!(read(store, "conf/basic/empty").await.unwrap(), b"");

    store.delete(&k, Condition::None).await.unwrap();
    assert!(matches!(store.get(&k).await, Err(Error::NotFound { .. })));
    store.delete(&k, Condition::None).await.unwrap();
    store
        .delete(&key("conf/basic/empty"), Condition::None)
        .await
        .unwrap();
    assert!(matches!(
        store.get(&key("conf/never")).await,
        Err(Error::NotFound { .. })
    ));
}

/// Streaming a sub-range returns exactly those bytes.
pub async fn ranges(store: &dyn Backend) {
    let k = key("conf/range");
    store
        .put(&k, Condition::None, body("0123456789"))
        .await
        .unwrap();
    for (start, len, expected) in [
        (0, 10, "0123456789"),
        (3, 4, "3456"),
        (9, 1, "9"),
        (5, 0, ""),
    ] {
        let mut stream = store.get(&k).await.unwrap().stream(start, len);
        let mut out = Vec::new();
        while let Some(chunk) = stream.next().await {
            out.extend_from_slice(&chunk.unwrap());
        }
        assert_eq!(out, expected.as_bytes(), "{start}+{len}");
    }
    store.delete(&k, Condition::None).await.unwrap();
}

/// Conditional puts and deletes; a failed condition changes nothing.
pub async fn conditions(store: &dyn Backend) {
    let k = key("conf/cond");
    let created = store.put(&k, Condition::Absent, body("v1")).await.unwrap();
    let e = store
        .put(&k, Condition::Absent, body("v2"))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::PreconditionFailed { .. }), "{e:?}");
    assert_eq!(read(store, "conf/cond").await.unwrap(), b"v1");

    let wrong = ETag::of(b"something else");
    let e = store
        .put(&k, Condition::Matches(wrong), body("v2"))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::PreconditionFailed { .. }), "{e:?}");
    assert_eq!(read(store, "conf/cond").await.unwrap(), b"v1");

    let updated = store
        .put(&k, Condition::Matches(created.meta.etag), body("v2"))
        .await
        .unwrap();
    assert!(!updated.created);
    store.put(&k, Condition::Exists, body("v3")).await.unwrap();
    let e = store
        .put(&key("conf/cond-missing"), Condition::Exists, body("x"))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::PreconditionFailed { .. }));
    let e = store
        .put(
            &key("conf/cond-missing"),
            Condition::Matches(wrong),
            body("x"),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, Error::PreconditionFailed { .. }));
    assert!(matches!(
        store.get(&key("conf/cond-missing")).await,
        Err(Error::NotFound { .. })
    ));

    let e = store
        .delete(&k, Condition::Matches(wrong))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::PreconditionFailed { .. }));
    assert_eq!(read(store, "conf/cond").await.unwrap(), b"v3");
    let current = store.get(&k).await.unwrap().meta.etag;
    store.delete(&k, Condition::Matches(current)).await.unwrap();
    let e = store.delete(&k, Condition::Exists).await.unwrap_err();
    assert!(matches!(e, Error::PreconditionFailed { .. }));
}

/// A body that fails part-way stores nothing and leaves the previous version.
pub async fn failed_body_stores_nothing(store: &dyn Backend) {
    let k = key("conf/failing");
    let e = store
        .put(&k, Condition::None, failing_body("partial"))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Body(BodyError::Aborted(_))), "{e:?}");
    assert!(matches!(store.get(&k).await, Err(Error::NotFound { .. })));
    store.put(&k, Condition::None, body("old")).await.unwrap();
    store
        .put(&k, Condition::None, failing_body("new"))
        .await
        .unwrap_err();
    assert_eq!(read(store, "conf/failing").await.unwrap(), b"old");
    store.delete(&k, Condition::None).await.unwrap();
}

/// Of 16 interleaved creates of one key, exactly one wins.
pub async fn concurrent_creates(store: &dyn Backend) {
    let k = key("conf/race");
    let attempts = (0..16).map(|i| {
        let k = k.clone();
        async move {
            store
                .put(&k, Condition::Absent, body(format!("writer {i}")))
                .await
        }
    });
    let results = futures_util::future::join_all(attempts).await;
    let winners: Vec<_> = results.iter().filter(|r| r.is_ok()).collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    for r in results.iter().filter(|r| r.is_err()) {
        assert!(matches!(r, Err(Error::PreconditionFailed { .. })), "{r:?}");
    }
    let content = read(store, "conf/race").await.unwrap();
    assert!(content.starts_with(b"writer "));
    store.delete(&k, Condition::None).await.unwrap();
}

/// Concurrent writes, overwrites and deletes of different keys that share directory
/// levels (one operation per key per round, all at once; small objects and ones over the
/// write log's default size): every operation succeeds, and after each round every key
/// reads back as its operation left it and the listing shows exactly the keys that read
/// back. (A delete once pruned a directory a sibling's delete was about to fsync.)
pub async fn concurrent_sibling_keys(store: &dyn Backend) {
    const KEYS: [&str; 7] = [
        "conf/sib/a",
        "conf/sib/b",
        "conf/sib/d/c",
        "conf/sib/d/e",
        "conf/sib/d/f/g",
        "conf/sib/h/i/j",
        "conf/sib/h/k",
    ];
    let large = vec![b'L'; 300 * 1024];
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut held: Vec<Option<Vec<u8>>> = vec![None; KEYS.len()];
    for round in 0..24 {
        let mut ops = Vec::new();
        for (i, k) in KEYS.iter().enumerate() {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let content = match seed % 5 {
                0 | 1 => None,
                2 => {
                    let mut v = large.clone();
                    v[..8].copy_from_slice(&(round * 100 + i as u64).to_le_bytes());
                    Some(v)
                }
                _ => Some(format!("round {round} key {k}").into_bytes()),
            };
            held[i].clone_from(&content);
            ops.push(async move {
                let k = key(k);
                match content {
                    Some(v) => store.put(&k, Condition::None, body(v)).await.map(|_| ()),
                    None => store.delete(&k, Condition::None).await,
                }
            });
        }
        for (k, result) in KEYS.iter().zip(futures_util::future::join_all(ops).await) {
            assert!(result.is_ok(), "round {round}, {k}: {result:?}");
        }
        let mut present = Vec::new();
        for (k, expected) in KEYS.iter().zip(&held) {
            let got = read(store, k).await;
            match (expected, got) {
                (Some(v), Ok(got)) => {
                    assert!(got == *v, "round {round}, {k}: other content");
                    present.push((*k).to_owned());
                }
                (None, Err(Error::NotFound { .. })) => {}
                (expected, got) => panic!(
                    "round {round}, {k}: expected {:?} bytes, got {:?}",
                    expected.as_ref().map(Vec::len),
                    got.map(|g| g.len())
                ),
            }
        }
        let listed: Vec<String> = store
            .list("conf/sib/", None, 100)
            .await
            .unwrap()
            .objects
            .into_iter()
            .map(|m| m.key.to_string())
            .collect();
        assert_eq!(
            listed, present,
            "round {round}: the listing and GET disagree"
        );
    }
    for k in KEYS {
        store.delete(&key(k), Condition::None).await.unwrap();
    }
}

/// Listing: byte order, prefixes, start-after, limits, truncation.
pub async fn listing(store: &dyn Backend) {
    let keys = [
        "list/a",
        "list/a/b",
        "list/a0",
        "list/b",
        "list/caf\u{e9}",
        "list/cafe\u{301}",
        "list/z/z/z",
    ];
    for k in keys {
        store
            .put(&key(k), Condition::None, body(k.as_bytes().to_vec()))
            .await
            .unwrap();
    }
    let mut sorted: Vec<&str> = keys.to_vec();
    sorted.sort_unstable(); // str order is byte order
    let all = store.list("list/", None, 100).await.unwrap();
    assert!(!all.is_truncated);
    let listed: Vec<&str> = all.objects.iter().map(|m| m.key.as_str()).collect();
    if store.store_etags() {
        // A remote store lists in its own order: AWS S3's is UTF-8 byte order, moto's
        // differs for non-ASCII keys. ASCII keys come in byte order everywhere.
        let ascii: Vec<&str> = listed.iter().copied().filter(|k| k.is_ascii()).collect();
        let mut all_sorted = listed.clone();
        all_sorted.sort_unstable();
        assert_eq!(all_sorted, sorted);
        assert!(ascii.is_sorted(), "{listed:?}");
        sorted = listed.clone();
    } else {
        assert_eq!(listed, sorted);
    }
    assert_eq!(all.objects[0].size, "list/a".len() as u64);
    assert_eq!(all.objects[0].etag, etag_of(store, b"list/a"));

    // Walk one key at a time.
    let mut walked = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store.list("list/", after.as_deref(), 1).await.unwrap();
        walked.extend(page.objects.iter().map(|m| m.key.to_string()));
        if !page.is_truncated {
            break;
        }
        after = page.objects.last().map(|m| m.key.to_string());
    }
    assert_eq!(walked, sorted);

    let page = store.list("list/a", None, 2).await.unwrap();
    assert!(page.is_truncated);
    assert_eq!(page.objects.len(), 2);
    let page = store.list("list/", Some("list/b"), 100).await.unwrap();
    if !store.store_etags() {
        // "cafe\u{301}" sorts before "caf\u{e9}": 'e' (0x65) is below 0xC3.
        assert_eq!(page.objects[0].key.as_str(), "list/cafe\u{301}");
        assert_eq!(page.objects[1].key.as_str(), "list/caf\u{e9}");
    }
    assert_eq!(page.objects.len(), 3);
    // start-after before the prefix still yields only prefixed keys
    let page = store.list("list/z", Some("a"), 100).await.unwrap();
    assert_eq!(page.objects.len(), 1);
    assert!(store
        .list("nothing-here/", None, 10)
        .await
        .unwrap()
        .objects
        .is_empty());
    for k in keys {
        store.delete(&key(k), Condition::None).await.unwrap();
    }
    assert!(store
        .list("list/", None, 10)
        .await
        .unwrap()
        .objects
        .is_empty());
}

/// `a` and `a/b` are both objects at once.
pub async fn file_and_directory_keys_coexist(store: &dyn Backend) {
    store
        .put(&key("nest"), Condition::None, body("parent"))
        .await
        .unwrap();
    store
        .put(&key("nest/child"), Condition::None, body("child"))
        .await
        .unwrap();
    assert_eq!(read(store, "nest").await.unwrap(), b"parent");
    assert_eq!(read(store, "nest/child").await.unwrap(), b"child");
    store
        .delete(&key("nest/child"), Condition::None)
        .await
        .unwrap();
    assert_eq!(read(store, "nest").await.unwrap(), b"parent");
    store.delete(&key("nest"), Condition::None).await.unwrap();
}
