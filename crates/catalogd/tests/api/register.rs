//! `POST /v1/datasets`: every status of the register contract, over real HTTP.

use serde_json::{json, Value};

use testkit::lake::manifest_key_of;

use crate::helpers::{
    body, catalog_keys, catalogd_settings, list_all, post_raw, spawn_stack, start_catalogd,
    stored_manifest, wait_ready, Api,
};

fn is_rfc3339_micros_utc(v: &Value) -> bool {
    let s = v.as_str().unwrap_or_default();
    // 2024-05-01T12:00:00.000001Z
    s.len() == 27 && s.ends_with('Z') && s.as_bytes()[19] == b'.' && s.as_bytes()[10] == b'T'
}

#[actix_web::test]
async fn create_update_conflict() {
    let stack = spawn_stack().await;
    let api = &stack.api;

    let created = api.register_ok(&body("orders", "fp-1", 3)).await;
    assert_eq!(created.status.as_u16(), 201, "{:?}", created.json());
    let json = created.json();
    assert_eq!(json["existing"], false);
    let m1 = json["manifest"].clone();
    assert_eq!(m1["dataset_id"], "1f2906ae-f562-564c-aa86-f487c2afa750");
    assert_eq!(m1["name"], "orders");
    assert_eq!(m1["schema_fingerprint"], "fp-1");
    assert_eq!(m1["version"], 1);
    assert_eq!(m1["row_count"], 42);
    assert_eq!(m1["objects"].as_array().unwrap().len(), 3);
    assert_eq!(
        m1["objects"][2],
        json!({"key": "lake/orders/part-2.parquet", "size": 1002})
    );
    assert!(is_rfc3339_micros_utc(&m1["created_at"]), "{m1}");
    assert_eq!(m1["created_at"], m1["updated_at"]);
    assert!(created.header("etag").is_some());

    let mut again = body("orders", "fp-1", 1);
    again["objects"] = json!([{"key": "lake/orders/v2.parquet", "size": 7}]);
    again["row_count"] = Value::Null;
    let updated = api.register_ok(&again).await;
    assert_eq!(updated.status.as_u16(), 200, "{:?}", updated.json());
    let json = updated.json();
    assert_eq!(json["existing"], true);
    let m2 = json["manifest"].clone();
    assert_eq!(m2["dataset_id"], m1["dataset_id"]);
    assert_eq!(m2["version"], 2);
    assert_eq!(m2["created_at"], m1["created_at"]);
    assert!(m2["updated_at"].as_str() >= m1["updated_at"].as_str());
    assert_eq!(
        m2["objects"],
        json!([{"key": "lake/orders/v2.parquet", "size": 7}])
    );
    assert_eq!(m2["row_count"], Value::Null);
    assert_ne!(updated.header("etag"), created.header("etag"));

    let stored_before = stored_manifest(&stack.storaged, "orders").await.unwrap();
    let conflict = api.register_ok(&body("orders", "fp-2", 1)).await;
    conflict.assert_error(409, "fingerprint_conflict");
    let json = conflict.json();
    assert_eq!(json["name"], "orders");
    assert_eq!(json["existing_fingerprint"], "fp-1");
    assert_eq!(json["requested_fingerprint"], "fp-2");
    let get = api.get_ok("/v1/datasets/orders").await;
    assert_eq!(get.json(), m2, "a conflict changed the manifest");
    assert_eq!(
        stored_manifest(&stack.storaged, "orders").await.unwrap(),
        stored_before
    );

    // However many registers, one head, one id, and every earlier version kept once.
    for _ in 0..5 {
        assert_eq!(
            api.register_ok(&body("orders", "fp-1", 2))
                .await
                .status
                .as_u16(),
            200
        );
    }
    let mut expected = vec![manifest_key_of("orders")];
    expected.extend((1..7).map(|v| format!("_catalog/versions/orders/{v:020}.parquet")));
    assert_eq!(catalog_keys(&stack.storaged).await, expected);
    assert_eq!(api.get_ok("/v1/datasets/orders").await.json()["version"], 7);
}

#[actix_web::test]
async fn bad_bodies_are_400_naming_the_problem_and_change_nothing() {
    let stack = spawn_stack().await;
    let api = &stack.api;
    assert_eq!(
        api.register_ok(&body("kept", "fp", 1))
            .await
            .status
            .as_u16(),
        201
    );
    let keys_before = catalog_keys(&stack.storaged).await;
    let list_before = list_all(api).await;

    let long_fp = "f".repeat(513);
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"name": "Orders", "schema_fingerprint": "fp", "objects": []}),
            "uppercase",
        ),
        (
            json!({"name": "", "schema_fingerprint": "fp", "objects": []}),
            "name",
        ),
        (
            json!({"name": "a..b", "schema_fingerprint": "fp", "objects": []}),
            "empty segment",
        ),
        (
            json!({"name": "_a", "schema_fingerprint": "fp", "objects": []}),
            "name",
        ),
        (
            json!({"name": "a".repeat(256), "schema_fingerprint": "fp", "objects": []}),
            "255",
        ),
        (
            json!({"name": "kept", "schema_fingerprint": "", "objects": []}),
            "schema_fingerprint",
        ),
        (
            json!({"name": "kept", "schema_fingerprint": long_fp, "objects": []}),
            "512",
        ),
        (
            json!({"name": "kept", "schema_fingerprint": "fp", "objects": [{"key": "a", "size": -1}]}),
            "negative",
        ),
        (
            json!({"name": "kept", "schema_fingerprint": "fp", "objects": [], "row_count": -5}),
            "row_count",
        ),
        (
            json!({"name": "kept", "schema_fingerprint": "fp", "objects": [{"key": "../etc/passwd", "size": 1}]}),
            "objects[0].key",
        ),
        (
            json!({"name": "kept", "schema_fingerprint": "fp", "objects": [{"key": "/abs", "size": 1}]}),
            "objects[0].key",
        ),
        (
            json!({"name": "kept", "schema_fingerprint": "fp", "objects": [{"key": "_catalog/manifests/x.parquet", "size": 1}]}),
            "_catalog/",
        ),
        (
            json!({"name": "kept", "schema_fingerprint": "fp", "objects": [{"key": "a", "size": 1}, {"key": "b", "size": 1}, {"key": "a", "size": 2}]}),
            "objects[2].key",
        ),
        (
            json!({"name": "kept", "schema_fingerprint": "fp", "objects": [{"key": "a", "size": 1.5}]}),
            "objects[0].size",
        ),
        (
            json!({"name": "kept", "schema_fingerprint": "fp", "objects": [{"key": "a", "size": 9_223_372_036_854_775_808_u64}]}),
            "objects[0].size",
        ),
        (
            json!({"name": "kept", "schema_fingerprint": "fp", "objects": [{"key": "a"}]}),
            "size",
        ),
        (
            json!({"name": "kept", "schema_fingerprint": "fp"}),
            "objects",
        ),
        (
            json!({"name": "kept", "schema_fingerprint": "fp", "objects": [], "dataset_id": "1f2906ae-f562-564c-aa86-f487c2afa750"}),
            "dataset_id",
        ),
        (
            json!({"name": "kept", "schema_fingerprint": "fp", "objects": [], "version": 99}),
            "version",
        ),
        (
            json!({"name": "kept", "schema_fingerprint": "fp", "objects": [], "created_at": "2020-01-01T00:00:00Z"}),
            "created_at",
        ),
        (
            json!({"name": "kept", "schema_fingerprint": "fp", "objects": [{"key": "a", "size": 1, "etag": "x"}]}),
            "etag",
        ),
        (json!(["not", "an", "object"]), "invalid register body"),
    ];
    for (bad, needle) in &cases {
        let reply = api.register_ok(bad).await;
        let message = reply.assert_error(400, "invalid_request");
        assert!(
            message.contains(needle),
            "{bad}: {message:?} lacks {needle:?}"
        );
    }
    for raw in [
        &b"{\"name\": \"kept\", \"schema"[..],
        b"",
        b"{\"name\": \"kept\", \"schema_fingerprint\": \"fp\", \"objects\": [{\"key\": \"a\", \"size\": 1e400}]}",
        &[0xff, 0xfe, b'{'],
    ] {
        post_raw(api, "/v1/datasets", raw.to_vec())
            .await
            .assert_error(400, "invalid_request");
    }
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    post_raw(api, "/v1/datasets", deep)
        .await
        .assert_error(400, "invalid_request");

    // Wrong media type or an encoded body: 415.
    let req = api
        .request(awc::http::Method::POST, "/v1/datasets")
        .insert_header(("content-type", "text/plain"));
    let reply = api
        .send(
            req,
            Some(serde_json::to_vec(&body("kept", "fp", 1)).unwrap().into()),
        )
        .await
        .unwrap();
    reply.assert_error(415, "unsupported_media_type");
    let req = api
        .request(awc::http::Method::POST, "/v1/datasets")
        .insert_header(("content-type", "application/json"))
        .insert_header(("content-encoding", "gzip"));
    let reply = api
        .send(req, Some(vec![0x1f, 0x8b, 0, 0].into()))
        .await
        .unwrap();
    reply.assert_error(415, "unsupported_media_type");

    assert_eq!(catalog_keys(&stack.storaged).await, keys_before);
    assert_eq!(list_all(api).await, list_before);
}

#[actix_web::test]
async fn body_limit_is_413_and_a_100k_object_manifest_fits_the_default() {
    let stack = spawn_stack().await;
    let big = body("big", "fp", 100_000);
    let reply = stack.api.register_ok(&big).await;
    assert_eq!(
        reply.status.as_u16(),
        201,
        "{:?}",
        String::from_utf8_lossy(&reply.body[..200.min(reply.body.len())])
    );
    let got = stack.api.get_ok("/v1/datasets/big").await.json();
    assert_eq!(got["objects"].as_array().unwrap().len(), 100_000);
    assert_eq!(got["objects"][99_999]["key"], "lake/big/part-99999.parquet");

    let mut settings = catalogd_settings(&stack.storaged.url());
    settings.max_body_size = bytesize::ByteSize::b(1024);
    let small = start_catalogd(settings).await;
    wait_ready(small.port).await;
    let api = Api::new(small.port);
    let reply = api.register_ok(&body("toolarge", "fp", 100)).await;
    let message = reply.assert_error(413, "payload_too_large");
    assert!(message.contains("1024"), "{message}");
    // A chunked body (no Content-Length) is cut off too.
    let chunks = futures_util::stream::iter(
        (0..100).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from_static(&[b' '; 100]))),
    );
    let mut res = api
        .request(awc::http::Method::POST, "/v1/datasets")
        .insert_header(("content-type", "application/json"))
        .send_stream(chunks)
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 413);
    let _ = res.body().await;
    assert!(stored_manifest(&stack.storaged, "toolarge").await.is_none());
}

#[actix_web::test]
async fn storaged_down_is_503_with_retry_after_and_reads_still_work() {
    let stack = spawn_stack().await;
    let api = &stack.api;
    assert_eq!(
        api.register_ok(&body("a", "fp", 1)).await.status.as_u16(),
        201
    );
    let before = api.get_ok("/v1/datasets/a").await.json();
    stack.storaged.handle.stop(false).await;

    for reply in [
        api.register_ok(&body("a", "fp", 2)).await,
        api.register_ok(&body("new-one", "fp", 2)).await,
        api.delete("/v1/datasets/a").await.unwrap(),
    ] {
        reply.assert_error(503, "storage_unavailable");
        assert_eq!(reply.header("retry-after"), Some("1"));
    }
    assert_eq!(api.get_ok("/v1/datasets/a").await.json(), before);
    assert_eq!(
        api.get_ok("/v1/datasets/new-one").await.status.as_u16(),
        404
    );
    let metrics = String::from_utf8(api.get_ok("/metrics").await.body.to_vec()).unwrap();
    assert!(
        metrics.contains("catalogd_registers_total{outcome=\"storage_error\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("catalogd_storaged_errors_total{kind=\"unavailable\",op=\"put\"}"),
        "{metrics}"
    );
}

#[actix_web::test]
async fn metrics_count_outcomes_and_datasets() {
    let stack = spawn_stack().await;
    let api = &stack.api;
    api.register_ok(&body("m.one", "fp", 1)).await;
    api.register_ok(&body("m.one", "fp", 1)).await;
    api.register_ok(&body("m.one", "other", 1)).await;
    api.register_ok(&body("m.two", "fp", 1)).await;
    api.register_ok(&json!({"name": "BAD"})).await;
    let reply = api.get_ok("/metrics").await;
    assert_eq!(reply.status.as_u16(), 200);
    let text = String::from_utf8(reply.body.to_vec()).unwrap();
    for line in [
        "catalogd_registers_total{outcome=\"created\"} 2",
        "catalogd_registers_total{outcome=\"updated\"} 1",
        "catalogd_registers_total{outcome=\"conflict\"} 1",
        "catalogd_registers_total{outcome=\"invalid\"} 1",
        "catalogd_registers_total{outcome=\"storage_error\"} 0",
        "catalogd_datasets 2",
        "catalogd_ready 1",
        "catalogd_rehydration_manifests 0",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
    assert!(
        text.contains(
            "catalogd_http_requests_total{method=\"POST\",route=\"/v1/datasets\",status=\"201\"} 2"
        ),
        "{text}"
    );
    assert!(
        text.contains("catalogd_storaged_request_duration_seconds_count{op=\"put\"} 3"),
        "{text}"
    );
    assert!(
        text.contains("catalogd_rehydration_duration_seconds"),
        "{text}"
    );
}

#[actix_web::test]
async fn verify_checks_every_object_in_storaged_and_changes_nothing_when_one_is_off() {
    let stack = spawn_stack().await;
    let storaged = Api::new(stack.storaged.port);
    for (key, bytes) in [
        ("lake/v/part 0 \u{e9}.parquet", 10),
        ("lake/v/part-1.parquet", 20),
    ] {
        let path = format!(
            "/v1/objects/{}",
            key.replace(' ', "%20").replace('\u{e9}', "%C3%A9")
        );
        let reply = storaged.put(&path, vec![b'x'; bytes]).await.unwrap();
        assert_eq!(reply.code(), 201, "{:?}", reply.body);
    }
    let body = |objects: Value| json!({"name": "v", "schema_fingerprint": "sha256:f", "objects": objects, "row_count": 3});
    let good = body(json!([
        {"key": "lake/v/part 0 \u{e9}.parquet", "size": 10},
        {"key": "lake/v/part-1.parquet", "size": 20},
    ]));
    let bad = body(json!([
        {"key": "lake/v/part 0 \u{e9}.parquet", "size": 10},
        {"key": "lake/v/part-1.parquet", "size": 21},
        {"key": "lake/v/part-2.parquet", "size": 5},
    ]));

    let reply = stack
        .api
        .post_json("/v1/datasets?verify=true", &bad)
        .await
        .unwrap();
    reply.assert_error(422, "objects_invalid");
    let json = reply.json();
    assert_eq!(json["count"], 2);
    assert_eq!(
        json["offenders"],
        json!([
            {"key": "lake/v/part-1.parquet", "problem": "size_mismatch", "expected": 21, "actual": 20},
            {"key": "lake/v/part-2.parquet", "problem": "missing", "expected": 5, "actual": null},
        ])
    );
    // Nothing changed: the name is unknown, and without the flag the same body registers.
    stack
        .api
        .get("/v1/datasets/v")
        .await
        .unwrap()
        .assert_error(404, "not_found");

    let reply = stack
        .api
        .post_json("/v1/datasets?verify=true", &good)
        .await
        .unwrap();
    assert_eq!(reply.code(), 201, "{:?}", reply.json());
    assert_eq!(reply.json()["manifest"]["version"], 1);

    let reply = stack
        .api
        .post_json("/v1/datasets?verify=false", &bad)
        .await
        .unwrap();
    assert_eq!(reply.code(), 200, "{:?}", reply.json());
    stack
        .api
        .post_json("/v1/datasets?verify=yes", &good)
        .await
        .unwrap()
        .assert_error(400, "invalid_request");
}

#[actix_web::test]
async fn verify_with_storaged_down_is_a_503_and_changes_nothing() {
    let stack = spawn_stack().await;
    stack.storaged.handle.stop(true).await;
    let reply = stack
        .api
        .post_json("/v1/datasets?verify=true", &body("w", "fp", 2))
        .await
        .unwrap();
    let message = reply.assert_error(503, "verify_unavailable");
    assert!(message.contains("could not check"), "{message}");
    assert!(reply.header("retry-after").is_some());
}
