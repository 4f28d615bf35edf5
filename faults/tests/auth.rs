//! Bearer-token auth on both real binaries: every protected route (read from each
//! service's own OpenAPI document) refuses a missing token, a wrong one and the token with
//! its last byte changed; catalogd with the wrong storaged token is not ready, and once
//! ready answers 503 with a log line saying storaged rejected the credentials; no token
//! ever appears in a log, a response or the metrics.

use std::time::{Duration, Instant};

use awc::http::Method;
use testkit::lake::register_body;
use testkit::{free_port, Api, Launch, Proc, Reply};

const STORAGED_TOKEN: &str = "st-9f8e7d6c5b4a39281706f5e4d3c2b1a0";
const CATALOGD_TOKEN: &str = "ct-0a1b2c3d4e5f60718293a4b5c6d7e8f9";

/// `token` with its last byte changed.
fn last_byte_changed(token: &str) -> String {
    let mut t = token.to_owned();
    let last = t.pop().unwrap();
    t.push(if last == 'x' { 'y' } else { 'x' });
    t
}

fn start_storaged(dir: &std::path::Path, port: u16, token: &str) -> Proc {
    Launch::storaged(&dir.join("data"), port)
        .env("STORAGED_AUTH_TOKEN", token)
        .log_dir(dir)
        .spawn()
}

fn start_catalogd(storaged_port: u16, env: &[(&str, &str)], dir: &std::path::Path) -> Proc {
    Launch::catalogd(&format!("http://127.0.0.1:{storaged_port}"), free_port())
        .envs(env.iter().copied())
        .log_dir(dir)
        .spawn()
}

async fn call(api: &Api, method: &Method, path: &str, auth: Option<&str>) -> Reply {
    let mut req = api.request(method.clone(), path);
    if let Some(auth) = auth {
        req = req.insert_header(("authorization", auth));
    }
    let body =
        (method == Method::PUT || method == Method::POST).then(|| bytes::Bytes::from_static(b"{}"));
    api.send(req, body).await.unwrap()
}

/// Every (method, concrete path) of `api`'s OpenAPI document that requires the token.
async fn protected_routes(api: &Api, auth: &str) -> Vec<(Method, String)> {
    let doc = call(api, &Method::GET, "/openapi.json", Some(auth))
        .await
        .json();
    let mut out = Vec::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            if op["security"].as_array().is_some_and(Vec::is_empty) {
                continue; // open: probes and the document itself
            }
            let concrete = path
                .replace("{key}", "auth/probe")
                .replace("{name}", "kept")
                .replace("{id}", "0c8e6f0e-9d3c-5e4a-8b7f-1a2b3c4d5e6f");
            out.push((method.to_uppercase().parse().unwrap(), concrete));
        }
    }
    assert!(out.len() >= 5, "{out:?}");
    out
}

/// Every protected route of `api` refuses anything but `Bearer <token>`, and accepts it.
async fn check_routes(api: &Api, token: &str) -> usize {
    let good = format!("Bearer {token}");
    let routes = protected_routes(api, &good).await;
    let wrong = [
        None,
        Some("Bearer wrong-token".to_owned()),
        Some(format!("Bearer {}", last_byte_changed(token))),
        Some(format!("Bearer {}", &token[..token.len() - 1])),
        Some(format!("Basic {token}")),
        Some(token.to_owned()),
    ];
    for (method, path) in &routes {
        for auth in &wrong {
            let reply = call(api, method, path, auth.as_deref()).await;
            assert_eq!(reply.code(), 401, "{method} {path} with {auth:?}");
            assert_eq!(reply.header("www-authenticate"), Some("Bearer"));
            if method != Method::HEAD {
                assert_eq!(reply.json()["error"], "unauthorized", "{method} {path}");
            }
        }
        let reply = call(api, method, path, Some(&good)).await;
        assert_ne!(reply.code(), 401, "{method} {path} with the right token");
    }
    routes.len()
}

/// Registers `kept` (objects tagged `tag`) with the `Authorization` value `auth`.
async fn register(api: &Api, auth: &str, tag: &str) -> Reply {
    let body = serde_json::to_vec(&register_body("kept", "fp", 2, tag)).unwrap();
    api.send(
        api.request(Method::POST, "/v1/datasets")
            .insert_header(("authorization", auth))
            .insert_header(("content-type", "application/json")),
        Some(body.into()),
    )
    .await
    .unwrap()
}

async fn wait_for_log(p: &Proc, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !p.log_text().contains(needle) {
        assert!(
            Instant::now() < deadline,
            "no {needle:?} in:\n{}",
            p.log_text()
        );
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
}

#[actix_web::test]
async fn tokens_guard_every_protected_route_and_never_leak() {
    let dir = tempfile::tempdir().unwrap();
    let storaged_port = free_port();
    let mut storaged = start_storaged(dir.path(), storaged_port, STORAGED_TOKEN);
    storaged.wait_ready().await;
    let env = [
        ("CATALOGD_AUTH_TOKEN", CATALOGD_TOKEN),
        ("CATALOGD_STORAGED_TOKEN", STORAGED_TOKEN),
        ("CATALOGD_STORAGED_TIMEOUT", "2s"),
    ];
    let good = start_catalogd(storaged_port, &env, dir.path());
    good.wait_ready().await;
    let api = good.api();
    let auth = format!("Bearer {CATALOGD_TOKEN}");
    let reply = register(&api, &auth, "a").await;
    assert_eq!(reply.code(), 201, "{:?}", reply.json());

    let storaged_routes = check_routes(&storaged.api(), STORAGED_TOKEN).await;
    let catalogd_routes = check_routes(&api, CATALOGD_TOKEN).await;

    // The wrong storaged token: never ready, and the log says why.
    let wrong = last_byte_changed(STORAGED_TOKEN);
    let misconfigured = start_catalogd(
        storaged_port,
        &[("CATALOGD_STORAGED_TOKEN", wrong.as_str())],
        dir.path(),
    );
    wait_for_log(&misconfigured, "storaged rejected the credentials").await;
    assert_eq!(misconfigured.api().get_ok("/readyz").await.code(), 503);

    // storaged's token rotated under a running catalogd: registers answer 503.
    storaged.kill();
    drop(storaged);
    let storaged = start_storaged(dir.path(), storaged_port, "st-rotated-token-000000000000");
    storaged.wait_ready().await;
    let reply = register(&api, &auth, "b").await;
    assert_eq!(reply.code(), 503, "{:?}", reply.json());
    assert_eq!(reply.json()["error"], "storage_unavailable");
    wait_for_log(&good, "storaged rejected the credentials").await;

    // No token in any log, response body or metrics.
    let metrics = call(&api, &Method::GET, "/metrics", Some(&auth)).await;
    let mut texts = vec![String::from_utf8_lossy(&metrics.body).into_owned()];
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "log") {
            texts.push(std::fs::read_to_string(&path).unwrap());
        }
    }
    assert!(texts.len() >= 4, "{} logs", texts.len());
    for secret in [
        STORAGED_TOKEN,
        CATALOGD_TOKEN,
        wrong.as_str(),
        "st-rotated-token",
    ] {
        for text in &texts {
            assert!(!text.contains(secret), "a token leaked:\n{text}");
        }
    }
    println!(
        "auth: {storaged_routes} storaged and {catalogd_routes} catalogd protected routes × 6 \
         wrong credentials → 401; wrong storaged token → not ready, 503, logged; no token in \
         {} logs",
        texts.len() - 1
    );
}
