//! Scoped credentials on both real binaries (docs/operations.md, "Credentials"): every
//! protected route × {no token, wrong token, a valid token without the scope, a valid token
//! with it} → 401 / 401 / 403 / neither, and a refusal changes nothing; the `_` area is
//! out of reach of `*`; catalogd's own scoped credential registers, deletes and
//! checkpoints; an audit line per write; a token rotated in the file stops working within
//! 2 s while other credentials' requests go on.

use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use awc::http::Method;
use manifest_codec::layout::{CATALOG_PREFIX, CHECKPOINT_KEY};
use service_kit::credentials::token_sha256_hex;
use testkit::lake::{manifest_key_of, register_body};
use testkit::{free_port, Api, Launch, Proc, Reply};

const ADMIN: &str = "admin-token-0123456789";
const METRICS: &str = "metrics-token-0123456789";
const READER: &str = "reader-token-0123456789";
const PRODUCER: &str = "producer-token-0123456789";
const ANYWHERE: &str = "anywhere-token-0123456789";
const CATALOGD: &str = "catalogd-token-0123456789";

/// A credentials file: (name, token, scopes) per entry; tokens given by hash.
fn credentials_file(path: &Path, entries: &[(&str, &str, &[&str])]) {
    let mut text = String::new();
    for (name, token, scopes) in entries {
        let scopes: Vec<String> = scopes.iter().map(|s| format!("{s:?}")).collect();
        let _ = write!(
            text,
            "[[credential]]\nname = {name:?}\ntoken_sha256 = \"{}\"\nscopes = [{}]\n\n",
            token_sha256_hex(token),
            scopes.join(", ")
        );
    }
    std::fs::write(path, text).unwrap();
}

fn storaged_credentials(path: &Path) {
    credentials_file(
        path,
        &[
            ("admin", ADMIN, &["admin"]),
            ("metrics-only", METRICS, &["metrics"]),
            ("reader", READER, &["read:lake/"]),
            ("producer", PRODUCER, &["write:lake/"]),
            ("anywhere", ANYWHERE, &["write:*"]),
            ("catalogd", CATALOGD, &["write:_catalog/", "read:*"]),
        ],
    );
}

fn catalogd_credentials(path: &Path) {
    credentials_file(
        path,
        &[
            ("admin", ADMIN, &["admin"]),
            ("metrics-only", METRICS, &["metrics"]),
            ("reader", READER, &["read"]),
            ("producer", PRODUCER, &["register"]),
        ],
    );
}

async fn call(api: &Api, method: &Method, path: &str, token: Option<&str>) -> Reply {
    let mut req = api.request(method.clone(), path);
    if let Some(token) = token {
        req = req.insert_header(("authorization", format!("Bearer {token}")));
    }
    let body = (method == Method::PUT || method == Method::POST).then(|| {
        let body = register_body("kept", "fp", 1, "x");
        bytes::Bytes::from(serde_json::to_vec(&body).unwrap())
    });
    if method == Method::POST {
        req = req.insert_header(("content-type", "application/json"));
    }
    api.send(req, body).await.unwrap()
}

/// Every (method, concrete path) of `api`'s OpenAPI document that is not open.
/// POSTs `body` as JSON to `path` with `token`.
async fn post_as(api: &Api, path: &str, body: &serde_json::Value, token: &str) -> Reply {
    api.send(
        api.request(Method::POST, path)
            .insert_header(("authorization", format!("Bearer {token}")))
            .insert_header(("content-type", "application/json")),
        Some(serde_json::to_vec(body).unwrap().into()),
    )
    .await
    .unwrap()
}

async fn protected_routes(api: &Api) -> Vec<(Method, String)> {
    let doc = api.get_ok("/openapi.json").await.json();
    let mut out = Vec::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            if op["security"].as_array().is_some_and(Vec::is_empty) {
                continue;
            }
            let concrete = path
                .replace("{key}", "lake/probe")
                .replace("{name}", "kept")
                .replace("{id}", "0c8e6f0e-9d3c-5e4a-8b7f-1a2b3c4d5e6f");
            let concrete = if concrete == "/v1/objects" {
                "/v1/objects?prefix=lake/".to_owned()
            } else {
                concrete
            };
            out.push((method.to_uppercase().parse().unwrap(), concrete));
        }
    }
    out
}

/// The route × credential matrix of one service; returns rows "METHOD path: a/b/c/d".
async fn matrix(
    api: &Api,
    without_scope: impl Fn(&str) -> &'static str,
    snapshot: impl AsyncFn() -> String,
) -> Vec<String> {
    let mut rows = Vec::new();
    for (method, path) in protected_routes(api).await {
        let before = snapshot().await;
        let missing = call(api, &method, &path, None).await.code();
        let wrong = call(api, &method, &path, Some("wrong-token")).await.code();
        let lacking = call(api, &method, &path, Some(without_scope(&path))).await;
        assert_eq!(missing, 401, "{method} {path} without a token");
        assert_eq!(wrong, 401, "{method} {path} with a wrong token");
        assert_eq!(lacking.code(), 403, "{method} {path} without the scope");
        if method != Method::HEAD {
            assert_eq!(lacking.json()["error"], "forbidden");
            let message = lacking.json()["message"].as_str().unwrap().to_owned();
            assert!(message.contains("scope"), "{message}");
            assert!(!message.contains("token-0123"), "a token leaked: {message}");
        }
        assert_eq!(
            snapshot().await,
            before,
            "{method} {path}: a refusal changed something"
        );
        let allowed = call(api, &method, &path, Some(ADMIN)).await.code();
        assert!(
            allowed != 401 && allowed != 403,
            "{method} {path} with admin: {allowed}"
        );
        rows.push(format!(
            "{method} {path}: {missing} / {wrong} / {} / {allowed}",
            lacking.code()
        ));
    }
    rows
}

fn start(launch: Launch, dir: &Path) -> Proc {
    launch.log_dir(dir).spawn()
}

/// storaged and catalogd, both with credentials files; catalogd talks to storaged with
/// its own scoped credential.
async fn stack(dir: &Path) -> (Proc, Proc, PathBuf, PathBuf) {
    let (s_file, c_file) = (dir.join("storaged.toml"), dir.join("catalogd.toml"));
    storaged_credentials(&s_file);
    catalogd_credentials(&c_file);
    let storaged = start(
        Launch::storaged(&dir.join("data"), free_port())
            .arg("--credentials-file")
            .arg(&s_file),
        dir,
    );
    storaged.wait_ready().await;
    let catalogd = start(
        Launch::catalogd(&storaged.url(), free_port())
            .arg("--credentials-file")
            .arg(&c_file)
            .env("CATALOGD_STORAGED_TOKEN", CATALOGD),
        dir,
    );
    catalogd.wait_ready().await;
    (storaged, catalogd, s_file, c_file)
}

#[actix_web::test]
async fn every_route_refuses_missing_wrong_and_unscoped_tokens_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (storaged, catalogd, _, _) = stack(dir.path()).await;
    let (s_api, c_api) = (storaged.api(), catalogd.api());
    let kept = call(&c_api, &Method::POST, "/v1/datasets", Some(PRODUCER)).await;
    assert_eq!(kept.code(), 201, "{:?}", kept.json());
    let put = call(
        &s_api,
        &Method::PUT,
        "/v1/objects/lake/kept/x",
        Some(PRODUCER),
    )
    .await;
    assert_eq!(put.code(), 201);

    let storaged_snapshot = async || {
        let admin = s_api.clone();
        format!("{:?}", objects_as(&admin, "", ADMIN).await)
    };
    let storaged_rows = matrix(
        &s_api,
        |path| if path == "/metrics" { READER } else { METRICS },
        storaged_snapshot,
    )
    .await;
    let catalogd_snapshot = async || {
        let api = c_api.clone();
        format!("{:?}", datasets_as(&api, ADMIN).await)
    };
    let catalogd_rows = matrix(
        &c_api,
        |path| if path == "/metrics" { READER } else { METRICS },
        catalogd_snapshot,
    )
    .await;
    println!("scopes storaged (none / wrong / without scope / admin):");
    for row in &storaged_rows {
        println!("  {row}");
    }
    println!("scopes catalogd (none / wrong / without scope / admin):");
    for row in &catalogd_rows {
        println!("  {row}");
    }
    assert!(storaged_rows.len() >= 6 && catalogd_rows.len() >= 7);
}

/// Every (key, ETag) storaged lists under `prefix`, asked with `token`.
async fn objects_as(api: &Api, prefix: &str, token: &str) -> Vec<(String, String)> {
    let reply = call(
        api,
        &Method::GET,
        &format!("/v1/objects?limit=10000&prefix={prefix}"),
        Some(token),
    )
    .await;
    assert_eq!(reply.code(), 200, "{:?}", reply.json());
    reply.json()["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["key"].as_str().unwrap().to_owned(),
                o["etag"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Every dataset catalogd lists, asked with `token`.
async fn datasets_as(api: &Api, token: &str) -> serde_json::Value {
    let reply = call(api, &Method::GET, "/v1/datasets?limit=1000", Some(token)).await;
    assert_eq!(reply.code(), 200);
    reply.json()["datasets"].clone()
}

#[actix_web::test]
async fn the_underscore_area_is_out_of_reach_of_star_and_prefixes_bind() {
    let dir = tempfile::tempdir().unwrap();
    let (storaged, catalogd, _, _) = stack(dir.path()).await;
    let (s_api, c_api) = (storaged.api(), catalogd.api());
    assert_eq!(
        call(&c_api, &Method::POST, "/v1/datasets", Some(PRODUCER))
            .await
            .code(),
        201
    );
    let manifest = format!("/v1/objects/{}", manifest_key_of("kept"));
    let before = objects_as(&s_api, "", ADMIN).await;

    // (method, path, token, expected status), in order.
    let steps: Vec<(Method, &str, &str, u16)> = vec![
        // write:* cannot touch the catalog.
        (Method::PUT, &manifest, ANYWHERE, 403),
        (Method::DELETE, &manifest, ANYWHERE, 403),
        (Method::GET, &manifest, ANYWHERE, 403),
        (Method::PUT, "/v1/objects/other/x", ANYWHERE, 201),
        // read:lake/ reads and lists under lake/ only.
        (Method::GET, "/v1/objects?prefix=", READER, 403),
        (Method::GET, "/v1/objects?prefix=lake", READER, 403),
        (Method::GET, "/v1/objects/other/x", READER, 403),
        (Method::GET, "/v1/objects/lake/none", READER, 404),
        (Method::PUT, "/v1/objects/lake/y", READER, 403),
        // write:lake/ writes there and nowhere else.
        (Method::PUT, "/v1/objects/lake/y", PRODUCER, 201),
        (Method::PUT, "/v1/objects/other/y", PRODUCER, 403),
        (Method::DELETE, "/v1/objects/lake/y", PRODUCER, 204),
    ];
    for (method, path, token, expected) in &steps {
        let code = call(&s_api, method, path, Some(token)).await.code();
        assert_eq!(code, *expected, "{method} {path}");
    }
    // A `*` listing leaves `_` keys out; the admin sees only other/x added.
    let seen = objects_as(&s_api, "", ANYWHERE).await;
    assert!(seen.iter().all(|(k, _)| !k.starts_with('_')), "{seen:?}");
    assert!(seen.iter().any(|(k, _)| k == "other/x"));
    assert!(objects_as(&s_api, CATALOG_PREFIX, ANYWHERE)
        .await
        .is_empty());
    assert_eq!(objects_as(&s_api, "", ADMIN).await.len(), before.len() + 1);
    assert_eq!(objects_as(&s_api, "lake/", READER).await.len(), 0);

    // Each write is audited once.
    let log = storaged.log_text();
    let audit: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("audit") && l.contains("producer") && l.contains("lake/y"))
        .collect();
    assert_eq!(audit.len(), 2, "one audit line per write: {audit:?}");
    assert!(
        audit[0].contains("created") && audit[1].contains("deleted"),
        "{audit:?}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains("refused") && l.contains("producer") && l.contains("other/y")),
        "the refusal is not logged"
    );
    assert!(!log.contains("token-0123"), "a token reached the log");
    let metrics = call(&s_api, &Method::GET, "/metrics", Some(METRICS)).await;
    let metrics = String::from_utf8_lossy(&metrics.body).into_owned();
    assert!(
        metrics.contains(
            "storaged_credential_requests_total{credential=\"producer\",outcome=\"forbidden\"} 1"
        ),
        "{metrics}"
    );
}

#[actix_web::test]
async fn catalogds_own_scoped_credential_registers_deletes_and_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let (storaged, mut catalogd, _, _) = stack(dir.path()).await;
    let (s_api, c_api) = (storaged.api(), catalogd.api());
    for name in ["one", "two"] {
        let body = register_body(name, "fp", 2, "a");
        let reply = post_as(&c_api, "/v1/datasets", &body, PRODUCER).await;
        assert_eq!(reply.code(), 201, "{:?}", reply.json());
    }
    // The producer may register but not delete; admin may.
    assert_eq!(
        call(&c_api, &Method::DELETE, "/v1/datasets/two", Some(PRODUCER))
            .await
            .code(),
        403
    );
    assert_eq!(
        call(&c_api, &Method::DELETE, "/v1/datasets/two", Some(ADMIN))
            .await
            .code(),
        204
    );
    assert_eq!(
        datasets_as(&c_api, READER).await.as_array().unwrap().len(),
        1
    );
    let log = catalogd.log_text();
    assert!(
        log.lines().any(|l| l.contains("audit")
            && l.contains("producer")
            && l.contains("one")
            && l.contains("created")),
        "{log}"
    );
    // SIGTERM writes the checkpoint through catalogd's own credential.
    let status = catalogd.stop(Duration::from_secs(20));
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
    let checkpoint = call(
        &s_api,
        &Method::GET,
        &format!("/v1/objects/{CHECKPOINT_KEY}"),
        Some(ADMIN),
    )
    .await;
    assert_eq!(
        checkpoint.code(),
        200,
        "no checkpoint written with the scoped credential"
    );
    let keys: Vec<String> = objects_as(&s_api, CATALOG_PREFIX, CATALOGD)
        .await
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert!(keys.contains(&manifest_key_of("one")), "{keys:?}");
    // The delete was a soft one, written with catalogd's credential: the head says so.
    let two = call(
        &s_api,
        &Method::GET,
        &format!("/v1/objects/{}", manifest_key_of("two")),
        Some(ADMIN),
    )
    .await;
    assert!(matches!(
        manifest_codec::decode_record(&two.body).unwrap().state,
        manifest_codec::DatasetState::Deleted { .. }
    ));
}

/// A register with `verify=true` naming a key outside catalogd's own storaged scopes (under
/// `_`, which `read:*` does not reach) is the request's problem, not storaged's: 422 naming
/// the key as unreadable, and nothing changes. (Found by a `make chaos` schemathesis seed:
/// it was a 503 that blamed catalogd's token.)
#[actix_web::test]
async fn verify_names_a_key_catalogds_credential_may_not_read_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (storaged, catalogd, _, _) = stack(dir.path()).await;
    let (s_api, c_api) = (storaged.api(), catalogd.api());
    let put = s_api
        .send(
            s_api
                .request(Method::PUT, "/v1/objects/lake/v/ok.parquet")
                .insert_header(("authorization", format!("Bearer {PRODUCER}"))),
            Some(vec![b'x'; 10].into()),
        )
        .await
        .unwrap();
    assert_eq!(put.code(), 201);
    let body = serde_json::json!({
        "name": "v",
        "schema_fingerprint": "sha256:f",
        "objects": [
            {"key": "lake/v/ok.parquet", "size": 10},
            {"key": "_private/p.parquet", "size": 5},
        ],
    });
    let reply = post_as(&c_api, "/v1/datasets?verify=true", &body, PRODUCER).await;
    assert_eq!(reply.code(), 422, "{:?}", reply.json());
    let json = reply.json();
    assert_eq!(json["error"], "objects_invalid");
    assert_eq!(json["count"], 1);
    assert_eq!(
        json["offenders"],
        serde_json::json!([
            {"key": "_private/p.parquet", "problem": "unreadable", "expected": 5, "actual": null}
        ])
    );
    assert_eq!(
        call(&c_api, &Method::GET, "/v1/datasets/v", Some(READER))
            .await
            .code(),
        404
    );
}

#[actix_web::test]
async fn a_rotated_token_stops_working_within_two_seconds_while_others_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let (storaged, _catalogd, s_file, _) = stack(dir.path()).await;
    let api = storaged.api();
    assert_eq!(
        call(&api, &Method::GET, "/v1/objects/lake/x", Some(READER))
            .await
            .code(),
        404
    );

    // Load from another credential while the file is rewritten.
    let stop = std::rc::Rc::new(std::cell::Cell::new(false));
    let load = {
        let (api, stop) = (api.clone(), stop.clone());
        async move {
            let mut codes = Vec::new();
            while !stop.get() {
                codes.push(
                    call(
                        &api,
                        &Method::GET,
                        "/v1/objects?prefix=lake/",
                        Some(PRODUCER),
                    )
                    .await
                    .code(),
                );
            }
            codes
        }
    };
    let rotate = async {
        actix_web::rt::time::sleep(Duration::from_millis(300)).await;
        let rotated = "reader-rotated-0123456789";
        credentials_file(
            &s_file,
            &[
                ("admin", ADMIN, &["admin"]),
                ("reader", rotated, &["read:lake/"]),
                ("producer", PRODUCER, &["write:lake/"]),
                ("catalogd", CATALOGD, &["write:_catalog/", "read:*"]),
            ],
        );
        let rewritten = Instant::now();
        let mut refused_after = None;
        while rewritten.elapsed() < Duration::from_secs(5) {
            if call(&api, &Method::GET, "/v1/objects/lake/x", Some(READER))
                .await
                .code()
                == 401
            {
                refused_after = Some(rewritten.elapsed());
                break;
            }
            actix_web::rt::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(
            call(&api, &Method::GET, "/v1/objects/lake/x", Some(rotated))
                .await
                .code(),
            404
        );
        // A broken file keeps the credentials in force.
        std::fs::write(&s_file, "[[credential]]\nname = 1\n").unwrap();
        actix_web::rt::time::sleep(Duration::from_millis(1200)).await;
        assert_eq!(
            call(&api, &Method::GET, "/v1/objects/lake/x", Some(rotated))
                .await
                .code(),
            404
        );
        stop.set(true);
        refused_after
    };
    let (codes, refused_after) = futures_util::future::join(load, rotate).await;
    let refused_after = refused_after.expect("the old token still works 5 s after the rotation");
    assert!(
        refused_after <= Duration::from_secs(2),
        "took {refused_after:?}"
    );
    assert!(
        codes.len() > 10 && codes.iter().all(|c| *c == 200),
        "{codes:?}"
    );
    assert!(storaged.log_text().contains("credentials file refused"));
    println!(
        "rotation: old token refused {refused_after:?} after the rewrite; {} requests of another credential meanwhile, all 200",
        codes.len()
    );
}

#[actix_web::test]
async fn sighup_reloads_a_file_whose_change_the_poll_cannot_see() {
    let dir = tempfile::tempdir().unwrap();
    let (storaged, _catalogd, s_file, _) = stack(dir.path()).await;
    let api = storaged.api();
    let path = "/v1/objects/lake/x";
    assert_eq!(
        call(&api, &Method::GET, path, Some(READER)).await.code(),
        404
    );

    // Rewrite in place (a hash has one length whatever the token), then put the old time
    // back: the file's (mtime, length, inode) stamp is unchanged, so only SIGHUP can
    // reveal the change.
    let modified = std::fs::metadata(&s_file).unwrap().modified().unwrap();
    let since = modified.duration_since(std::time::UNIX_EPOCH).unwrap();
    let rotated = "reader-sighup-0123456789";
    let text = std::fs::read_to_string(&s_file)
        .unwrap()
        .replace(&token_sha256_hex(READER), &token_sha256_hex(rotated));
    std::fs::write(&s_file, text).unwrap();
    let touched = std::process::Command::new("touch")
        .arg("-m")
        .arg("-d")
        .arg(format!("@{}.{:09}", since.as_secs(), since.subsec_nanos()))
        .arg(&s_file)
        .status()
        .unwrap();
    assert!(touched.success());
    actix_web::rt::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        call(&api, &Method::GET, path, Some(READER)).await.code(),
        404,
        "the poll saw a change it cannot see"
    );

    storaged.signal("-HUP");
    let deadline = Instant::now() + Duration::from_secs(2);
    while call(&api, &Method::GET, path, Some(rotated)).await.code() != 404 {
        assert!(
            Instant::now() < deadline,
            "SIGHUP did not reload the credentials"
        );
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        call(&api, &Method::GET, path, Some(READER)).await.code(),
        401
    );
    assert!(storaged.log_text().contains("credentials reloaded"));
}
