//! Reads: GET by name with ETag/304, the Parquet manifest, by id, listing, delete.

use serde_json::Value;

use crate::helpers::{body, catalog_keys, list_all, spawn_stack, stored_manifest};

#[actix_web::test]
async fn get_etag_304_and_delete_then_recreate() {
    let stack = spawn_stack().await;
    let api = &stack.api;
    api.get_ok("/v1/datasets/nope")
        .await
        .assert_error(404, "not_found");
    let message = api
        .get_ok("/v1/datasets/No%20Pe")
        .await
        .assert_error(400, "invalid_request");
    assert!(message.contains("name"), "{message}");

    assert_eq!(
        api.register_ok(&body("sales.orders_2024", "fp", 2))
            .await
            .status
            .as_u16(),
        201
    );
    let first = api.get_ok("/v1/datasets/sales.orders_2024").await;
    assert_eq!(first.status.as_u16(), 200);
    assert_eq!(
        first.json()["dataset_id"],
        "c9b2103c-6ed4-5bd7-b380-c14a74b3d011"
    );
    let etag1 = first.header("etag").unwrap().to_owned();
    assert!(
        etag1.starts_with('"') && etag1.ends_with('"'),
        "strong: {etag1}"
    );

    let conditional = |tag: String| {
        api.request(awc::http::Method::GET, "/v1/datasets/sales.orders_2024")
            .insert_header(("if-none-match", tag))
    };
    let not_modified = api.send(conditional(etag1.clone()), None).await.unwrap();
    assert_eq!(not_modified.status.as_u16(), 304);
    assert_eq!(not_modified.header("etag"), Some(etag1.as_str()));
    assert!(not_modified.body.is_empty());
    let listed = api
        .send(conditional(format!("\"other\", {etag1}")), None)
        .await
        .unwrap();
    assert_eq!(listed.status.as_u16(), 304);

    api.register_ok(&body("sales.orders_2024", "fp", 3)).await;
    let second = api.send(conditional(etag1.clone()), None).await.unwrap();
    assert_eq!(second.status.as_u16(), 200);
    let etag2 = second.header("etag").unwrap().to_owned();
    assert_ne!(etag1, etag2);

    // Delete (soft), then create again: same id, the versions go on, yet a new ETag.
    assert_eq!(
        api.delete("/v1/datasets/sales.orders_2024")
            .await
            .unwrap()
            .status
            .as_u16(),
        204
    );
    let head = stored_manifest(&stack.storaged, "sales.orders_2024")
        .await
        .expect("a soft-deleted head stays in storaged");
    assert!(matches!(
        manifest_codec::decode_record(&head).unwrap().state,
        manifest_codec::DatasetState::Deleted { .. }
    ));
    api.get_ok("/v1/datasets/sales.orders_2024")
        .await
        .assert_error(404, "not_found");
    api.delete("/v1/datasets/sales.orders_2024")
        .await
        .unwrap()
        .assert_error(404, "not_found");
    assert_eq!(
        api.register_ok(&body("sales.orders_2024", "fp", 2))
            .await
            .status
            .as_u16(),
        201
    );
    let again = api.get_ok("/v1/datasets/sales.orders_2024").await;
    let json = again.json();
    assert_eq!(json["version"], 3);
    assert_eq!(json["dataset_id"], "c9b2103c-6ed4-5bd7-b380-c14a74b3d011");
    let etag3 = again.header("etag").unwrap().to_owned();
    assert_ne!(
        etag3, etag1,
        "a re-created dataset must not match the deleted one's ETag"
    );
    assert_eq!(
        api.send(conditional(etag1), None)
            .await
            .unwrap()
            .status
            .as_u16(),
        200
    );
    // Another fingerprint is fine after a delete: it is a new dataset.
    api.delete("/v1/datasets/sales.orders_2024").await.unwrap();
    assert_eq!(
        api.register_ok(&body("sales.orders_2024", "fp-new", 1))
            .await
            .status
            .as_u16(),
        201
    );
}

#[actix_web::test]
async fn manifest_parquet_is_the_stored_manifest_alone() {
    let stack = spawn_stack().await;
    let api = &stack.api;
    api.register_ok(&body("pq.one", "fp", 5)).await;
    api.register_ok(&body("pq.one", "fp", 4)).await;
    let reply = api.get_ok("/v1/datasets/pq.one/manifest.parquet").await;
    assert_eq!(reply.status.as_u16(), 200);
    assert_eq!(
        reply.header("content-type"),
        Some("application/vnd.apache.parquet")
    );
    // Readers get the manifest's columns (format 1), never the catalog's bookkeeping.
    let stored = stored_manifest(&stack.storaged, "pq.one").await.unwrap();
    assert_eq!(
        manifest_codec::decode(&reply.body).unwrap(),
        manifest_codec::decode(&stored).unwrap()
    );
    let record = manifest_codec::decode_record(&reply.body).unwrap();
    assert!(record.changes.is_empty());
    let decoded = manifest_codec::decode(&reply.body).unwrap();
    let json: Value = api.get_ok("/v1/datasets/pq.one").await.json();
    assert_eq!(serde_json::to_value(&decoded).unwrap(), json);
    api.get_ok("/v1/datasets/pq.two/manifest.parquet")
        .await
        .assert_error(404, "not_found");

    // A dataset named `by-id` keeps both of its routes.
    api.register_ok(&body("by-id", "fp", 1)).await;
    assert_eq!(
        api.get_ok("/v1/datasets/by-id").await.json()["name"],
        "by-id"
    );
    assert_eq!(
        api.get_ok("/v1/datasets/by-id/manifest.parquet")
            .await
            .status
            .as_u16(),
        200
    );
}

#[actix_web::test]
async fn by_id() {
    let stack = spawn_stack().await;
    let api = &stack.api;
    api.register_ok(&body("orders", "fp", 1)).await;
    let got = api
        .get_ok("/v1/datasets/by-id/1f2906ae-f562-564c-aa86-f487c2afa750")
        .await;
    assert_eq!(got.status.as_u16(), 200);
    assert_eq!(got.json()["name"], "orders");
    api.get_ok("/v1/datasets/by-id/e407b3cd-f733-5b16-8857-e7238483c721")
        .await
        .assert_error(404, "not_found");
    let message = api
        .get_ok("/v1/datasets/by-id/not-a-uuid")
        .await
        .assert_error(400, "invalid_request");
    assert!(message.contains("UUID"), "{message}");
    api.delete("/v1/datasets/orders").await.unwrap();
    api.get_ok("/v1/datasets/by-id/1f2906ae-f562-564c-aa86-f487c2afa750")
        .await
        .assert_error(404, "not_found");
}

#[actix_web::test]
async fn list_sorted_paginated_with_prefix() {
    let stack = spawn_stack().await;
    let api = &stack.api;
    let mut names: Vec<String> = (0..25).map(|i| format!("ds.{i:02}")).collect();
    names.push("other".into());
    names.push("ds".into());
    for name in names.iter().rev() {
        assert_eq!(
            api.register_ok(&body(name, "fp", 1)).await.status.as_u16(),
            201
        );
    }
    names.sort();

    let all: Vec<String> = list_all(api)
        .await
        .iter()
        .map(|m| m["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(all, names);

    let mut seen = Vec::new();
    let mut path = "/v1/datasets?prefix=ds.&limit=10".to_owned();
    let mut pages = 0;
    loop {
        let json = api.get_ok(&path).await.json();
        pages += 1;
        seen.extend(
            json["datasets"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["name"].as_str().unwrap().to_owned()),
        );
        match json["next_page_token"].as_str() {
            Some(t) => path = format!("/v1/datasets?prefix=ds.&limit=10&page_token={t}"),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let expected: Vec<String> = names
        .iter()
        .filter(|n| n.starts_with("ds."))
        .cloned()
        .collect();
    assert_eq!(seen, expected);

    let json = api.get_ok("/v1/datasets?prefix=zzz").await.json();
    assert_eq!(json["datasets"].as_array().unwrap().len(), 0);
    assert!(json["next_page_token"].is_null());
    let default = api.get_ok("/v1/datasets").await.json();
    assert_eq!(default["datasets"].as_array().unwrap().len(), 27);
    assert!(default["next_page_token"].is_null());

    for bad in [
        "limit=0",
        "limit=1001",
        "limit=abc",
        "limit=-1",
        "page_token=zz",
        "page_token=4142",
        "colour=blue",
    ] {
        let message = api
            .get_ok(&format!("/v1/datasets?{bad}"))
            .await
            .assert_error(400, "invalid_request");
        assert!(!message.is_empty());
    }
    assert_eq!(
        api.get_ok("/v1/datasets?limit=1000").await.status.as_u16(),
        200
    );
    assert_eq!(catalog_keys(&stack.storaged).await.len(), 27);
}
