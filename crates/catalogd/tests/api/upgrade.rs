//! Upgrade: a data directory written by release 0.1 (manifest format 1, checkpoint format
//! 1, no history) starts under this release with every dataset intact, and its history
//! begins at the next register.

use std::path::Path;

use serde_json::Value;

use crate::helpers::{body, spawn_catalogd, spawn_storaged_in, Api};

#[actix_web::test]
async fn a_release_0_1_data_directory_starts_intact_and_gains_history() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/release-0.1");
    let dir = tempfile::tempdir().unwrap();
    testkit::copy_tree(&fixture.join("objects"), &dir.path().join("data/objects"));
    let storaged = spawn_storaged_in(dir).await;
    let storaged_url = storaged.url();

    let catalogd = spawn_catalogd(&storaged_url).await;
    let api = Api::new(catalogd.port);
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture.join("datasets.json")).unwrap())
            .unwrap();
    assert_eq!(api.get_ok("/v1/datasets").await.json(), expected);
    api.get_ok("/v1/datasets/gone")
        .await
        .assert_error(404, "not_found");
    let old = api.get_ok("/v1/datasets/orders").await.json();
    assert_eq!(old["version"], 3);
    // Before any register, the history is the head alone and the feed is empty.
    let versions = api.get_ok("/v1/datasets/orders/versions").await.json();
    assert_eq!(versions["versions"].as_array().unwrap().len(), 1);
    assert!(api.get_ok("/v1/changes").await.json()["changes"]
        .as_array()
        .unwrap()
        .is_empty());

    let mut next = body("orders", "sha256:orders-v1", 1);
    next["objects"] = old["objects"].clone();
    let updated = api.register_ok(&next).await;
    assert_eq!(updated.code(), 200);
    assert_eq!(updated.json()["manifest"]["version"], 4);
    assert_eq!(
        api.get_ok("/v1/datasets/orders/versions/3").await.json(),
        old
    );
    let as_of = old["updated_at"].as_str().unwrap();
    assert_eq!(
        api.get_ok(&format!("/v1/datasets/orders?as_of={as_of}"))
            .await
            .json(),
        old
    );
    let feed = api.get_ok("/v1/changes").await.json();
    assert_eq!(feed["changes"].as_array().unwrap().len(), 1);
    assert_eq!(feed["changes"][0]["version"], 4);

    // The untouched datasets are as they were after a restart too.
    catalogd.handle.stop(true).await;
    let restarted = spawn_catalogd(&storaged_url).await;
    let api = Api::new(restarted.port);
    assert_eq!(
        api.get_ok("/v1/datasets/sales.orders_2024").await.json(),
        expected["datasets"][2]
    );
    assert_eq!(api.get_ok("/v1/datasets/orders").await.json()["version"], 4);
}
