//! Hostile input against the real binaries: a corpus of over 200 traversal and malformed
//! keys, a corpus of bad dataset names, hostile register bodies, and raw HTTP garbage.
//! Every one gets a 4xx (never a 5xx) whose message names what is wrong, and nothing
//! changes: storaged's listing, ETags and bytes, catalogd's datasets, and every file
//! outside the data directory.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use faults::tree::snapshot;
use serde_json::{json, Value};
use testkit::lake::{list_all, manifest_key_of, objects, register_body};
use testkit::{storaged_and_catalogd, Proc};

struct Stack {
    root: tempfile::TempDir,
    _logs: tempfile::TempDir,
    storaged: Proc,
    catalogd: Proc,
}

/// storaged (data in `<root>/data`, with a sentinel directory `<root>/outside` and a
/// planted link `objects/evil` → outside) and catalogd on it.
async fn stack() -> Stack {
    let root = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let outside = root.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("secret%obj"), b"do not serve").unwrap();
    let (storaged, catalogd) = storaged_and_catalogd(&root.path().join("data"), logs.path()).await;
    std::os::unix::fs::symlink(&outside, root.path().join("data/objects/evil")).unwrap();
    let api = catalogd.api();
    assert_eq!(
        api.register(&register_body("kept", "fp", 3, "a"))
            .await
            .unwrap()
            .code(),
        201
    );
    assert_eq!(
        storaged
            .api()
            .put("/v1/objects/lake/kept/x", "bytes")
            .await
            .unwrap()
            .code(),
        201
    );
    Stack {
        root,
        _logs: logs,
        storaged,
        catalogd,
    }
}

/// Everything a hostile request must leave unchanged.
#[derive(Debug, PartialEq)]
struct Observed {
    listing: Vec<(String, String)>,
    manifest: Vec<u8>,
    datasets: Vec<Value>,
    files: std::collections::BTreeMap<String, String>,
}

async fn observe(s: &Stack) -> Observed {
    let store = s.storaged.api();
    Observed {
        listing: objects(&store, "").await,
        manifest: store
            .get_ok(&format!("/v1/objects/{}", manifest_key_of("kept")))
            .await
            .body
            .to_vec(),
        datasets: list_all(&s.catalogd.api()).await,
        files: snapshot(s.root.path(), &[]),
    }
}

/// Over 200 raw (percent-encoded) key paths that must be refused.
fn key_corpus() -> Vec<String> {
    let mut corpus = Vec::new();
    let dots = ["..", ".", "%2e%2e", "%2E%2E", "%2e.", ".%2e", "%2e", "%2E"];
    let forms = [
        "{}",
        "{}/x",
        "a/{}",
        "a/{}/b",
        "{}%2fx",
        "a%2f{}%2fb",
        "{}/{}/etc/passwd",
        "x/{}/{}/{}/{}/tmp/evil",
    ];
    for d in dots {
        for f in forms {
            corpus.push(f.replace("{}", d));
        }
    }
    for c in (0..0x20).chain([0x7f]) {
        corpus.push(format!("a%{c:02x}b"));
        corpus.push(format!("%{c:02x}"));
    }
    for c in 0x80..0xa0 {
        corpus.push(format!("a%c2%{c:02x}")); // C1 controls
    }
    for bad in [
        "%c0%ae",
        "%c0%af",
        "%c1%9c",
        "%c0%80",
        "%e0%80%ae",
        "%f0%80%80%ae",
        "%ed%a0%80",
        "%ed%bf%bf",
        "%f4%90%80%80",
        "%f8%88%80%80%80",
        "%80",
        "%bf",
        "%fe",
        "%ff",
        "%e2%82",
    ] {
        corpus.push(format!("a/{bad}"));
        corpus.push(format!("{bad}%c0%ae/x"));
    }
    for k in [
        "a%5cb",
        "..%5cx",
        "%5c",
        "a%5c..%5cb",
        "%2fetc%2fpasswd",
        "%2f",
        "%2f%2fabs",
        "a//b",
        "a//",
        "a%2f%2fb",
        "a%2f%2f",
        "..%2f",
    ] {
        corpus.push(k.to_owned());
    }
    corpus.push("k".repeat(1025));
    corpus.push(format!("{}/x", "%25".repeat(1023)));
    corpus
}

#[actix_web::test]
async fn a_corpus_of_hostile_keys_is_refused_and_nothing_changes() {
    let s = stack().await;
    let before = observe(&s).await;
    let corpus = key_corpus();
    assert!(corpus.len() >= 200, "{}", corpus.len());
    let store = s.storaged.api();
    for raw in &corpus {
        for method in ["PUT", "GET", "HEAD", "DELETE"] {
            let req = store.request(method.parse().unwrap(), &format!("/v1/objects/{raw}"));
            let reply = store
                .send(req, Some(bytes::Bytes::from_static(b"payload")))
                .await
                .unwrap_or_else(|e| panic!("{method} {raw}: {e}"));
            assert_eq!(reply.code(), 400, "{method} {raw}");
            if method != "HEAD" {
                let json = reply.json();
                let message = json["message"].as_str().unwrap_or_default();
                assert!(
                    json["error"] == "invalid_key" && message.starts_with("invalid key: "),
                    "{method} {raw}: {json}"
                );
            }
        }
    }
    // The planted link is never followed out of the data directory (an object file: one
    // larger than the write log takes).
    let reply = store
        .put("/v1/objects/evil/x", vec![b'p'; 300 << 10])
        .await
        .unwrap();
    assert_eq!(reply.code(), 409, "{:?}", reply.json());
    assert_eq!(store.get_ok("/v1/objects/evil/secret").await.code(), 404);
    assert_eq!(observe(&s).await, before);
    println!(
        "{} hostile keys × 4 methods → 400, nothing changed",
        corpus.len()
    );
}

#[actix_web::test]
async fn bad_dataset_names_are_400_naming_the_rule_and_change_nothing() {
    let s = stack().await;
    let before = observe(&s).await;
    let api = s.catalogd.api();
    let names: Vec<(String, &str)> = vec![
        ("Orders".into(), "uppercase"),
        ("ORDERS.daily".into(), "uppercase"),
        (
            "\u{ff4f}\u{ff52}\u{ff44}\u{ff45}\u{ff52}\u{ff53}".into(),
            "character",
        ),
        ("or\u{200b}ders".into(), "character"),
        ("\u{feff}orders".into(), "character"),
        ("caf\u{e9}".into(), "character"),
        ("cafe\u{301}".into(), "character"),
        ("orders\u{2024}daily".into(), "character"),
        (".orders".into(), "empty segment"),
        ("orders.".into(), "empty segment"),
        ("a..b".into(), "empty segment"),
        ("..".into(), "empty segment"),
        (".".into(), "empty segment"),
        ("a".repeat(256), "255"),
        (format!("{}.b", "a".repeat(254)), "255"),
        (String::new(), "empty"),
        ("a/b".into(), "character"),
        ("a b".into(), "character"),
        ("a\u{0}b".into(), "character"),
        ("-orders".into(), "start"),
        ("_orders".into(), "start"),
        ("a._b".into(), "start"),
        ("%2e%2e".into(), "character"),
        ("\u{1f4a5}".into(), "character"),
    ];
    for (name, rule) in &names {
        let body = json!({"name": name, "schema_fingerprint": "fp", "objects": []});
        let reply = api.register(&body).await.unwrap();
        assert_eq!(reply.code(), 400, "{name:?}");
        let json = reply.json();
        assert_eq!(json["error"], "invalid_request", "{name:?}");
        let message = json["message"].as_str().unwrap();
        assert!(
            message.starts_with("name: ") && message.contains(rule),
            "{name:?}: {message:?} does not name {rule:?}"
        );
        let path = format!("/v1/datasets/{}", percent_encode(name));
        let code = api.get(&path).await.map_or(0, |r| r.code());
        assert!(code == 400 || code == 404, "GET {name:?}: {code}");
    }
    assert_eq!(observe(&s).await, before);
    // The longest valid name is fine.
    let longest = "a".repeat(255);
    let reply = api
        .register(&json!({"name": longest, "schema_fingerprint": "fp", "objects": []}))
        .await
        .unwrap();
    assert_eq!(reply.code(), 201);
    let reply = api
        .send(
            api.request(
                awc::http::Method::DELETE,
                &format!("/v1/datasets/{longest}"),
            ),
            None,
        )
        .await
        .unwrap();
    assert_eq!(reply.code(), 204);
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A gzip stream of `n` zero bytes (a decompression bomb when `n` is large).
fn gzip_of_zeros(n: usize) -> Vec<u8> {
    let out = std::process::Command::new("sh")
        .args(["-c", &format!("head -c {n} /dev/zero | gzip -9 -c")])
        .output()
        .expect("sh and gzip");
    assert!(out.status.success());
    out.stdout
}

/// What a hostile register sends and the status it must get.
type Case = (
    &'static str,
    Vec<u8>,
    Vec<(&'static str, &'static str)>,
    u16,
);

#[actix_web::test]
async fn hostile_register_bodies_are_4xx_and_change_nothing() {
    let s = stack().await;
    let before = observe(&s).await;
    let api = s.catalogd.api();
    let post = |body: Vec<u8>, headers: Vec<(&'static str, &'static str)>| {
        let api = api.clone();
        async move {
            let mut req = api.request(awc::http::Method::POST, "/v1/datasets");
            for h in headers {
                req = req.insert_header(h);
            }
            api.send(req, Some(body.into())).await.unwrap()
        }
    };
    let json_type = vec![("content-type", "application/json")];
    let object = |size: &str| {
        format!(r#"{{"name": "kept", "schema_fingerprint": "fp", "objects": [{{"key": "a", "size": {size}}}]}}"#)
            .into_bytes()
    };
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)).into_bytes();
    let deep_inside = format!(
        r#"{{"name": "kept", "schema_fingerprint": "fp", "objects": {}{}}}"#,
        "[".repeat(10_000),
        "]".repeat(10_000)
    )
    .into_bytes();
    let million: String = (0..1_000_000)
        .map(|i| format!(r#"{{"key":"k/{i}","size":1}}"#))
        .collect::<Vec<_>>()
        .join(",");
    let million =
        format!(r#"{{"name": "kept", "schema_fingerprint": "fp", "objects": [{million}]}}"#);
    let huge = format!(
        r#"{{"name": "kept", "schema_fingerprint": "{}", "objects": []}}"#,
        "f".repeat(65 * 1024 * 1024)
    );
    let cases: Vec<Case> = vec![
        (
            "truncated JSON",
            br#"{"name": "kept", "schema"#.to_vec(),
            json_type.clone(),
            400,
        ),
        ("empty body", Vec::new(), json_type.clone(), 400),
        ("not UTF-8", vec![0xff, 0xfe, b'{'], json_type.clone(), 400),
        ("10,000-deep nesting", deep, json_type.clone(), 400),
        (
            "10,000-deep nesting in a field",
            deep_inside,
            json_type.clone(),
            400,
        ),
        ("size 1e400", object("1e400"), json_type.clone(), 400),
        (
            "size 2^63",
            object("9223372036854775808"),
            json_type.clone(),
            400,
        ),
        ("size 1.5", object("1.5"), json_type.clone(), 400),
        ("size -1", object("-1"), json_type.clone(), 400),
        (
            "a million objects",
            million.into_bytes(),
            json_type.clone(),
            400,
        ),
        ("65 MiB body", huge.into_bytes(), json_type.clone(), 413),
        (
            "text/plain",
            serde_json::to_vec(&register_body("kept", "fp", 1, "b")).unwrap(),
            vec![("content-type", "text/plain")],
            415,
        ),
        (
            "gzip bomb",
            gzip_of_zeros(200 * 1024 * 1024),
            vec![
                ("content-type", "application/json"),
                ("content-encoding", "gzip"),
            ],
            415,
        ),
    ];
    for (what, body, headers, status) in cases {
        let reply = post(body, headers).await;
        assert_eq!(reply.code(), status, "{what}: {:?}", reply.json());
        let json = reply.json();
        assert!(
            json["error"].is_string() && !json["message"].as_str().unwrap_or_default().is_empty(),
            "{what}: {json}"
        );
    }
    assert_eq!(observe(&s).await, before);
}

/// Sends `raw` on a new connection and returns what came back before the server closed
/// it (or 5 s passed).
fn raw_exchange(port: u16, raw: &[u8], half_close: bool) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let _ = stream.write_all(raw);
    if half_close {
        let _ = stream.shutdown(std::net::Shutdown::Write);
    }
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn status_of(response: &str) -> Option<u16> {
    response
        .strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|c| c.parse().ok())
}

#[actix_web::test]
async fn raw_http_garbage_is_4xx_and_closed_and_later_requests_are_fine() {
    let s = stack().await;
    let before = observe(&s).await;
    let huge_header = format!(
        "GET /healthz HTTP/1.1\r\nhost: x\r\nx-big: {}\r\n\r\n",
        "a".repeat(128 * 1024)
    );
    let many_headers = format!(
        "GET /healthz HTTP/1.1\r\nhost: x\r\n{}\r\n",
        (0..500).fold(String::new(), |mut h, i| {
            let _ = write!(h, "x-h{i}: v\r\n");
            h
        })
    );
    let cases: Vec<(&str, Vec<u8>, bool)> = vec![
        ("garbage request line", b"GARBAGE\r\n\r\n".to_vec(), false),
        ("binary noise", vec![0, 1, 2, 0xff, 0xfe, b'\r', b'\n', b'\r', b'\n'], false),
        ("unknown version", b"GET /healthz HTTP/9.9\r\n\r\n".to_vec(), false),
        ("space in the target", b"GET /heal thz HTTP/1.1\r\nhost: x\r\n\r\n".to_vec(), false),
        ("bad header name", b"GET /healthz HTTP/1.1\r\nho st: x\r\n\r\n".to_vec(), false),
        ("NUL in a header", b"GET /healthz HTTP/1.1\r\nhost: x\0y\r\n\r\n".to_vec(), false),
        ("128 KiB header", huge_header.into_bytes(), false),
        ("500 headers", many_headers.into_bytes(), false),
        (
            "Content-Length with Transfer-Encoding",
            b"PUT /v1/objects/smuggled HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\nGET /v1/objects/lake/kept/x HTTP/1.1\r\nhost: x\r\n\r\n".to_vec(),
            false,
        ),
        (
            "two Content-Lengths",
            b"PUT /v1/objects/smuggled HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\ncontent-length: 7\r\n\r\nhello12".to_vec(),
            false,
        ),
        (
            "negative Content-Length",
            b"PUT /v1/objects/smuggled HTTP/1.1\r\nhost: x\r\ncontent-length: -5\r\n\r\nhello".to_vec(),
            false,
        ),
    ];
    // Broken bodies after a valid head: actix-http drops the connection on a payload
    // decode error without writing its 400, so these must only never succeed.
    let broken_bodies: Vec<(&str, &[u8], bool)> = vec![
        (
            "bad chunk size",
            b"PUT /v1/objects/smuggled HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
            false,
        ),
        (
            "a body shorter than its Content-Length",
            b"PUT /v1/objects/short HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\nonly ten b",
            true,
        ),
        (
            "a chunked body cut short",
            b"PUT /v1/objects/short HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n10\r\nonly",
            true,
        ),
    ];
    for service in [&s.storaged, &s.catalogd] {
        for (what, raw, half_close) in &cases {
            let response = raw_exchange(service.port, raw, *half_close);
            let status = status_of(&response);
            assert!(
                status.is_some_and(|c| (400..500).contains(&c) || c == 505),
                "{what} on port {}: {response:?}",
                service.port
            );
            assert_eq!(
                response.matches("HTTP/1.1 ").count(),
                1,
                "{what}: the connection served more after the error: {response:?}"
            );
        }
        for (what, raw, half_close) in &broken_bodies {
            let response = raw_exchange(service.port, raw, *half_close);
            assert!(
                response.is_empty()
                    || status_of(&response).is_some_and(|c| (400..500).contains(&c)),
                "{what}: {response:?}"
            );
        }
        // Later requests on new connections are fine.
        let ok = raw_exchange(
            service.port,
            b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
            false,
        );
        assert_eq!(status_of(&ok), Some(200), "{ok:?}");
    }
    assert_eq!(observe(&s).await, before);
}
