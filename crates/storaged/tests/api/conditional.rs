//! Conditional writes and concurrent writers of one key.

use bytes::Bytes;

use crate::helpers::{spawn_app, temp_files};

#[actix_web::test]
async fn if_none_match_star_refuses_an_existing_key() {
    let app = spawn_app().await;
    assert_eq!(
        app.put_with("c/k", ("If-None-Match", "*"), "v1")
            .await
            .status,
        201
    );
    let r = app.put_with("c/k", ("If-None-Match", "*"), "v2").await;
    r.assert_error(412, "precondition_failed");
    assert_eq!(app.get("c/k").await.body, "v1");
}

#[actix_web::test]
async fn if_match_requires_the_current_etag() {
    let app = spawn_app().await;
    let v1 = app
        .put("c/m", "v1")
        .await
        .header("etag")
        .unwrap()
        .to_owned();
    let v2 = app.put_with("c/m", ("If-Match", &v1), "v2").await;
    assert_eq!(v2.status, 200);
    // The old tag no longer matches.
    let r = app.put_with("c/m", ("If-Match", &v1), "v3").await;
    r.assert_error(412, "precondition_failed");
    assert_eq!(app.get("c/m").await.body, "v2");
    // Absent key with If-Match: 412, nothing created.
    let r = app.put_with("c/absent", ("If-Match", &v1), "x").await;
    r.assert_error(412, "precondition_failed");
    assert_eq!(app.get("c/absent").await.status, 404);
    let r = app.put_with("c/absent", ("If-Match", "*"), "x").await;
    assert_eq!(r.status, 412);
    // Unsupported forms are 400, not silently unconditional.
    let r = app.put_with("c/m", ("If-None-Match", &v1), "x").await;
    r.assert_error(400, "invalid_request");
    let r = app.put_with("c/m", ("If-Match", "not-quoted"), "x").await;
    r.assert_error(400, "invalid_request");
    assert_eq!(app.get("c/m").await.body, "v2");
}

#[actix_web::test]
async fn sixteen_concurrent_creators_exactly_one_wins() {
    let app = spawn_app().await;
    let attempts = (0..16).map(|i| {
        app.send(
            app.client
                .put(app.object_url("race/create"))
                .insert_header(("If-None-Match", "*")),
            Bytes::from(format!("writer {i}")),
        )
    });
    let replies = futures_util::future::join_all(attempts).await;
    let statuses: Vec<u16> = replies.iter().map(|r| r.status.as_u16()).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 412).count(),
        15,
        "{statuses:?}"
    );
    let winner = replies.iter().find(|r| r.status == 201).unwrap();
    let stored = app.get("race/create").await;
    assert_eq!(stored.header("etag"), winner.header("etag"));
    assert_eq!(temp_files(&app.data_dir()), 0);
}

#[actix_web::test]
async fn eight_concurrent_1mib_writers_leave_one_whole_body() {
    let app = spawn_app().await;
    let bodies: Vec<Vec<u8>> = (0..8_u8).map(|i| vec![i; 1024 * 1024]).collect();
    let writes = bodies.iter().map(|b| app.put("race/overwrite", b.clone()));
    let replies = futures_util::future::join_all(writes).await;
    assert!(replies.iter().all(|r| r.status == 200 || r.status == 201));
    assert_eq!(replies.iter().filter(|r| r.status == 201).count(), 1);
    let stored = app.get("race/overwrite").await;
    assert_eq!(stored.body.len(), 1024 * 1024);
    let first = stored.body[0];
    assert!(stored.body.iter().all(|b| *b == first), "mixed bodies");
    let writer = &replies[usize::from(first)];
    assert_eq!(stored.header("etag"), writer.header("etag"));
    let listed = app.list("prefix=race/overwrite").await.json();
    assert_eq!(listed["objects"].as_array().unwrap().len(), 1);
    assert_eq!(
        format!("\"{}\"", listed["objects"][0]["etag"].as_str().unwrap()),
        stored.header("etag").unwrap()
    );
}

#[actix_web::test]
async fn directory_cleanup_never_races_a_put_into_the_same_directory() {
    let app = spawn_app().await;
    for round in 0..100 {
        app.put("cleanup/dir/a", "a").await;
        let (deleted, put) = futures_util::future::join(
            app.delete("cleanup/dir/a"),
            app.put(&format!("cleanup/dir/b{round}"), "b"),
        )
        .await;
        assert_eq!(deleted.status, 204);
        assert_eq!(put.status, 201, "round {round}: {:?}", put.body);
        assert_eq!(app.get(&format!("cleanup/dir/b{round}")).await.status, 200);
        assert_eq!(
            app.delete(&format!("cleanup/dir/b{round}")).await.status,
            204
        );
    }
    assert!(!app.data_dir().join("objects/cleanup").try_exists().unwrap());
}
