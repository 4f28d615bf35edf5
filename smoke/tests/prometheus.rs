//! Prometheus for real: Debian's `prometheus` scrapes both services on loopback; its HTTP
//! API shows both targets up and catalogd's dataset count equal to what was registered.
//! `promtool check metrics` accepts both `/metrics` outputs.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use testkit::{free_port, Launch, Proc};

fn tool(name: &str) -> PathBuf {
    let var = format!("{}_BIN", name.to_uppercase());
    if let Some(path) = std::env::var_os(&var) {
        return PathBuf::from(path);
    }
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let candidate = Path::new(dir).join(name);
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "{name} not found on PATH (or in ${var}); this test needs Debian's prometheus package \
         (apt-get install prometheus), which .ci/run installs"
    );
}

async fn get(client: &awc::Client, url: &str) -> Result<(u16, Vec<u8>), String> {
    let mut res = client.get(url).send().await.map_err(|e| e.to_string())?;
    let body = res
        .body()
        .limit(16 << 20)
        .await
        .map_err(|e| e.to_string())?;
    Ok((res.status().as_u16(), body.to_vec()))
}

async fn wait_for<T>(
    what: &str,
    timeout: Duration,
    mut probe: impl AsyncFnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match probe().await {
            Ok(v) => return v,
            Err(e) if Instant::now() > deadline => panic!("{what}: gave up after {timeout:?}: {e}"),
            Err(_) => actix_web::rt::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

fn promtool_check(promtool: &Path, service: &str, metrics: &[u8]) {
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(metrics).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics rejects {service}'s /metrics:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An instant query: `(job, value)` of every series in the result.
async fn query(client: &awc::Client, api: &str, q: &str) -> Result<Vec<(String, String)>, String> {
    let (_, body) = get(client, &format!("{api}/query?query={q}")).await?;
    let reply: Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
    Ok(reply["data"]["result"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            (
                r["metric"]["job"].as_str().unwrap_or_default().to_owned(),
                r["value"][1].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect())
}

#[actix_web::test]
async fn prometheus_scrapes_both_services_and_counts_the_datasets() {
    let prometheus = tool("prometheus");
    let promtool = tool("promtool");
    let dir = tempfile::tempdir().unwrap();
    let pp = free_port();
    let storaged = Launch::storaged(&dir.path().join("data"), free_port())
        .log_dir(dir.path())
        .spawn();
    let catalogd = Launch::catalogd(&storaged.url(), free_port())
        .log_dir(dir.path())
        .spawn();
    let (sp, cp) = (storaged.port, catalogd.port);
    let (storaged_url, catalogd_url) = (storaged.url(), catalogd.url());
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(10))
        .finish();
    storaged.wait_ready().await;
    catalogd.wait_ready().await;

    // Three datasets; the second register of `metrics.a` updates it and adds none.
    for name in ["metrics.a", "metrics.b", "metrics.c", "metrics.a"] {
        let body = json!({"name": name, "schema_fingerprint": "sha256:m", "objects": [{"key": format!("lake/{name}/0.parquet"), "size": 1}]});
        let res = client
            .post(format!("{catalogd_url}/v1/datasets"))
            .send_json(&body)
            .await
            .unwrap();
        assert!(
            res.status().is_success(),
            "register {name}: {}",
            res.status()
        );
    }

    for (service, base) in [("storaged", &storaged_url), ("catalogd", &catalogd_url)] {
        let (status, metrics) = get(&client, &format!("{base}/metrics")).await.unwrap();
        assert_eq!(status, 200);
        promtool_check(&promtool, service, &metrics);
    }

    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: storaged\n    static_configs:\n      - targets: ['127.0.0.1:{sp}']\n  - job_name: catalogd\n    static_configs:\n      - targets: ['127.0.0.1:{cp}']\n"
        ),
    )
    .unwrap();
    let mut command = Command::new(&prometheus);
    command
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("tsdb").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{pp}"));
    let prom = Proc::spawn(command, pp, dir.path().join("prometheus.log"));
    let api = format!("http://127.0.0.1:{pp}/api/v1");

    let health = wait_for("both targets up", Duration::from_secs(90), async || {
        let (status, body) = get(&client, &format!("{api}/targets")).await?;
        if status != 200 {
            return Err(format!(
                "/targets answered {status}; log:\n{}",
                prom.log_text()
            ));
        }
        let targets: Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
        let health: Vec<(String, String)> = targets["data"]["activeTargets"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|t| {
                (
                    t["labels"]["job"].as_str().unwrap_or_default().to_owned(),
                    t["health"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        if health.len() == 2 && health.iter().all(|(_, h)| h == "up") {
            Ok(health)
        } else {
            Err(format!("targets: {health:?}"))
        }
    })
    .await;
    assert_eq!(health.len(), 2);

    let mut up = wait_for(
        "up == 1 for both jobs",
        Duration::from_secs(30),
        async || {
            let result = query(&client, &api, "up").await?;
            if result.len() == 2 && result.iter().all(|(_, v)| v == "1") {
                Ok(result)
            } else {
                Err(format!("up: {result:?}"))
            }
        },
    )
    .await;
    up.sort();
    assert_eq!(
        up,
        [
            ("catalogd".into(), "1".into()),
            ("storaged".into(), "1".into())
        ]
    );

    let datasets = wait_for(
        "catalogd_datasets == 3",
        Duration::from_secs(30),
        async || {
            let result = query(&client, &api, "catalogd_datasets").await?;
            match result.as_slice() {
                [(job, value)] if job == "catalogd" && value == "3" => Ok(value.clone()),
                other => Err(format!("catalogd_datasets: {other:?}")),
            }
        },
    )
    .await;
    assert_eq!(datasets, "3");
}
