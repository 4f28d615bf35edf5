//! PUT / GET / HEAD / DELETE and their statuses.

use bytes::Bytes;

use crate::helpers::{spawn_app, spawn_with, temp_files};

#[actix_web::test]
async fn put_creates_then_replaces() {
    let app = spawn_app().await;
    let r = app.put("lake/orders/part-0.parquet", "hello").await;
    assert_eq!(r.status, 201);
    let json = r.json();
    assert_eq!(json["key"], "lake/orders/part-0.parquet");
    assert_eq!(json["size"], 5);
    let etag = json["etag"].as_str().unwrap().to_owned();
    assert_eq!(etag.len(), 32);
    assert_eq!(r.header("etag"), Some(format!("\"{etag}\"").as_str()));

    let r = app.put("lake/orders/part-0.parquet", "hello, again").await;
    assert_eq!(r.status, 200);
    assert_ne!(r.json()["etag"], etag.as_str());

    let r = app.get("lake/orders/part-0.parquet").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, "hello, again");
    assert_eq!(r.header("content-length"), Some("12"));
    assert_eq!(r.header("accept-ranges"), Some("bytes"));
    assert!(r.header("last-modified").unwrap().ends_with("GMT"));
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
}

#[actix_web::test]
async fn same_content_same_etag_different_content_different_etag() {
    let app = spawn_app().await;
    let a = app.put("a", "same").await.json()["etag"].clone();
    let b = app.put("b", "same").await.json()["etag"].clone();
    let c = app.put("c", "other").await.json()["etag"].clone();
    assert_eq!(a, b);
    assert_ne!(a, c);
}

#[actix_web::test]
async fn head_has_the_get_headers_and_no_body() {
    let app = spawn_app().await;
    let put = app.put("h/obj", vec![7_u8; 1000]).await;
    let r = app
        .send(app.client.head(app.object_url("h/obj")), Bytes::new())
        .await;
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
    assert_eq!(r.header("content-length"), Some("1000"));
    assert_eq!(r.header("etag"), put.header("etag"));
    assert_eq!(r.header("accept-ranges"), Some("bytes"));
    assert!(r.header("last-modified").is_some());
    let r = app
        .send(app.client.head(app.object_url("h/missing")), Bytes::new())
        .await;
    assert_eq!(r.status, 404);
}

#[actix_web::test]
async fn content_headers_and_user_metadata_are_kept_with_the_object() {
    let app = spawn_app().await;
    let put = app
        .send(
            app.client
                .put(app.object_url("attrs/report.csv"))
                .insert_header(("content-type", "text/csv"))
                .insert_header(("cache-control", "max-age=60"))
                .insert_header(("content-disposition", "attachment"))
                .insert_header(("x-amz-meta-owner", "data-eng")),
            "a,b\n",
        )
        .await;
    assert_eq!(put.status, 201);
    for method in ["GET", "HEAD"] {
        let req = app
            .client
            .request(method.parse().unwrap(), app.object_url("attrs/report.csv"));
        let r = app.send(req, Bytes::new()).await;
        assert_eq!(r.header("content-type"), Some("text/csv"), "{method}");
        assert_eq!(r.header("cache-control"), Some("max-age=60"), "{method}");
        assert_eq!(
            r.header("content-disposition"),
            Some("attachment"),
            "{method}"
        );
        assert_eq!(r.header("x-amz-meta-owner"), Some("data-eng"), "{method}");
    }
    // A new version has its own attributes; none given means octet-stream.
    app.put("attrs/report.csv", "x").await;
    let r = app.get("attrs/report.csv").await;
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    assert_eq!(r.header("x-amz-meta-owner"), None);
    let big = "v".repeat(3000);
    let r = app
        .put_with("attrs/big", ("x-amz-meta-m", big.as_str()), "x")
        .await;
    r.assert_error(400, "invalid_request");
    assert_eq!(app.get("attrs/big").await.status, 404);
}

#[actix_web::test]
async fn missing_objects_are_404_json() {
    let app = spawn_app().await;
    let message = app.get("nope/nothing").await.assert_error(404, "not_found");
    assert!(message.contains("nope/nothing"), "{message}");
}

#[actix_web::test]
async fn delete_is_idempotent_and_honours_if_match() {
    let app = spawn_app().await;
    let etag = app
        .put("d/x", "v1")
        .await
        .header("etag")
        .unwrap()
        .to_owned();
    let r = app
        .send(
            app.client
                .delete(app.object_url("d/x"))
                .insert_header(("If-Match", "\"00000000000000000000000000000000\"")),
            Bytes::new(),
        )
        .await;
    r.assert_error(412, "precondition_failed");
    assert_eq!(app.get("d/x").await.body, "v1");
    let r = app
        .send(
            app.client
                .delete(app.object_url("d/x"))
                .insert_header(("If-Match", etag.as_str())),
            Bytes::new(),
        )
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(app.get("d/x").await.status, 404);
    assert_eq!(app.delete("d/x").await.status, 204);
    assert_eq!(app.delete("never/existed").await.status, 204);
    // The emptied directory is gone; the objects root stays.
    assert!(!app.data_dir().join("objects/d").try_exists().unwrap());
    assert!(app.data_dir().join("objects").is_dir());
}

#[actix_web::test]
async fn ranges_and_conditional_gets() {
    let app = spawn_app().await;
    let etag = app
        .put("r/digits", "0123456789")
        .await
        .header("etag")
        .unwrap()
        .to_owned();
    let get = |range: &'static str| {
        app.send(
            app.client
                .get(app.object_url("r/digits"))
                .insert_header(("Range", range)),
            Bytes::new(),
        )
    };
    let r = get("bytes=2-5").await;
    assert_eq!(r.status, 206);
    assert_eq!(r.body, "2345");
    assert_eq!(r.header("content-range"), Some("bytes 2-5/10"));
    assert_eq!(r.header("content-length"), Some("4"));
    let r = get("bytes=7-").await;
    assert_eq!((r.status.as_u16(), &r.body[..]), (206, &b"789"[..]));
    let r = get("bytes=-3").await;
    assert_eq!((r.status.as_u16(), &r.body[..]), (206, &b"789"[..]));
    let r = get("bytes=5-100").await;
    assert_eq!(r.header("content-range"), Some("bytes 5-9/10"));
    let r = get("bytes=10-").await;
    r.assert_error(416, "range_not_satisfiable");
    assert_eq!(r.header("content-range"), Some("bytes */10"));
    let r = get("bytes=0-1,4-5").await;
    assert_eq!((r.status.as_u16(), r.body.len()), (200, 10));

    // Empty objects: any range is unsatisfiable, a plain GET is an empty 200.
    app.put("r/empty", "").await;
    let r = app
        .send(
            app.client
                .get(app.object_url("r/empty"))
                .insert_header(("Range", "bytes=0-")),
            Bytes::new(),
        )
        .await;
    assert_eq!(r.status, 416);
    assert_eq!(r.header("content-range"), Some("bytes */0"));
    let r = app.get("r/empty").await;
    assert_eq!((r.status.as_u16(), r.body.len()), (200, 0));
    assert_eq!(r.header("content-length"), Some("0"));

    let r = app
        .send(
            app.client
                .get(app.object_url("r/digits"))
                .insert_header(("If-None-Match", etag.as_str())),
            Bytes::new(),
        )
        .await;
    assert_eq!(r.status, 304);
    assert!(r.body.is_empty());
    assert_eq!(r.header("etag"), Some(etag.as_str()));
    let r = app
        .send(
            app.client
                .get(app.object_url("r/digits"))
                .insert_header(("If-Match", "\"0123456789abcdef0123456789abcdef\"")),
            Bytes::new(),
        )
        .await;
    r.assert_error(412, "precondition_failed");
    let r = app
        .send(
            app.client
                .get(app.object_url("r/digits"))
                .insert_header(("If-Match", etag.as_str())),
            Bytes::new(),
        )
        .await;
    assert_eq!(r.status, 200);
}

#[actix_web::test]
async fn too_large_by_content_length_is_413_before_reading() {
    let app = spawn_with(|s| s.max_object_size = bytesize::ByteSize::b(1024)).await;
    app.put("big/x", vec![1_u8; 1024]).await;
    let r = app.put("big/x", vec![2_u8; 1025]).await;
    r.assert_error(413, "payload_too_large");
    assert_eq!(app.get("big/x").await.body, vec![1_u8; 1024]);
    assert_eq!(temp_files(&app.data_dir()), 0);
}

#[actix_web::test]
async fn too_large_chunked_body_is_413_and_nothing_stored() {
    let app = spawn_with(|s| s.max_object_size = bytesize::ByteSize::b(4096)).await;
    let chunks = (0..10).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![3_u8; 1000])));
    let mut res = app
        .client
        .put(app.object_url("big/chunked"))
        .send_stream(futures_util::stream::iter(chunks))
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    let body = res.body().await.unwrap();
    assert!(String::from_utf8_lossy(&body).contains("payload_too_large"));
    assert_eq!(app.get("big/chunked").await.status, 404);
    assert_eq!(temp_files(&app.data_dir()), 0);

    let ok = (0..4).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![3_u8; 1000])));
    let res = app
        .client
        .put(app.object_url("big/chunked"))
        .send_stream(futures_util::stream::iter(ok))
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
}

#[actix_web::test]
async fn a_large_object_streams_both_ways() {
    let app = spawn_app().await;
    let body: Vec<u8> = (0..20 * 1024 * 1024_u32).map(|i| (i % 251) as u8).collect();
    let r = app.put("big/20mib", body.clone()).await;
    assert_eq!(r.status, 201);
    assert_eq!(r.json()["size"], body.len());
    let r = app.get("big/20mib").await;
    assert_eq!(r.body.len(), body.len());
    assert!(r.body == body, "content differs");
}

#[actix_web::test]
async fn large_objects_and_ranges_across_read_chunks_come_back_exact() {
    let app = spawn_app().await;
    // Three read chunks and a bit, with content that differs at every position.
    let content: Vec<u8> = (0..3 * 1024 * 1024 + 123_u32)
        .map(|i| u8::try_from(i.wrapping_mul(2_654_435_761) >> 24).unwrap())
        .collect();
    let r = app.put("big/obj", content.clone()).await;
    assert_eq!(r.status, 201);
    let r = app.get("big/obj").await;
    assert_eq!(r.status, 200);
    assert!(r.body == content, "whole object differs");
    for (range, start, end) in [
        ("bytes=1048570-2097160", 1_048_570, 2_097_161),
        ("bytes=0-1048575", 0, 1_048_576),
        ("bytes=1048576-", 1_048_576, content.len()),
        ("bytes=-5", content.len() - 5, content.len()),
    ] {
        let r = app
            .send(
                app.client
                    .get(app.object_url("big/obj"))
                    .insert_header(("Range", range)),
                Bytes::new(),
            )
            .await;
        assert_eq!(r.status, 206, "{range}");
        assert!(r.body == content[start..end], "{range} differs");
    }
}
