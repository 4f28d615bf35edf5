//! What a crash sweep checks after a plain restart: every key holds one of the states it
//! may hold, and nothing else is listed.

use std::collections::BTreeMap;

use testkit::lake::objects;
use testkit::Api;

/// The states each key may hold after a crash: its acknowledged bytes, or also the
/// in-flight operation's outcome (`None`: absent).
pub type Allowed<'a> = BTreeMap<&'a str, Vec<Option<Vec<u8>>>>;

/// Reads every key of `allowed` through storaged's API and lists everything; returns the
/// first key that holds something it may not, or a listed key that was never written.
pub async fn holds_only(api: &Api, allowed: &Allowed<'_>) -> Result<(), String> {
    for (key, options) in allowed {
        let reply = api.get_ok(&format!("/v1/objects/{key}")).await;
        let got = match reply.code() {
            200 => Some(reply.body.to_vec()),
            404 => None,
            other => return Err(format!("{key}: GET answered {other}")),
        };
        if !options.contains(&got) {
            let describe = |b: &Option<Vec<u8>>| b.as_ref().map(|b| (b.len(), b.first().copied()));
            return Err(format!(
                "{key}: holds (length, first byte) {:?}, expected one of {:?}",
                describe(&got),
                options.iter().map(describe).collect::<Vec<_>>()
            ));
        }
    }
    for (key, _) in objects(api, "").await {
        if !allowed.contains_key(key.as_str()) {
            return Err(format!("{key} is listed but was never written"));
        }
    }
    Ok(())
}
