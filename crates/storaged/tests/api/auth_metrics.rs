//! Bearer-token auth, probes and the Prometheus endpoint.

use bytes::Bytes;
use storaged::config::Secret;

use crate::helpers::{spawn_app, spawn_with};

#[actix_web::test]
async fn a_configured_token_guards_everything_but_the_probes() {
    let app = spawn_with(|s| s.auth_token = Some(Secret::new("s3cret-token"))).await;
    for path in ["/healthz", "/readyz"] {
        let r = app.send(app.client.get(app.url(path)), Bytes::new()).await;
        assert_eq!(r.status, 200, "{path}");
    }
    let r = app.put("a/b", "x").await;
    r.assert_error(401, "unauthorized");
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    let wrong = app
        .send(
            app.client
                .put(app.object_url("a/b"))
                .insert_header(("Authorization", "Bearer s3cret-tokem")),
            "x",
        )
        .await;
    wrong.assert_error(401, "unauthorized");
    for path in ["/v1/objects", "/metrics", "/v1/objects/a/b"] {
        let r = app.send(app.client.get(app.url(path)), Bytes::new()).await;
        assert_eq!(r.status, 401, "{path}");
    }
    let auth = ("Authorization", "Bearer s3cret-token");
    let ok = app
        .send(
            app.client.put(app.object_url("a/b")).insert_header(auth),
            "x",
        )
        .await;
    assert_eq!(ok.status, 201);
    let r = app
        .send(
            app.client.get(app.url("/metrics")).insert_header(auth),
            Bytes::new(),
        )
        .await;
    assert_eq!(r.status, 200);
    assert!(!String::from_utf8_lossy(&r.body).contains("s3cret"));
}

#[actix_web::test]
async fn metrics_count_routes_statuses_bytes_and_fsyncs() {
    let app = spawn_app().await;
    app.put("m/one", vec![0_u8; 1000]).await;
    app.get("m/one").await;
    app.get("m/missing").await;
    app.get("bad/../key").await;
    let r = app
        .send(app.client.get(app.url("/metrics")), Bytes::new())
        .await;
    assert_eq!(r.status, 200);
    let text = String::from_utf8(r.body.to_vec()).unwrap();
    let value = |needle: &str| -> u64 {
        text.lines()
            .find(|l| l.starts_with(needle))
            .unwrap_or_else(|| panic!("no line starting with {needle} in\n{text}"))
            .rsplit(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert_eq!(
        value(
            r#"storaged_http_requests_total{method="PUT",route="/v1/objects/{key:.*}",status="201"}"#
        ),
        1
    );
    assert_eq!(
        value(
            r#"storaged_http_requests_total{method="GET",route="/v1/objects/{key:.*}",status="404"}"#
        ),
        1
    );
    assert!(value("storaged_http_request_duration_seconds_count") >= 1);
    assert_eq!(value("storaged_bytes_in_total"), 1000);
    assert_eq!(value("storaged_bytes_out_total"), 1000);
    assert!(value("storaged_fsync_duration_seconds_count") >= 2);
    assert_eq!(value(r#"storaged_errors_total{kind="not_found"}"#), 1);
    assert_eq!(value(r#"storaged_errors_total{kind="invalid_key"}"#), 1);
}

#[actix_web::test]
async fn readyz_fails_when_the_data_directory_goes_away() {
    let app = spawn_app().await;
    let r = app
        .send(app.client.get(app.url("/readyz")), Bytes::new())
        .await;
    assert_eq!(r.status, 200);
    std::fs::remove_dir_all(app.data_dir()).unwrap();
    let r = app
        .send(app.client.get(app.url("/readyz")), Bytes::new())
        .await;
    assert_eq!(r.status, 503);
    let r = app
        .send(app.client.get(app.url("/healthz")), Bytes::new())
        .await;
    assert_eq!(r.status, 200);
}
