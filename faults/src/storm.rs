//! The kill -9 storm: clients register while storaged or catalogd is killed with SIGKILL
//! and restarted; afterwards nothing acknowledged is lost and nothing is torn.

use std::time::Duration;

use manifest_codec::layout::MANIFEST_PREFIX;
use testkit::lake::manifest_key_of;
use testkit::{free_port, Api, Launch, Proc};

/// A pseudo-random number below `n` (the clock's nanoseconds: enough to vary kill moments).
pub fn jitter(n: u64) -> u64 {
    u64::from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos(),
    ) % n
}

/// Which process the storm kills.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Victim {
    /// storaged.
    Storaged,
    /// catalogd.
    Catalogd,
}

/// 8 clients register continuously while `victim` is killed with SIGKILL at random moments
/// and restarted, `kills` times. Afterwards a fresh catalogd, rebuilt from storaged, holds
/// every acknowledged register at least at its acknowledged version, exactly one manifest
/// object per name, and every manifest object decodes. storaged runs with `storaged_env`
/// added to its environment (for example its S3 backend's).
pub async fn kill_storm(victim: Victim, kills: usize, storaged_env: &[(String, String)]) {
    let dir = tempfile::tempdir().unwrap();
    let mut storaged = Launch::storaged(&dir.path().join("data"), free_port())
        .envs(storaged_env.iter().cloned())
        .log_dir(dir.path())
        .spawn();
    storaged.wait_ready().await;
    let catalogd_port = free_port();
    let mut catalogd = Launch::catalogd(&storaged.url(), catalogd_port)
        .env("CATALOGD_STORAGED_TIMEOUT", "2s")
        .log_dir(dir.path())
        .spawn();
    catalogd.wait_ready().await;

    let stop = std::rc::Rc::new(std::cell::Cell::new(false));
    // Per name: the highest acknowledged version and its object list.
    let acked = std::rc::Rc::new(std::cell::RefCell::new(std::collections::BTreeMap::<
        String,
        (i64, serde_json::Value),
    >::new()));
    let attempts = std::rc::Rc::new(std::cell::Cell::new(0_u64));
    let acks = std::rc::Rc::new(std::cell::Cell::new(0_u64));
    let clients: Vec<_> = (0..8)
        .map(|c| {
            let (stop, acked, attempts, acks) =
                (stop.clone(), acked.clone(), attempts.clone(), acks.clone());
            async move {
                let api = Api::new(catalogd_port);
                let mut seq = 0_u64;
                while !stop.get() {
                    seq += 1;
                    attempts.set(attempts.get() + 1);
                    let name = format!("storm.c{c}.n{}", seq % 3);
                    let objects = serde_json::json!([{"key": format!("lake/{name}/s{seq}"), "size": seq}]);
                    let request = serde_json::json!({"name": name, "schema_fingerprint": "fp", "objects": objects});
                    match api
                        .send(
                            api.request(awc::http::Method::POST, "/v1/datasets")
                                .insert_header(("content-type", "application/json")),
                            Some(serde_json::to_vec(&request).unwrap().into()),
                        )
                        .await
                    {
                        Ok(reply) if reply.status.is_success() => {
                            let m = reply.json()["manifest"].clone();
                            let version = m["version"].as_i64().unwrap();
                            acks.set(acks.get() + 1);
                            let mut acked = acked.borrow_mut();
                            let entry = acked.entry(name).or_insert((0, serde_json::Value::Null));
                            assert!(version > entry.0, "an acknowledged version went backwards");
                            *entry = (version, m["objects"].clone());
                        }
                        // 503s and broken connections while a process is down.
                        _ => actix_web::rt::time::sleep(Duration::from_millis(5)).await,
                    }
                }
            }
        })
        .collect();
    let killer = async {
        for _ in 0..kills {
            actix_web::rt::time::sleep(Duration::from_millis(150 + jitter(350))).await;
            match victim {
                Victim::Storaged => {
                    storaged.restart();
                    storaged.wait_ready().await;
                }
                Victim::Catalogd => {
                    catalogd.restart();
                    catalogd.wait_ready().await;
                }
            }
        }
        actix_web::rt::time::sleep(Duration::from_millis(300)).await;
        stop.set(true);
    };
    futures_util::future::join(killer, futures_util::future::join_all(clients)).await;
    drop(catalogd);

    let acked = acked.borrow().clone();
    assert!(
        acked.len() >= 12,
        "too little was acknowledged to prove anything: {acked:?}"
    );
    check_nothing_lost(&dir, &storaged, &acked).await;
    let setting = storaged_env
        .iter()
        .map(|(k, v)| format!(" {k}={v}"))
        .filter(|s| !s.contains("SECRET"))
        .collect::<String>();
    println!(
        "kill -9 {victim:?}{setting} x{kills}: {} register attempts, {} acknowledged over {} names (highest version {:?}), 0 lost, 0 torn",
        attempts.get(),
        acks.get(),
        acked.len(),
        acked.values().map(|(v, _)| *v).max()
    );
}

/// A fresh catalogd rebuilt from storaged holds every acknowledged register at least at
/// its acknowledged version (with its objects when the version is the same); storaged
/// holds exactly one manifest object per name, and each decodes.
async fn check_nothing_lost(
    dir: &tempfile::TempDir,
    storaged: &Proc,
    acked: &std::collections::BTreeMap<String, (i64, serde_json::Value)>,
) {
    let fresh = Launch::catalogd(&storaged.url(), free_port())
        .log_dir(dir.path())
        .spawn();
    fresh.wait_ready().await;
    let api = fresh.api();
    for (name, (version, objects)) in acked {
        let got = api.get_ok(&format!("/v1/datasets/{name}")).await;
        assert_eq!(
            got.status.as_u16(),
            200,
            "{name} was acknowledged and is lost"
        );
        let got = got.json();
        let stored = got["version"].as_i64().unwrap();
        assert!(
            stored >= *version,
            "{name}: acknowledged v{version}, stored v{stored}"
        );
        if stored == *version {
            assert_eq!(
                &got["objects"], objects,
                "{name}: acknowledged v{version} differs"
            );
        }
    }
    let listing = storaged
        .api()
        .get_ok(&format!("/v1/objects?prefix={MANIFEST_PREFIX}&limit=10000"))
        .await
        .json();
    let keys: Vec<&str> = listing["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["key"].as_str().unwrap())
        .collect();
    for name in acked.keys() {
        let key = manifest_key_of(name);
        assert_eq!(keys.iter().filter(|k| **k == key).count(), 1, "{key}");
        let bytes = storaged
            .api()
            .get_ok(&format!("/v1/objects/{key}"))
            .await
            .body;
        manifest_codec::decode(&bytes).unwrap_or_else(|e| panic!("{key} is torn: {e}"));
    }
}
