//! Catalog-level helpers over [`Api`]: register bodies, whole listings, what storaged holds
//! for a dataset.

use bytes::Bytes;
use manifest_codec::layout::{MANIFEST_PREFIX, MANIFEST_SUFFIX};
use serde_json::Value;

use crate::Api;

/// The key a manifest of `name` is stored under, for any text (hostile tests plant keys
/// whose "name" is not a valid dataset name).
pub fn manifest_key_of(name: &str) -> String {
    format!("{MANIFEST_PREFIX}{name}{MANIFEST_SUFFIX}")
}

/// A register request for `name` with `n` objects whose keys carry `tag`.
pub fn register_body(name: &str, fingerprint: &str, n: usize, tag: &str) -> Value {
    let objects: Vec<Value> = (0..n)
        .map(|i| serde_json::json!({"key": format!("lake/{name}/{tag}-{i}.parquet"), "size": 100 + i}))
        .collect();
    serde_json::json!({"name": name, "schema_fingerprint": fingerprint, "objects": objects, "row_count": n})
}

/// Every dataset a catalogd lists, walking all pages.
pub async fn list_all(catalogd: &Api) -> Vec<Value> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let path = match &token {
            Some(t) => format!("/v1/datasets?limit=1000&page_token={t}"),
            None => "/v1/datasets?limit=1000".to_owned(),
        };
        let reply = catalogd.get_ok(&path).await;
        assert_eq!(reply.code(), 200, "{path}: {:?}", reply.json());
        let json = reply.json();
        out.extend(json["datasets"].as_array().into_iter().flatten().cloned());
        match json["next_page_token"].as_str() {
            Some(t) => token = Some(t.to_owned()),
            None => return out,
        }
    }
}

/// Every object storaged lists under `prefix`, as (key, ETag), walking all pages.
pub async fn objects(storaged: &Api, prefix: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut path = format!("/v1/objects?limit=1000&prefix={prefix}");
        if let Some(t) = &token {
            path.push_str("&continuation_token=");
            path.push_str(t);
        }
        let json = storaged.get_ok(&path).await.json();
        for o in json["objects"].as_array().expect("a listing") {
            out.push((
                o["key"].as_str().unwrap_or_default().to_owned(),
                o["etag"].as_str().unwrap_or_default().to_owned(),
            ));
        }
        match json["next_continuation_token"].as_str() {
            Some(t) => token = Some(t.to_owned()),
            None => return out,
        }
    }
}

/// The keys of every manifest storaged holds.
pub async fn manifest_keys(storaged: &Api) -> Vec<String> {
    objects(storaged, MANIFEST_PREFIX)
        .await
        .into_iter()
        .map(|(key, _)| key)
        .collect()
}

/// The manifest of `name` as storaged holds it (bytes), if any.
pub async fn stored_manifest(storaged: &Api, name: &str) -> Option<Bytes> {
    let reply = storaged
        .get_ok(&format!("/v1/objects/{}", manifest_key_of(name)))
        .await;
    match reply.code() {
        200 => Some(reply.body),
        404 => None,
        other => panic!("storaged answered {other} for {name}'s manifest"),
    }
}

/// The version storaged holds for `name` (0 when it holds none).
pub async fn stored_version(storaged: &Api, name: &str) -> i64 {
    match stored_manifest(storaged, name).await {
        Some(bytes) => {
            manifest_codec::decode(&bytes)
                .unwrap_or_else(|e| panic!("{name}'s manifest is torn: {e}"))
                .version
        }
        None => 0,
    }
}

/// TCP connections in state ESTABLISHED whose remote end is `127.0.0.1:port` (the
/// connections clients hold to a server on that port).
pub fn established_to(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    let remote = format!("0100007F:{port:04X}");
    table
        .lines()
        .skip(1)
        .filter(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            cols.len() > 3 && cols[2] == remote && cols[3] == "01"
        })
        .count()
}
