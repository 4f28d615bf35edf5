//! storaged with the write log on (ADR 0017), through the HTTP API: small objects become
//! log records, large ones files; both survive a restart; the log's work is in /metrics.

use bytes::Bytes;
use bytesize::ByteSize;

use crate::helpers::{spawn_in, spawn_with, TestApp};

fn with_log(s: &mut storaged::config::Settings) {
    s.log_max_object_size = ByteSize::kib(256);
    s.log_segment_size = ByteSize::mib(8);
}

async fn metric(app: &TestApp, name: &str) -> u64 {
    let r = app
        .send(app.client.get(app.url("/metrics")), Bytes::new())
        .await;
    let text = String::from_utf8(r.body.to_vec()).unwrap();
    text.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

fn files_under(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            out.extend(files_under(&entry.path()));
        } else {
            out.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    out
}

#[actix_web::test]
async fn small_objects_are_log_records_large_ones_files_and_both_survive_a_restart() {
    let app = spawn_with(with_log).await;
    let mut etags = Vec::new();
    for i in 0..20 {
        let r = app.put(&format!("logged/k{i}"), format!("value {i}")).await;
        assert_eq!(r.status, 201);
        etags.push(r.header("etag").unwrap().to_owned());
    }
    let big = vec![7_u8; 300 * 1024];
    assert_eq!(app.put("files/big", big.clone()).await.status, 201);
    assert_eq!(app.delete("logged/k0").await.status, 204);

    let objects = files_under(&app.data_dir().join("objects"));
    assert_eq!(objects, ["big%obj"], "only the large object is a file");
    assert!(files_under(&app.data_dir().join("log"))
        .iter()
        .any(|f| std::path::Path::new(f)
            .extension()
            .is_some_and(|e| e == "seg")));
    // 20 puts and a delete: 21 records, in at most 21 batches.
    assert_eq!(metric(&app, "storaged_log_records_total").await, 21);
    let batches = metric(&app, "storaged_log_batches_total").await;
    assert!((1..=21).contains(&batches), "{batches}");

    let root = app.stop().await;
    let app = spawn_in(root, with_log).await;
    assert_eq!(app.get("logged/k0").await.status, 404);
    for (i, etag) in etags.iter().enumerate().skip(1) {
        let r = app.get(&format!("logged/k{i}")).await;
        assert_eq!(r.body, format!("value {i}").as_bytes());
        assert_eq!(r.header("etag"), Some(etag.as_str()));
    }
    assert_eq!(app.get("files/big").await.body, big);
    let listed = app.list("prefix=logged/").await.json()["objects"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(listed, 19);
}
