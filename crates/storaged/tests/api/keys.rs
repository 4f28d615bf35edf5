//! Hostile and odd keys: traversal attempts never touch anything outside the data
//! directory; odd but valid keys are stored as themselves.

use std::os::unix::fs::symlink;

use bytes::Bytes;

use crate::helpers::{encode, snapshot, spawn_app, spawn_in, spawn_with};

/// Raw (already percent-encoded) key paths that must be rejected.
const TRAVERSAL: &[&str] = &[
    "..",
    "../x",
    "a/../b",
    "a/..",
    ".",
    "./x",
    "a/./b",
    "a/.",
    "%2e%2e/x",
    "%2E%2E/x",
    "%2e%2e%2fx",
    "a%2f..%2fb",
    "..%2f..%2fetc%2fpasswd",
    "%2e/x",
    "a/%2e",
    "a/%2e%2e",
    "%2fabs",
    "%2f%2fabs",
    "a//b",
    "a%2f%2fb",
    "a//",
    "a%2f%2f",
    "%2f",
    "..%2f.%2f",
    "a%5cb",
    "..%5c..%5cwindows",
    "%5c",
    "a%00b",
    "%00",
    "a%01",
    "a%0ab",
    "a%0db",
    "a%09b",
    "a%1f",
    "a%7f",
    "a%c2%85",
    "%c0%ae%c0%ae/x",
    "%c0%af",
    "%e0%80%ae",
    "%ff",
    "a%80",
    "%fe%ff",
    "%ed%a0%80",
    "%2e%2e%2f%2e%2e%2f%2e%2e%2ftmp%2fx",
    "x/../../../../tmp/evil",
    "..%2f",
    "%2e%2e",
    "%2e",
    "a/b/../../..",
    "a/b/%2e%2e/%2e%2e/%2e%2e",
    "%2f..",
];

fn too_long() -> String {
    "k".repeat(1025)
}

#[actix_web::test]
async fn the_traversal_corpus_is_rejected_and_nothing_outside_changes() {
    let app = spawn_app().await;
    std::fs::write(app.root.path().join("sentinel"), b"keep").unwrap();
    let before = snapshot(app.root.path(), &app.data_dir());
    let mut corpus: Vec<String> = TRAVERSAL.iter().map(|s| (*s).to_owned()).collect();
    corpus.push(too_long());
    corpus.push(String::new());
    assert!(corpus.len() >= 50);
    for raw in &corpus {
        for method in ["PUT", "GET", "HEAD", "DELETE"] {
            let url = app.object_url(raw);
            let req = match method {
                "PUT" => app.client.put(&url),
                "GET" => app.client.get(&url),
                "HEAD" => app.client.head(&url),
                _ => app.client.delete(&url),
            };
            let r = app.send(req, Bytes::from_static(b"payload")).await;
            assert_eq!(r.status, 400, "{method} {raw:?}");
            if method != "HEAD" {
                let message = r.assert_error(400, "invalid_key");
                assert!(message.starts_with("invalid key: "), "{message}");
            }
        }
    }
    // A double-encoded traversal is a literal, harmless key.
    let r = app
        .send(app.client.put(app.object_url("%252e%252e/x")), "lit")
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(r.json()["key"], "%2e%2e/x");
    assert_eq!(snapshot(app.root.path(), &app.data_dir()), before);
    let listed = app.list("").await.json();
    assert_eq!(listed["objects"].as_array().unwrap().len(), 1);
}

#[actix_web::test]
async fn rejection_messages_name_the_rule() {
    let app = spawn_app().await;
    let cases = [
        ("a/../b", "'.' or '..' segment"),
        ("a//b", "empty segment"),
        ("%2fabs", "starts with '/'"),
        ("a%5cb", "backslash"),
        ("a%00b", "control character U+0000"),
        ("%c0%af", "not valid UTF-8"),
    ];
    for (raw, needle) in cases {
        let message = app
            .send(app.client.get(app.object_url(raw)), Bytes::new())
            .await
            .assert_error(400, "invalid_key");
        assert!(message.contains(needle), "{raw}: {message}");
    }
    let message = app
        .put(&too_long(), "x")
        .await
        .assert_error(400, "invalid_key");
    assert!(message.contains("longer than 1024 bytes"), "{message}");
}

#[actix_web::test]
async fn odd_but_valid_keys_are_stored_as_themselves() {
    let app = spawn_app().await;
    let keys = [
        "with space/file name.parquet",
        "emoji/\u{1f600}\u{1f680}.bin",
        "caf\u{e9}",
        "cafe\u{301}",
        "percent%20literal/%",
        "100%obj",
        "dir%obj/x",
        "...",
        "a/..b/c..",
        "quote\"and'apostrophe",
        "plus+and=equals&amp?q#frag",
        "\u{4e2d}\u{6587}/\u{0627}\u{0644}\u{0639}\u{0631}\u{0628}\u{064a}\u{0629}",
    ];
    for (i, key) in keys.iter().enumerate() {
        let r = app.put(key, format!("body {i}")).await;
        assert_eq!(r.status, 201, "{key:?}: {:?}", r.body);
        assert_eq!(r.json()["key"], *key);
    }
    for (i, key) in keys.iter().enumerate() {
        assert_eq!(app.get(key).await.body, format!("body {i}"), "{key:?}");
    }
    // NFC and NFD are two keys.
    assert_ne!(
        app.get("caf\u{e9}").await.body,
        app.get("cafe\u{301}").await.body
    );
    let listed = app.list("limit=100").await.json();
    let listed: Vec<&str> = listed["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["key"].as_str().unwrap())
        .collect();
    let mut sorted = keys.to_vec();
    sorted.sort_unstable();
    assert_eq!(listed, sorted);

    // A 1024-byte key of short segments fits.
    let deep = vec!["abcdefg"; 128].join("/");
    assert_eq!(deep.len(), 1023);
    assert_eq!(app.put(&deep, "deep").await.status, 201);
    assert_eq!(app.get(&deep).await.body, "deep");
}

#[actix_web::test]
async fn long_segments_and_directory_markers_are_stored_and_survive_a_restart() {
    let app = spawn_app().await;
    let emoji = "\u{1f600}".repeat(63);
    let keys = [
        // 250 'e' + "%" escapes to 253 bytes, plus "%obj": over the 255-byte limit.
        format!("{}%", "e".repeat(250)),
        emoji.clone(),
        format!("{emoji}/x"),
        format!("{emoji}/{emoji}"),
        "s".repeat(1024),
        "%".repeat(1024),
        format!("{}/inner", "d".repeat(700)),
        format!("_catalog/manifests/{}.parquet", "a".repeat(255)),
        // Directory markers, beside keys under them.
        "lake/orders/".to_owned(),
        "lake/orders/part-0.parquet".to_owned(),
        "lake/".to_owned(),
        format!("{}/", "m".repeat(700)),
    ];
    for (i, key) in keys.iter().enumerate() {
        let r = app.put(key, format!("body {i}")).await;
        assert_eq!(r.status, 201, "{key}: {:?}", r.json());
        assert_eq!(r.json()["key"], key.as_str());
    }
    let listing = app.list("limit=100").await.json()["objects"].clone();
    assert_eq!(listing.as_array().unwrap().len(), keys.len());
    let root = app.stop().await;

    let app = spawn_in(root, |_| {}).await;
    assert_eq!(app.list("limit=100").await.json()["objects"], listing);
    for (i, key) in keys.iter().enumerate() {
        assert_eq!(app.get(key).await.body, format!("body {i}"), "{key}");
    }
    // Deleting removes the pieces' directories too.
    for key in &keys {
        assert_eq!(app.delete(key).await.status, 204);
    }
    let objects = std::fs::read_dir(app.data_dir().join("objects"))
        .unwrap()
        .count();
    assert_eq!(objects, 0);
}

#[actix_web::test]
async fn a_planted_symlink_is_never_followed_out() {
    // The file path (with the write log a small object is no file at all).
    let app = spawn_with(|s| s.log_max_object_size = bytesize::ByteSize::b(0)).await;
    let outside = app.root.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("secret%obj"), b"do not serve").unwrap();
    symlink(&outside, app.data_dir().join("objects/evil")).unwrap();
    let before = snapshot(&outside, &app.data_dir());

    let r = app.put("evil/x", "payload").await;
    r.assert_error(409, "key_conflict");
    assert_eq!(app.get("evil/secret").await.status, 404);
    assert_eq!(app.delete("evil/secret").await.status, 204);
    assert_eq!(snapshot(&outside, &app.data_dir()), before);
    assert!(std::fs::read(outside.join("secret%obj")).is_ok());
    let _ = encode("");
}
