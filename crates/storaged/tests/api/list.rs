//! Listing: order, pagination, parameters.

use std::collections::BTreeSet;

use futures_util::StreamExt;

use crate::helpers::{spawn_with, TestApp};

async fn walk(app: &TestApp, query: &str, limit: usize) -> (Vec<String>, usize) {
    let mut keys = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut q = format!("{query}&limit={limit}");
        if let Some(t) = &token {
            q = format!("{q}&continuation_token={t}");
        }
        let page = app.list(&q).await;
        assert_eq!(page.status, 200, "{:?}", page.body);
        let json = page.json();
        let objects = json["objects"].as_array().unwrap();
        assert!(objects.len() <= limit);
        keys.extend(
            objects
                .iter()
                .map(|o| o["key"].as_str().unwrap().to_owned()),
        );
        pages += 1;
        if !json["is_truncated"].as_bool().unwrap() {
            assert!(json["next_continuation_token"].is_null());
            break;
        }
        token = Some(json["next_continuation_token"].as_str().unwrap().to_owned());
    }
    (keys, pages)
}

#[actix_web::test]
async fn pagination_over_25000_nested_keys() {
    // fsync off only to fill the store quickly; listing does not depend on it.
    let app = spawn_with(|s| s.fsync = false).await;
    let mut expected = BTreeSet::new();
    for a in 0..25 {
        for b in 0..10 {
            for c in 0..100 {
                expected.insert(format!("p{a:02}/q{b}/r{c:03}.parquet"));
            }
        }
    }
    let keys: Vec<String> = expected.iter().cloned().collect();
    futures_util::stream::iter(keys.iter())
        .for_each_concurrent(32, |k| {
            let app = &app;
            async move {
                assert_eq!(app.put(k, "x").await.status, 201);
            }
        })
        .await;
    let expected: Vec<String> = expected.into_iter().collect();

    // limit 1: the first pages, one key each, in order.
    let mut token: Option<String> = None;
    for expected_key in expected.iter().take(50) {
        let q = token.as_ref().map_or("limit=1".to_owned(), |t| {
            format!("limit=1&continuation_token={t}")
        });
        let json = app.list(&q).await.json();
        assert_eq!(json["objects"][0]["key"], expected_key.as_str());
        assert_eq!(json["objects"].as_array().unwrap().len(), 1);
        token = Some(json["next_continuation_token"].as_str().unwrap().to_owned());
    }

    let (all, pages) = walk(&app, "prefix=", 7).await;
    assert_eq!(all, expected);
    assert_eq!(pages, 25_000_usize.div_ceil(7));
    let (all, pages) = walk(&app, "prefix=", 10_000).await;
    assert_eq!(all, expected);
    assert_eq!(pages, 3);
    let default_page = app.list("").await.json();
    assert_eq!(default_page["objects"].as_array().unwrap().len(), 1000);

    let (sub, _) = walk(&app, "prefix=p03/q7/", 33).await;
    assert_eq!(sub.len(), 100);
    assert!(sub.iter().all(|k| k.starts_with("p03/q7/")));
    let (after, _) = walk(&app, "prefix=p24/&start_after=p24/q9/r097.parquet", 10).await;
    assert_eq!(after, ["p24/q9/r098.parquet", "p24/q9/r099.parquet"]);
}

#[actix_web::test]
async fn a_walk_sees_each_key_once_while_others_are_written() {
    let app = spawn_with(|s| s.fsync = false).await;
    for i in 0..600 {
        app.put(&format!("w/{i:04}"), "x").await;
    }
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    let mut extra = 0;
    loop {
        let q = token.as_ref().map_or("prefix=w/&limit=50".to_owned(), |t| {
            format!("prefix=w/&limit=50&continuation_token={t}")
        });
        let json = app.list(&q).await.json();
        seen.extend(
            json["objects"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| o["key"].as_str().unwrap().to_owned()),
        );
        // Between pages, write keys both behind and ahead of the cursor.
        app.put(&format!("w/{:04}a", extra * 7 % 600), "new").await;
        app.put(&format!("w/0000-early-{extra}"), "new").await;
        extra += 1;
        if !json["is_truncated"].as_bool().unwrap() {
            break;
        }
        token = Some(json["next_continuation_token"].as_str().unwrap().to_owned());
    }
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(seen, sorted, "a key appeared twice or out of order");
    for i in 0..600 {
        assert!(seen.contains(&format!("w/{i:04}")), "w/{i:04} missing");
    }
}

#[actix_web::test]
async fn bad_parameters_are_400() {
    let app = spawn_with(|_| {}).await;
    for q in [
        "limit=0",
        "limit=10001",
        "limit=abc",
        "limit=-1",
        "continuation_token=zz",
        "continuation_token=abc",
        "continuation_token=2f",
        "bogus=1",
    ] {
        let message = app.list(q).await.assert_error(400, "invalid_request");
        assert!(!message.is_empty(), "{q}");
    }
    assert_eq!(app.list("limit=10000").await.status, 200);
    assert_eq!(app.list("limit=1").await.status, 200);
}

#[actix_web::test]
async fn a_delimiter_rolls_keys_up_into_common_prefixes_paginated_with_objects() {
    let app = spawn_with(|_| {}).await;
    for k in [
        "lake/a.parquet",
        "lake/orders/2024/p0",
        "lake/orders/p0",
        "lake/sp ace/\u{e9}t\u{e9}.parquet",
        "lake/z",
    ] {
        assert_eq!(app.put(k, "x").await.status, 201);
    }
    let page = app.list("prefix=lake/&delimiter=/").await;
    assert_eq!(page.status, 200);
    let json = page.json();
    let keys: Vec<&str> = json["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["lake/a.parquet", "lake/z"]);
    assert_eq!(
        json["common_prefixes"],
        serde_json::json!(["lake/orders/", "lake/sp ace/"])
    );

    // One entry per page: objects and prefixes share the pages, in byte order.
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut q = "prefix=lake/&delimiter=/&limit=1".to_owned();
        if let Some(t) = &token {
            q.push_str("&continuation_token=");
            q.push_str(t);
        }
        let json = app.list(&q).await.json();
        for o in json["objects"].as_array().unwrap() {
            seen.push(o["key"].as_str().unwrap().to_owned());
        }
        for p in json["common_prefixes"].as_array().unwrap() {
            seen.push(p.as_str().unwrap().to_owned());
        }
        match json["next_continuation_token"].as_str() {
            Some(t) => token = Some(t.to_owned()),
            None => break,
        }
    }
    assert_eq!(
        seen,
        ["lake/a.parquet", "lake/orders/", "lake/sp ace/", "lake/z"]
    );
    // Without a delimiter nothing changes: every key, no common_prefixes field.
    let flat = app.list("prefix=lake/").await.json();
    assert_eq!(flat["objects"].as_array().unwrap().len(), 5);
    assert!(flat.get("common_prefixes").is_none());
}
