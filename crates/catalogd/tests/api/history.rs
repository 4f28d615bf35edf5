//! The history over HTTP: versions, `as_of`, soft delete, undrop, purge, expiry, the change
//! feed (long poll, CloudEvents, expiry) and idempotency keys.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::{
    body, catalogd_settings, spawn_stack, spawn_storaged, start_catalogd, wait_ready, Api,
};

#[actix_web::test]
async fn versions_are_kept_listed_and_read_as_they_were() {
    let stack = spawn_stack().await;
    let api = &stack.api;
    let mut registered = Vec::new();
    for n in 1..=3 {
        registered.push(api.register_ok(&body("hist.a", "fp", n)).await.json()["manifest"].clone());
    }
    let listed = api
        .get_ok("/v1/datasets/hist.a/versions?limit=2")
        .await
        .json();
    let versions: Vec<i64> = listed["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_i64().unwrap())
        .collect();
    assert_eq!(versions, [3, 2]);
    assert_eq!(listed["versions"][0]["object_count"], 3);
    assert_eq!(listed["versions"][1]["row_count"], 42);
    assert_eq!(
        listed["versions"][1]["updated_at"],
        registered[1]["updated_at"]
    );
    let token = listed["next_page_token"].as_str().unwrap();
    let rest = api
        .get_ok(&format!(
            "/v1/datasets/hist.a/versions?limit=2&page_token={token}"
        ))
        .await
        .json();
    assert_eq!(rest["versions"].as_array().unwrap().len(), 1);
    assert_eq!(rest["versions"][0]["version"], 1);
    assert!(rest["next_page_token"].is_null());

    let v1 = api.get_ok("/v1/datasets/hist.a/versions/1").await;
    assert_eq!(v1.json(), registered[0]);
    let parquet = api
        .get_ok("/v1/datasets/hist.a/versions/1/manifest.parquet")
        .await;
    assert_eq!(
        serde_json::to_value(manifest_codec::decode(&parquet.body).unwrap()).unwrap(),
        registered[0]
    );
    api.get_ok("/v1/datasets/hist.a/versions/4")
        .await
        .assert_error(404, "not_found");
    api.get_ok("/v1/datasets/hist.a/versions/0")
        .await
        .assert_error(400, "invalid_request");
    api.get_ok("/v1/datasets/hist.none/versions")
        .await
        .assert_error(404, "not_found");
    api.get_ok("/v1/datasets/hist.a/versions?page_token=x")
        .await
        .assert_error(400, "invalid_request");

    // as_of: the version current at an instant; before creation 404; nonsense 400.
    let at = |t: &Value| t.as_str().unwrap().to_owned();
    let between = at(&registered[1]["updated_at"]);
    let seen = api
        .get_ok(&format!("/v1/datasets/hist.a?as_of={between}"))
        .await
        .json();
    assert_eq!(seen, registered[1]);
    api.get_ok("/v1/datasets/hist.a?as_of=2000-01-01T00:00:00Z")
        .await
        .assert_error(404, "not_found");
    let message = api
        .get_ok("/v1/datasets/hist.a?as_of=yesterday")
        .await
        .assert_error(400, "invalid_request");
    assert!(message.contains("as_of"), "{message}");

    // Expire versions before 3: the head stays, the older ones are gone.
    assert_eq!(
        api.delete("/v1/datasets/hist.a/versions?before=3")
            .await
            .unwrap()
            .code(),
        204
    );
    api.get_ok("/v1/datasets/hist.a/versions/1")
        .await
        .assert_error(404, "not_found");
    let after = api.get_ok("/v1/datasets/hist.a/versions").await.json();
    assert_eq!(after["versions"].as_array().unwrap().len(), 1);
    api.delete("/v1/datasets/hist.a/versions?before=zero")
        .await
        .unwrap()
        .assert_error(400, "invalid_request");
}

#[actix_web::test]
async fn delete_is_soft_undrop_brings_it_back_and_purge_forgets_it() {
    let stack = spawn_stack().await;
    let api = &stack.api;
    api.register_ok(&body("soft.b", "fp", 1)).await;
    let head = api.register_ok(&body("soft.b", "fp", 2)).await.json()["manifest"].clone();
    let id = head["dataset_id"].as_str().unwrap().to_owned();
    assert_eq!(api.delete("/v1/datasets/soft.b").await.unwrap().code(), 204);
    api.get_ok("/v1/datasets/soft.b")
        .await
        .assert_error(404, "not_found");
    api.get_ok(&format!("/v1/datasets/by-id/{id}"))
        .await
        .assert_error(404, "not_found");
    let live = api.get_ok("/v1/datasets").await.json();
    assert!(live["datasets"].as_array().unwrap().is_empty());
    let deleted = api.get_ok("/v1/datasets?deleted=true").await.json();
    assert_eq!(deleted["datasets"][0]["name"], "soft.b");
    assert!(deleted["datasets"][0]["deleted_at"].is_string());
    // The history stays readable.
    assert_eq!(
        api.get_ok("/v1/datasets/soft.b/versions/1").await.json()["version"],
        1
    );

    let undropped = api
        .post_json("/v1/datasets/soft.b/undrop", &json!({}))
        .await
        .unwrap();
    assert_eq!(undropped.code(), 200);
    assert_eq!(undropped.json(), head);
    assert_eq!(api.get_ok("/v1/datasets/soft.b").await.json(), head);
    api.post_json("/v1/datasets/soft.b/undrop", &json!({}))
        .await
        .unwrap()
        .assert_error(409, "not_deleted");

    assert_eq!(
        api.delete("/v1/datasets/soft.b?purge=true")
            .await
            .unwrap()
            .code(),
        204
    );
    api.post_json("/v1/datasets/soft.b/undrop", &json!({}))
        .await
        .unwrap()
        .assert_error(404, "not_found");
    api.get_ok("/v1/datasets/soft.b/versions")
        .await
        .assert_error(404, "not_found");
    assert!(
        api.get_ok("/v1/datasets?deleted=true").await.json()["datasets"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    api.delete("/v1/datasets/soft.b?purge=maybe")
        .await
        .unwrap()
        .assert_error(400, "invalid_request");
    // A purged name starts again at version 1.
    let again = api.register_ok(&body("soft.b", "other", 1)).await;
    assert_eq!(again.code(), 201);
    assert_eq!(again.json()["manifest"]["version"], 1);
}

#[actix_web::test]
async fn an_idempotency_key_replays_the_first_answer_byte_for_byte() {
    let stack = spawn_stack().await;
    let api = &stack.api;
    let send = |key: &'static str, body: Value| {
        let req = api
            .request(awc::http::Method::POST, "/v1/datasets")
            .insert_header(("content-type", "application/json"))
            .insert_header(("idempotency-key", key));
        api.send(req, Some(serde_json::to_vec(&body).unwrap().into()))
    };
    let first = send("load-2026-11-30", body("idem.c", "fp", 2))
        .await
        .unwrap();
    assert_eq!(first.code(), 201);
    let retry = send("load-2026-11-30", body("idem.c", "fp", 2))
        .await
        .unwrap();
    assert_eq!(retry.code(), 201);
    assert_eq!(retry.body, first.body);
    assert_eq!(retry.header("idempotent-replayed"), Some("true"));
    assert_eq!(
        api.get_ok("/v1/datasets/idem.c").await.json()["version"],
        1,
        "the retry made a second version"
    );
    send("load-2026-11-30", body("idem.c", "fp", 3))
        .await
        .unwrap()
        .assert_error(422, "idempotency_key_reused");
    send("key with spaces", body("idem.c", "fp", 3))
        .await
        .unwrap()
        .assert_error(400, "invalid_request");
    let other = send("load-2", body("idem.c", "fp", 3)).await.unwrap();
    assert_eq!(
        (other.code(), other.json()["manifest"]["version"].clone()),
        (200, json!(2))
    );
}

#[actix_web::test]
async fn the_change_feed_lists_every_change_in_order_and_long_polls() {
    let stack = spawn_stack().await;
    let api = &stack.api;
    api.register_ok(&body("feed.d", "fp", 1)).await;
    api.register_ok(&body("feed.d", "fp", 2)).await;
    api.delete("/v1/datasets/feed.d").await.unwrap();
    api.post_json("/v1/datasets/feed.d/undrop", &json!({}))
        .await
        .unwrap();
    let feed = api.get_ok("/v1/changes").await.json();
    let changes = feed["changes"].as_array().unwrap();
    let kinds: Vec<(&str, i64)> = changes
        .iter()
        .map(|c| (c["type"].as_str().unwrap(), c["version"].as_i64().unwrap()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("registered", 1),
            ("registered", 2),
            ("deleted", 2),
            ("undropped", 2)
        ]
    );
    assert_eq!(changes[0]["name"], "feed.d");
    assert_eq!(
        changes[0]["dataset_id"],
        manifest_codec::dataset_id(&manifest_codec::DatasetName::parse("feed.d").unwrap())
            .to_string()
    );
    assert!(changes
        .windows(2)
        .all(|w| w[0]["seq"].as_u64() < w[1]["seq"].as_u64()));
    let next = feed["next_after"].as_u64().unwrap();
    assert_eq!(next, changes[3]["seq"].as_u64().unwrap());
    let page = api
        .get_ok(&format!("/v1/changes?after={}&limit=2", changes[0]["seq"]))
        .await
        .json();
    assert_eq!(page["changes"].as_array().unwrap().len(), 2);

    // CloudEvents.
    let req = api
        .request(awc::http::Method::GET, "/v1/changes?limit=1")
        .insert_header(("accept", "application/cloudevents-batch+json"));
    let events = api.send(req, None).await.unwrap();
    assert_eq!(
        events.header("content-type"),
        Some("application/cloudevents-batch+json")
    );
    let events = events.json();
    assert_eq!(events[0]["specversion"], "1.0");
    assert_eq!(events[0]["type"], "dataset.registered");
    assert_eq!(events[0]["subject"], "feed.d");
    assert_eq!(events[0]["id"], changes[0]["seq"].to_string());
    assert_eq!(events[0]["data"], changes[0]);

    // A long poll returns as soon as a change exists, long before its deadline.
    let poller = Api::new(stack.catalogd.port);
    let poll = async {
        let started = Instant::now();
        let reply = poller
            .get_ok(&format!("/v1/changes?after={next}&wait=20"))
            .await;
        (reply.json(), Instant::now(), started)
    };
    let write = async {
        actix_web::rt::time::sleep(Duration::from_millis(300)).await;
        api.register_ok(&body("feed.e", "fp", 1)).await;
        Instant::now()
    };
    let ((woke, returned, started), written) = futures_util::future::join(poll, write).await;
    assert_eq!(woke["changes"][0]["name"], "feed.e");
    assert!(returned.duration_since(started) < Duration::from_secs(10));
    println!(
        "long poll returned {:?} after the register was acknowledged",
        returned.saturating_duration_since(written)
    );
    let empty = api
        .get_ok(&format!("/v1/changes?after={}&wait=0", woke["next_after"]))
        .await
        .json();
    assert!(empty["changes"].as_array().unwrap().is_empty());
    for bad in ["after=-1", "wait=31", "limit=0", "after=x", "other=1"] {
        api.get_ok(&format!("/v1/changes?{bad}"))
            .await
            .assert_error(400, "invalid_request");
    }
}

#[actix_web::test]
async fn positions_older_than_the_feed_keeps_are_410() {
    let storaged = spawn_storaged().await;
    let mut settings = catalogd_settings(&storaged.url());
    settings.changes_retention = Duration::ZERO;
    settings.idempotency_window = Duration::ZERO;
    settings.maintenance_interval = Duration::from_millis(50);
    let catalogd = start_catalogd(settings).await;
    wait_ready(catalogd.port).await;
    let api = Api::new(catalogd.port);
    let first = api.register_ok(&body("old.f", "fp", 1)).await;
    assert_eq!(first.code(), 201);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let reply = api.get_ok("/v1/changes?after=1").await;
        if reply.code() == 410 {
            reply.assert_error(410, "changes_expired");
            break;
        }
        assert!(Instant::now() < deadline, "the feed never forgot");
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    // Without `after`, a consumer starts from what is kept.
    assert_eq!(api.get_ok("/v1/changes").await.code(), 200);
}
