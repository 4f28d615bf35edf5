//! The S3 backend against a real S3 server (moto, from the project venv).

use std::io::{Read, Write};

use bytes::Bytes;
use futures_util::StreamExt;
use manifest_codec::ObjectKey;
use testkit::Moto;

use super::S3Store;
use crate::backend::conformance::{self, body, read};
use crate::backend::{Backend, BodyError, Condition, NewObject, StorageError};
use crate::config::S3Settings;

fn settings(moto: &Moto, bucket: &str, prefix: &str) -> S3Settings {
    moto.create_bucket(bucket);
    S3Settings {
        endpoint: Some(moto.endpoint()),
        region: "us-east-1".into(),
        bucket: bucket.into(),
        prefix: prefix.into(),
        access_key_id: Some("testing".into()),
        secret_access_key: Some(serde_json::from_str("\"testing\"").unwrap()),
        secret_access_key_file: None,
        allow_http: true,
        timeout: std::time::Duration::from_secs(10),
    }
}

/// The byte chunk `i` of [`large_body`] is made of.
fn fill(i: usize) -> u8 {
    u8::try_from(i % 251).unwrap()
}

fn key(k: &str) -> ObjectKey {
    ObjectKey::parse(k).unwrap()
}

/// `len` bytes in chunks of 64 KiB, the last chunk failing when `fail` is set.
fn large_body(len: usize, fail: bool) -> crate::backend::Body {
    let chunks = (0..len.div_ceil(65536)).map(move |i| {
        let n = 65536.min(len - i * 65536);
        Ok(Bytes::from(vec![fill(i); n]))
    });
    let tail = fail.then(|| Err(BodyError::Aborted("client went away".into())));
    futures_util::stream::iter(chunks.chain(tail)).boxed()
}

#[tokio::test]
async fn conformance_on_moto() {
    let moto = Moto::start();
    let store = S3Store::open(&settings(&moto, "lake", "")).await.unwrap();
    conformance::run_all(&store).await;
    let prefixed = S3Store::open(&settings(&moto, "prefixed", "team/prod/"))
        .await
        .unwrap();
    conformance::run_all(&prefixed).await;
}

/// storaged itself (local backend) serving its S3 face on a free port, with bucket `lake`:
/// a second S3 implementation under the backend, so the suite does not pass by one mock's
/// quirks. Returns the settings of a store under `prefix` and the server's handle.
async fn storaged_face(
    dir: &std::path::Path,
    prefix: &str,
) -> (S3Settings, actix_web::dev::ServerHandle) {
    use std::collections::HashMap;
    let env: HashMap<String, String> = [
        ("STORAGED_LISTEN", "127.0.0.1:0".to_owned()),
        ("STORAGED_S3_LISTEN", "127.0.0.1:0".to_owned()),
        ("STORAGED_DATA_DIR", dir.display().to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let settings =
        crate::config::Settings::load(None, &env, &crate::config::Overrides::default()).unwrap();
    let app = crate::startup::Application::build(settings).await.unwrap();
    let s3_port = app.s3_port().unwrap();
    let handle = app.handle();
    actix_web::rt::spawn(app.run_until_stopped());
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", s3_port)).unwrap();
    write!(
        stream,
        "PUT /lake HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let settings = S3Settings {
        endpoint: Some(format!("http://127.0.0.1:{s3_port}")),
        region: "us-east-1".into(),
        bucket: "lake".into(),
        prefix: prefix.into(),
        access_key_id: Some("any".into()),
        secret_access_key: Some(serde_json::from_str("\"any\"").unwrap()),
        secret_access_key_file: None,
        allow_http: true,
        timeout: std::time::Duration::from_secs(10),
    };
    (settings, handle)
}

#[actix_web::test]
async fn conformance_on_storaged_s3_face() {
    let dir = tempfile::tempdir().unwrap();
    let (settings, handle) = storaged_face(dir.path(), "on-face").await;
    let store = S3Store::open(&settings).await.unwrap();
    conformance::run_all(&store).await;
    large_bodies(&store).await;
    handle.stop(true).await;
}

#[tokio::test]
async fn large_bodies_stream_as_multipart_uploads() {
    let moto = Moto::start();
    let store = S3Store::open(&settings(&moto, "lake", "p")).await.unwrap();
    large_bodies(&store).await;
}

/// Long bodies: multipart uploads, staged conditional creates, failures that store nothing.
async fn large_bodies(store: &S3Store) {
    let len = 20 * 1024 * 1024 + 123;
    let made = store
        .put(&key("big/one"), Condition::None, large_body(len, false))
        .await
        .unwrap();
    assert!(made.created);
    assert_eq!(made.meta.size, len as u64);
    assert_eq!(made.meta.s3_tag.map(|t| t.parts), Some(3), "8 MiB parts");
    let back = read(store, "big/one").await.unwrap();
    assert_eq!(back.len(), len);
    assert!(back
        .chunks(65536)
        .enumerate()
        .all(|(i, c)| c.iter().all(|b| *b == fill(i))));
    let got = store.get(&key("big/one")).await.unwrap();
    assert_eq!(
        (got.meta.etag, got.meta.s3_tag),
        (made.meta.etag, made.meta.s3_tag)
    );
    let mut tail = Vec::new();
    let mut stream = got.stream(len as u64 - 5, 5);
    while let Some(chunk) = stream.next().await {
        tail.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(tail, vec![fill((len - 1) / 65536); 5]);

    // A conditional create of a long body: staged, then copied into place atomically.
    let created = store
        .put(&key("big/two"), Condition::Absent, large_body(len, false))
        .await
        .unwrap();
    assert!(created.created);
    assert_eq!(read(store, "big/two").await.unwrap().len(), len);
    let again = store
        .put(&key("big/two"), Condition::Absent, large_body(len, false))
        .await;
    assert!(
        matches!(again, Err(StorageError::PreconditionFailed { .. })),
        "{again:?}"
    );
    let update = store
        .put(
            &key("big/two"),
            Condition::Matches(created.meta.etag),
            large_body(len, false),
        )
        .await;
    assert!(
        matches!(update, Err(StorageError::Unsupported { .. })),
        "{update:?}"
    );

    // A body that fails part-way stores nothing; the previous version stays.
    let failed = store
        .put(&key("big/one"), Condition::None, large_body(len, true))
        .await;
    assert!(matches!(failed, Err(StorageError::Body(_))), "{failed:?}");
    assert_eq!(
        store.get(&key("big/one")).await.unwrap().meta.etag,
        made.meta.etag
    );
    let failed = store
        .put(&key("big/three"), Condition::Absent, large_body(len, true))
        .await;
    assert!(matches!(failed, Err(StorageError::Body(_))), "{failed:?}");
    assert!(matches!(
        store.get(&key("big/three")).await,
        Err(StorageError::NotFound { .. })
    ));

    // Only keys are listed: the staging area and the probe's scratch names are not.
    let listed = store.list("", None, 100).await.unwrap();
    let keys: Vec<&str> = listed.objects.iter().map(|m| m.key.as_str()).collect();
    assert!(
        keys.iter()
            .all(|k| !k.contains("staging") && !k.contains("probe")),
        "{keys:?}"
    );
    let big: Vec<&str> = keys.into_iter().filter(|k| k.starts_with("big/")).collect();
    assert_eq!(big, ["big/one", "big/two"]);

    // The multipart ETag's digest works as the native tag for a conditional delete.
    store
        .delete(&key("big/one"), Condition::Matches(made.meta.etag))
        .await
        .unwrap();
    assert!(matches!(
        store.get(&key("big/one")).await,
        Err(StorageError::NotFound { .. })
    ));
}

/// A fake S3 store on a thread: `answer` maps (method, If-None-Match, If-Match, whether
/// the object exists) to a status; a 2xx PUT creates the object and a 2xx DELETE removes it.
fn fake_store(answer: fn(&str, Option<&str>, Option<&str>, bool) -> u16) -> S3Settings {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut exists = false;
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { break };
            let mut buf = vec![0; 65536];
            let n = stream.read(&mut buf).unwrap_or(0);
            let request = String::from_utf8_lossy(&buf[..n]).to_string();
            let method = request.split(' ').next().unwrap_or("").to_owned();
            let header = |name: &str| {
                request.lines().find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
                })
            };
            let status = answer(
                &method,
                header("if-none-match").as_deref(),
                header("if-match").as_deref(),
                exists,
            );
            if (200..300).contains(&status) {
                exists = method != "DELETE";
            }
            let _ = stream.write_all(
                format!(
                    "HTTP/1.1 {status} X\r\nETag: \"0123456789abcdef0123456789abcdef\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                )
                .as_bytes(),
            );
        }
    });
    S3Settings {
        endpoint: Some(format!("http://127.0.0.1:{port}")),
        region: "us-east-1".into(),
        bucket: "lake".into(),
        prefix: String::new(),
        access_key_id: None,
        secret_access_key: None,
        secret_access_key_file: None,
        allow_http: true,
        timeout: std::time::Duration::from_secs(10),
    }
}

#[tokio::test]
async fn a_store_without_conditional_writes_is_refused() {
    // One that answers 200 to everything, as a store that ignores every condition does.
    let err = S3Store::open(&fake_store(|_, _, _, _| 200))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("If-None-Match: * on PUT")
            && err.contains("If-Match on PUT (a wrong ETag")
            && err.contains("If-Match on DELETE"),
        "{err}"
    );

    // One that behaves as Debian's Ceph RGW 16.2 did here: creates are conditional, but
    // If-Match on PUT is compared with the unquoted ETag (so the object's own quoted tag is
    // refused) and If-Match on DELETE is ignored.
    let rgw16 = |method: &str, none_match: Option<&str>, if_match: Option<&str>, exists| match (
        method, none_match, if_match,
    ) {
        ("PUT", Some("*"), _) if exists => 412,
        ("PUT", _, Some(tag)) if tag.starts_with('"') => 412,
        ("DELETE", _, _) => 204,
        _ => 200,
    };
    let err = S3Store::open(&fake_store(rgw16))
        .await
        .unwrap_err()
        .to_string();
    assert!(!err.contains("If-None-Match"), "{err}");
    assert!(!err.contains("a wrong ETag was not refused"), "{err}");
    assert!(
        err.contains("If-Match on PUT (the object's own ETag was refused)")
            && err.contains("If-Match on DELETE (a wrong ETag did not stop the delete)"),
        "{err}"
    );

    let moto = Moto::start();
    let mut missing = self::settings(&moto, "lake", "");
    missing.bucket = "no-such-bucket".into();
    let err = S3Store::open(&missing).await.unwrap_err().to_string();
    assert!(err.contains("no-such-bucket"), "{err}");
}

#[tokio::test]
async fn attributes_travel_as_store_headers() {
    let moto = Moto::start();
    let store = S3Store::open(&settings(&moto, "lake", "")).await.unwrap();
    let new = NewObject {
        attrs: crate::backend::Attributes {
            content_type: Some("application/x-parquet".into()),
            metadata: [("owner".to_owned(), "data-eng".to_owned())].into(),
            ..Default::default()
        },
        ..NewObject::default()
    };
    store
        .write(&key("a/b.parquet"), new.clone(), body("x"))
        .await
        .unwrap();
    let got = store.get(&key("a/b.parquet")).await.unwrap();
    assert_eq!(got.attrs, new.attrs);
}
