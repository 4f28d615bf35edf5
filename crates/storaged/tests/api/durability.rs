//! Restarts keep bytes and ETags; leftover temp files are swept; slow bodies time out.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use crate::helpers::{spawn_in, spawn_with, temp_files};

#[actix_web::test]
async fn a_restart_keeps_bytes_and_etags() {
    let app = spawn_with(|_| {}).await;
    let mut written = Vec::new();
    for i in 0..20 {
        let key = format!("keep/{i}/obj");
        let body = format!("content {i}").repeat(i + 1);
        let etag = app
            .put(&key, body.clone())
            .await
            .header("etag")
            .unwrap()
            .to_owned();
        written.push((key, body, etag));
    }
    app.put("keep/empty", "").await;
    let listing_before = app.list("").await.json()["objects"].clone();
    let root = app.stop().await;

    let app = spawn_in(root, |_| {}).await;
    for (key, body, etag) in &written {
        let r = app.get(key).await;
        assert_eq!(r.body, body.as_bytes(), "{key}");
        assert_eq!(r.header("etag"), Some(etag.as_str()), "{key}");
    }
    assert_eq!(app.get("keep/empty").await.status, 200);
    assert_eq!(app.list("").await.json()["objects"], listing_before);
}

#[actix_web::test]
async fn a_planted_temp_file_is_swept_and_never_listed() {
    let app = spawn_with(|_| {}).await;
    app.put("real/object", "x").await;
    let root = app.stop().await;
    let tmp = root.path().join("data/tmp");
    std::fs::write(tmp.join("12345-0.tmp"), b"half an upload").unwrap();
    std::fs::write(tmp.join("stray"), b"junk").unwrap();

    let app = spawn_in(root, |_| {}).await;
    assert_eq!(temp_files(&app.data_dir()), 0);
    let listed = app.list("").await.json();
    let keys: Vec<&str> = listed["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["real/object"]);
}

#[actix_web::test]
async fn a_stalled_body_times_out_while_others_are_served() {
    let app = spawn_with(|s| s.body_idle_timeout = Duration::from_secs(2)).await;
    app.put("slow/key", "old").await;
    let port = app.port;
    let stalled = std::thread::spawn(move || {
        let mut socket = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        socket
            .write_all(
                b"PUT /v1/objects/slow/key HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n0123456789",
            )
            .unwrap();
        let started = Instant::now();
        let mut reply = Vec::new();
        let mut buf = [0; 4096];
        // Read until the server answers (and closes).
        while let Ok(n) = socket.read(&mut buf) {
            if n == 0 {
                break;
            }
            reply.extend_from_slice(&buf[..n]);
            if reply.windows(4).any(|w| w == b"\r\n\r\n") && reply.ends_with(b"}") {
                break;
            }
        }
        (
            String::from_utf8_lossy(&reply).into_owned(),
            started.elapsed(),
        )
    });
    // While it stalls, other requests are served promptly.
    for _ in 0..5 {
        let started = Instant::now();
        assert_eq!(app.get("slow/key").await.body, "old");
        assert!(started.elapsed() < Duration::from_millis(500));
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    let (reply, waited) = stalled.join().unwrap();
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
    assert!(reply.contains("body_timeout"), "{reply}");
    assert!(
        waited >= Duration::from_millis(1900),
        "answered before the idle timeout: {waited:?}"
    );
    assert_eq!(app.get("slow/key").await.body, "old");
    assert_eq!(temp_files(&app.data_dir()), 0);
}
