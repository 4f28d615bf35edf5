//! storaged's S3 backend through the real binary, on moto: replicas over one bucket
//! behave as one store, and a bucket that cannot be used stops start-up with a message.

use std::time::Duration;

use actix_web::http::Method;
use testkit::{free_port, Launch, Moto, Proc};

fn replica(moto: &Moto, bucket: &str, dir: &std::path::Path) -> Proc {
    Launch::storaged(
        &dir.join(format!("unused-{}", testkit::unique())),
        free_port(),
    )
    .envs(moto.storaged_env(bucket))
    .log_dir(dir)
    .spawn()
}

#[actix_web::test]
async fn two_replicas_over_one_bucket_behave_as_one() {
    let moto = Moto::start();
    moto.create_bucket("shared");
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (
        replica(&moto, "shared", dir.path()),
        replica(&moto, "shared", dir.path()),
    );
    a.wait_ready().await;
    b.wait_ready().await;
    let (a, b) = (a.api(), b.api());

    // A write on one is read on the other at once, with the same ETag.
    let put = a
        .put("/v1/objects/lake/one.parquet", "from a")
        .await
        .unwrap();
    assert_eq!(put.code(), 201, "{put:?}");
    let etag = put.header("etag").unwrap().to_owned();
    let got = b.get_ok("/v1/objects/lake/one.parquet").await;
    assert_eq!((got.code(), &got.body[..]), (200, &b"from a"[..]));
    assert_eq!(got.header("etag"), Some(etag.as_str()));
    let listed = testkit::lake::objects(&b, "lake/").await;
    assert_eq!(
        listed,
        [(
            "lake/one.parquet".to_owned(),
            etag.trim_matches('"').to_owned()
        )]
    );

    // Of 16 creates of one key spread over both replicas, exactly one wins.
    let attempts = (0..16).map(|i| {
        let api = if i % 2 == 0 { a.clone() } else { b.clone() };
        async move {
            let req = api
                .request(Method::PUT, "/v1/objects/lake/race")
                .insert_header(("if-none-match", "*"));
            api.send(req, Some(format!("writer {i}").into()))
                .await
                .unwrap()
                .code()
        }
    });
    let mut codes = futures_util::future::join_all(attempts).await;
    codes.sort_unstable();
    assert_eq!(codes, [[201].as_slice(), &[412; 15]].concat(), "{codes:?}");

    // Conditional updates and deletes check the version the other replica wrote.
    let stale = b
        .send(
            b.request(Method::PUT, "/v1/objects/lake/one.parquet")
                .insert_header(("if-match", "\"00000000000000000000000000000000\"")),
            Some("lost update".into()),
        )
        .await
        .unwrap();
    assert_eq!(stale.code(), 412);
    let update = b
        .send(
            b.request(Method::PUT, "/v1/objects/lake/one.parquet")
                .insert_header(("if-match", etag.as_str())),
            Some("from b".into()),
        )
        .await
        .unwrap();
    assert_eq!(update.code(), 200, "{update:?}");
    let old_delete = a
        .send(
            a.request(Method::DELETE, "/v1/objects/lake/one.parquet")
                .insert_header(("if-match", etag.as_str())),
            None,
        )
        .await
        .unwrap();
    assert_eq!(old_delete.code(), 412, "the version a knew is gone");
    assert_eq!(
        a.get_ok("/v1/objects/lake/one.parquet").await.body,
        "from b"
    );
    let new_etag = update.header("etag").unwrap();
    let delete = a
        .send(
            a.request(Method::DELETE, "/v1/objects/lake/one.parquet")
                .insert_header(("if-match", new_etag)),
            None,
        )
        .await
        .unwrap();
    assert_eq!(delete.code(), 204);
    assert_eq!(b.get_ok("/v1/objects/lake/one.parquet").await.code(), 404);
}

#[actix_web::test]
async fn an_unusable_bucket_stops_start_up_with_a_message() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let mut missing = replica(&moto, "never-made", dir.path());
    let status = missing
        .wait_exit(Duration::from_secs(60))
        .expect("storaged exits");
    assert!(!status.success());
    let log = missing.log_text();
    assert!(log.contains("never-made"), "{log}");

    // With the store gone, a running replica answers 503 with Retry-After, not 500.
    let mut moto = moto;
    moto.create_bucket("lake");
    let up = replica(&moto, "lake", dir.path());
    up.wait_ready().await;
    moto.proc().kill();
    let reply = up.api().get("/v1/objects/some/key").await.unwrap();
    assert_eq!(reply.code(), 503, "{reply:?}");
    assert_eq!(reply.header("retry-after"), Some("1"));
    assert_eq!(reply.json()["error"], "unavailable");
    let ready = up.api().get("/readyz").await.unwrap();
    assert_eq!(ready.code(), 503, "not ready without the store");
}
