//! Two catalogd replicas and two storaged replicas over one S3 bucket (moto), as real
//! processes: registers through either replica keep the register contract, a lagging
//! replica catches up within `index_refresh`, and `Cache-Control: no-cache` is never stale.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
use testkit::lake::{list_all, register_body};
use testkit::{free_port, sized, Api, Launch, Moto, Proc};

fn storaged(moto: &Moto, dir: &std::path::Path) -> Proc {
    Launch::storaged(
        &dir.join(format!("unused-{}", testkit::unique())),
        free_port(),
    )
    .envs(moto.storaged_env("lake"))
    .log_dir(dir)
    .spawn()
}

fn catalogd(storaged: &Proc, dir: &std::path::Path) -> Proc {
    Launch::catalogd(&storaged.url(), free_port())
        .env("CATALOGD_INDEX_REFRESH", "1s")
        .env("CATALOGD_STORAGED_TIMEOUT", "30s")
        .log_dir(dir)
        .spawn()
}

/// Every acknowledged register: (name, version, tag of its objects).
type Acked = Vec<(String, i64, String)>;

async fn client(replicas: [Api; 2], id: usize, rounds: usize, names: usize) -> Acked {
    let mut acked = Vec::new();
    for i in 0..rounds {
        let name = format!("team.d{}", (id * 7 + i) % names);
        let tag = format!("c{id}-r{i}");
        let body = register_body(&name, "sha256:fixed", 2, &tag);
        let api = &replicas[(id + i) % 2];
        let reply = api.register(&body).await.unwrap();
        match reply.code() {
            200 | 201 => {
                let version = reply.json()["manifest"]["version"]
                    .as_i64()
                    .expect("a version");
                acked.push((name, version, tag));
            }
            code => panic!(
                "register {name} through replica {}: {code} {:?}",
                (id + i) % 2,
                reply.json()
            ),
        }
    }
    acked
}

fn tag_of(manifest: &Value) -> String {
    let key = manifest["objects"][0]["key"].as_str().unwrap_or_default();
    let file = key.rsplit('/').next().unwrap_or_default();
    file.rsplit_once('-')
        .map(|(t, _)| t.to_owned())
        .unwrap_or_default()
}

#[actix_web::test]
async fn registers_through_two_replicas_keep_the_contract() {
    let moto = Moto::start();
    moto.create_bucket("lake");
    let dir = tempfile::tempdir().unwrap();
    let stores = [storaged(&moto, dir.path()), storaged(&moto, dir.path())];
    for s in &stores {
        s.wait_ready().await;
    }
    let cats = [
        catalogd(&stores[0], dir.path()),
        catalogd(&stores[1], dir.path()),
    ];
    for c in &cats {
        c.wait_ready().await;
    }
    let replicas = [cats[0].api(), cats[1].api()];

    // A write through one replica: the other serves it on a no-cache read at once, and
    // from its index within index_refresh.
    let first = replicas[0]
        .register(&register_body("team.first", "sha256:fixed", 1, "one"))
        .await
        .unwrap();
    assert_eq!(first.code(), 201);
    let fresh = replicas[1]
        .send(
            replicas[1]
                .request(actix_web::http::Method::GET, "/v1/datasets/team.first")
                .insert_header(("cache-control", "no-cache")),
            None,
        )
        .await
        .unwrap();
    assert_eq!(fresh.code(), 200, "a no-cache read goes to the store");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let lagging = loop {
        let plain = replicas[1].get("/v1/datasets/team.first").await.unwrap();
        if plain.code() == 200 || std::time::Instant::now() > deadline {
            break plain;
        }
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(lagging.code(), 200, "caught up within index_refresh");

    // Concurrent registers over shared names through both replicas.
    let (clients, rounds, names) = (8, sized(30, 500), sized(10, 50));
    let runs = (0..clients).map(|id| client(replicas.clone(), id, rounds, names));
    let acked: Acked = futures_util::future::join_all(runs)
        .await
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(acked.len(), clients * rounds);

    let mut by_name: BTreeMap<String, Vec<(i64, String)>> = BTreeMap::new();
    for (name, version, tag) in acked {
        by_name.entry(name).or_default().push((version, tag));
    }
    for (name, mut writes) in by_name.clone() {
        writes.sort();
        let versions: Vec<i64> = writes.iter().map(|(v, _)| *v).collect();
        let expected: Vec<i64> = (1..=i64::try_from(writes.len()).unwrap()).collect();
        assert_eq!(
            versions, expected,
            "{name}: acknowledged versions are 1..n, no gap or repeat"
        );
        let (last_version, last_tag) = writes.last().unwrap();
        for api in &replicas {
            let head = api
                .send(
                    api.request(
                        actix_web::http::Method::GET,
                        &format!("/v1/datasets/{name}"),
                    )
                    .insert_header(("cache-control", "no-cache")),
                    None,
                )
                .await
                .unwrap()
                .json();
            assert_eq!(head["version"].as_i64(), Some(*last_version), "{name}");
            assert_eq!(
                &tag_of(&head),
                last_tag,
                "{name}: the last acknowledged write wins"
            );
        }
    }

    // Both replicas converge, and a fresh catalogd rebuilds the identical index.
    actix_web::rt::time::sleep(Duration::from_millis(2500)).await;
    let one = list_all(&replicas[0]).await;
    assert_eq!(one.len(), by_name.len() + 1);
    assert_eq!(list_all(&replicas[1]).await, one, "the replicas converged");
    let fresh = catalogd(&stores[1], dir.path());
    fresh.wait_ready().await;
    assert_eq!(
        list_all(&fresh.api()).await,
        one,
        "a fresh catalogd rebuilds the same index"
    );
}
