//! Acceptance harness: the six-step flow of the product against real processes.
//!
//! By default it starts the workspace's own `storaged` and `catalogd` binaries (found next
//! to this one, or given by `--storaged-bin`/`--catalogd-bin` or `SMOKE_STORAGED_BIN`/
//! `SMOKE_CATALOGD_BIN`) on free ports with a temporary data directory, and kills them on
//! exit, failure or Ctrl-C. With `--storaged-url`, `--catalogd-url` and `--restart-cmd` it
//! drives a stack that is already up (docker compose). Prints one line per step and
//! `N passed, M failed`; exits 1 on any failure.

use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::{json, Value};

/// The dataset-id namespace of design §1, written out here on purpose: the harness checks
/// the id independently of the code under test.
const NAMESPACE: uuid::Uuid = uuid::uuid!("a8f3c1d2-4e5b-5a6c-9d8e-7f0a1b2c3d4e");

#[derive(Debug, Parser)]
#[command(
    version,
    about = "Six-step acceptance flow against storaged and catalogd"
)]
struct Args {
    /// storaged binary (spawn mode).
    #[arg(long, env = "SMOKE_STORAGED_BIN")]
    storaged_bin: Option<PathBuf>,
    /// catalogd binary (spawn mode).
    #[arg(long, env = "SMOKE_CATALOGD_BIN")]
    catalogd_bin: Option<PathBuf>,
    /// URL of a running storaged (URL mode).
    #[arg(long, requires_all = ["catalogd_url", "restart_cmd"])]
    storaged_url: Option<String>,
    /// URL of a running catalogd (URL mode).
    #[arg(long, requires_all = ["storaged_url", "restart_cmd"])]
    catalogd_url: Option<String>,
    /// Shell command that restarts catalogd (URL mode), e.g. `docker compose restart catalogd`.
    #[arg(long, requires_all = ["storaged_url", "catalogd_url"])]
    restart_cmd: Option<String>,
    /// How long to wait for a service to become ready.
    #[arg(long, default_value_t = 60)]
    ready_timeout_secs: u64,
}

/// Child processes to kill however the harness ends.
#[derive(Clone, Default)]
struct Children(Arc<Mutex<Vec<Child>>>);

impl Children {
    fn add(&self, child: Child) -> u32 {
        let pid = child.id();
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(child);
        pid
    }

    fn stop(&self, pid: u32) {
        let mut children = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(i) = children.iter().position(|c| c.id() == pid) {
            let mut child = children.remove(i);
            let _ = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline {
                if matches!(child.try_wait(), Ok(Some(_))) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn kill_all(&self) {
        for mut child in self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain(..)
        {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        if Arc::strong_count(&self.0) == 1 {
            self.kill_all();
        }
    }
}

/// How the harness reaches and restarts the services.
enum Stack {
    Spawned {
        children: Children,
        catalogd_bin: PathBuf,
        catalogd_pid: u32,
        catalogd_port: u16,
        storaged_url: String,
        dir: tempfile::TempDir,
    },
    External {
        restart_cmd: String,
    },
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn sibling(name: &str) -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join(name)))
        .unwrap_or_else(|| PathBuf::from(name))
}

fn spawn_catalogd(
    bin: &PathBuf,
    port: u16,
    storaged_url: &str,
    dir: &std::path::Path,
) -> Result<Child, String> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("catalogd.log"))
        .map_err(|e| e.to_string())?;
    Command::new(bin)
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--storaged-url",
            storaged_url,
        ])
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))
}

impl Stack {
    fn spawn(args: &Args, children: &Children) -> Result<(Self, String, String), String> {
        let storaged_bin = args
            .storaged_bin
            .clone()
            .unwrap_or_else(|| sibling("storaged"));
        let catalogd_bin = args
            .catalogd_bin
            .clone()
            .unwrap_or_else(|| sibling("catalogd"));
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let storaged_port = free_port().map_err(|e| e.to_string())?;
        let catalogd_port = free_port().map_err(|e| e.to_string())?;
        let log =
            std::fs::File::create(dir.path().join("storaged.log")).map_err(|e| e.to_string())?;
        let storaged = Command::new(&storaged_bin)
            .args([
                "--listen",
                &format!("127.0.0.1:{storaged_port}"),
                "--data-dir",
                &dir.path().join("data").display().to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", storaged_bin.display()))?;
        children.add(storaged);
        let storaged_url = format!("http://127.0.0.1:{storaged_port}");
        let catalogd = spawn_catalogd(&catalogd_bin, catalogd_port, &storaged_url, dir.path())?;
        let catalogd_pid = children.add(catalogd);
        let catalogd_url = format!("http://127.0.0.1:{catalogd_port}");
        Ok((
            Self::Spawned {
                children: children.clone(),
                catalogd_bin,
                catalogd_pid,
                catalogd_port,
                storaged_url: storaged_url.clone(),
                dir,
            },
            storaged_url,
            catalogd_url,
        ))
    }

    fn restart_catalogd(&mut self) -> Result<(), String> {
        match self {
            Self::Spawned {
                children,
                catalogd_bin,
                catalogd_pid,
                catalogd_port,
                storaged_url,
                dir,
            } => {
                children.stop(*catalogd_pid);
                let child = spawn_catalogd(catalogd_bin, *catalogd_port, storaged_url, dir.path())?;
                *catalogd_pid = children.add(child);
                Ok(())
            }
            Self::External { restart_cmd } => {
                let status = Command::new("sh")
                    .args(["-c", restart_cmd.as_str()])
                    .status()
                    .map_err(|e| format!("cannot run {restart_cmd:?}: {e}"))?;
                if status.success() {
                    Ok(())
                } else {
                    Err(format!("{restart_cmd:?} exited with {status}"))
                }
            }
        }
    }
}

struct Http {
    client: awc::Client,
}

struct Reply {
    status: u16,
    json: Value,
}

impl Http {
    async fn send(&self, req: awc::ClientRequest, body: Option<&Value>) -> Result<Reply, String> {
        let sent = match body {
            Some(b) => req.send_json(b).await,
            None => req.send().await,
        };
        let mut res = sent.map_err(|e| format!("request failed: {e}"))?;
        let bytes = res
            .body()
            .limit(64 << 20)
            .await
            .map_err(|e| e.to_string())?;
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok(Reply {
            status: res.status().as_u16(),
            json,
        })
    }

    async fn get(&self, url: &str) -> Result<Reply, String> {
        self.send(self.client.get(url), None).await
    }

    async fn post(&self, url: &str, body: &Value) -> Result<Reply, String> {
        self.send(self.client.post(url), Some(body)).await
    }

    async fn wait_ready(&self, base: &str, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        let mut last = String::from("no answer");
        while Instant::now() < deadline {
            match self.get(&format!("{base}/readyz")).await {
                Ok(r) if r.status == 200 => return Ok(()),
                Ok(r) => last = format!("/readyz answered {}", r.status),
                Err(e) => last = e,
            }
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        }
        Err(format!("{base} not ready after {timeout:?}: {last}"))
    }
}

fn expect(cond: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    if cond {
        Ok(())
    } else {
        Err(what())
    }
}

fn check_eq(field: &str, got: &Value, want: &Value) -> Result<(), String> {
    expect(got == want, || {
        format!("{field}: expected {want}, got {got}")
    })
}

#[allow(
    clippy::too_many_lines,
    reason = "the six steps read top to bottom, as the acceptance flow is specified"
)]
async fn run(args: Args, children: Children) -> ExitCode {
    let (mut stack, storaged, catalogd) =
        match (&args.storaged_url, &args.catalogd_url, &args.restart_cmd) {
            (Some(s), Some(c), Some(r)) => (
                Stack::External {
                    restart_cmd: r.clone(),
                },
                s.trim_end_matches('/').to_owned(),
                c.trim_end_matches('/').to_owned(),
            ),
            _ => match Stack::spawn(&args, &children) {
                Ok(spawned) => spawned,
                Err(e) => {
                    println!("FAIL  setup: {e}");
                    println!("0 passed, 6 failed");
                    return ExitCode::FAILURE;
                }
            },
        };
    let http = Http {
        client: awc::Client::builder()
            .timeout(Duration::from_secs(30))
            .finish(),
    };
    let ready_timeout = Duration::from_secs(args.ready_timeout_secs);
    // A name of its own per run, so URL mode can run again against the same stack.
    let name = format!(
        "smoke.run_{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros())
    );
    let expected_id = uuid::Uuid::new_v5(&NAMESPACE, name.as_bytes()).to_string();
    let register = |objects: Value, fingerprint: &str| json!({"name": name, "schema_fingerprint": fingerprint, "objects": objects, "row_count": 100});
    let dataset_url = format!("{catalogd}/v1/datasets/{name}");

    let mut passed = 0;
    let mut failed = 0;
    let mut report = |n: usize, title: &str, started: Instant, result: Result<(), String>| {
        let ms = started.elapsed().as_millis();
        match result {
            Ok(()) => {
                passed += 1;
                println!("PASS  {n} {title} ({ms} ms)");
            }
            Err(e) => {
                failed += 1;
                println!("FAIL  {n} {title} ({ms} ms): {e}");
            }
        }
    };

    let t = Instant::now();
    let step1 = async {
        http.wait_ready(&storaged, ready_timeout).await?;
        let health = http.get(&format!("{storaged}/healthz")).await?;
        expect(health.status == 200, || {
            format!("/healthz: expected 200, got {}", health.status)
        })
    }
    .await;
    report(1, "storaged is healthy and ready", t, step1);

    let t = Instant::now();
    let step2 = http.wait_ready(&catalogd, ready_timeout).await;
    report(2, "catalogd is ready", t, step2);

    let t = Instant::now();
    let mut first = Value::Null;
    let step3 = async {
        let objects = json!([{"key": format!("lake/{name}/part-0.parquet"), "size": 1024}]);
        let r = http
            .post(
                &format!("{catalogd}/v1/datasets"),
                &register(objects, "sha256:one"),
            )
            .await?;
        expect(r.status == 201, || {
            format!("expected 201, got {} {}", r.status, r.json)
        })?;
        check_eq("existing", &r.json["existing"], &json!(false))?;
        check_eq(
            "dataset_id",
            &r.json["manifest"]["dataset_id"],
            &json!(expected_id),
        )?;
        check_eq("version", &r.json["manifest"]["version"], &json!(1))?;
        first = r.json["manifest"].clone();
        Ok(())
    }
    .await;
    report(
        3,
        "register a new dataset → 201, id = UUIDv5(name), version 1",
        t,
        step3,
    );

    let t = Instant::now();
    let mut second = Value::Null;
    let step4 = async {
        // Make sure the clock can move between the two registers.
        actix_web::rt::time::sleep(Duration::from_millis(2)).await;
        let objects = json!([
            {"key": format!("lake/{name}/part-1.parquet"), "size": 2048},
            {"key": format!("lake/{name}/part-2.parquet"), "size": 4096}
        ]);
        let r = http
            .post(
                &format!("{catalogd}/v1/datasets"),
                &register(objects.clone(), "sha256:one"),
            )
            .await?;
        expect(r.status == 200, || {
            format!("expected 200, got {} {}", r.status, r.json)
        })?;
        let m = &r.json["manifest"];
        check_eq("existing", &r.json["existing"], &json!(true))?;
        check_eq("dataset_id", &m["dataset_id"], &json!(expected_id))?;
        check_eq("version", &m["version"], &json!(2))?;
        check_eq("objects", &m["objects"], &objects)?;
        check_eq("created_at", &m["created_at"], &first["created_at"])?;
        expect(
            m["updated_at"].as_str() > first["updated_at"].as_str(),
            || {
                format!(
                    "updated_at did not advance: {} then {}",
                    first["updated_at"], m["updated_at"]
                )
            },
        )?;
        second = m.clone();
        Ok(())
    }
    .await;
    report(
        4,
        "re-register, same fingerprint → 200, version 2, objects replaced",
        t,
        step4,
    );

    let t = Instant::now();
    let step5 = async {
        let r = http
            .post(
                &format!("{catalogd}/v1/datasets"),
                &register(json!([]), "sha256:two"),
            )
            .await?;
        expect(r.status == 409, || {
            format!("expected 409, got {} {}", r.status, r.json)
        })?;
        check_eq("error", &r.json["error"], &json!("fingerprint_conflict"))?;
        let g = http.get(&dataset_url).await?;
        expect(g.status == 200, || {
            format!("GET: expected 200, got {}", g.status)
        })?;
        check_eq("manifest after the conflict", &g.json, &second)
    }
    .await;
    report(5, "another fingerprint → 409, manifest unchanged", t, step5);

    let t = Instant::now();
    let step6 = async {
        stack.restart_catalogd()?;
        http.wait_ready(&catalogd, ready_timeout).await?;
        let g = http.get(&dataset_url).await?;
        expect(g.status == 200, || {
            format!("GET: expected 200, got {}", g.status)
        })?;
        check_eq("manifest after the restart", &g.json, &second)?;
        let l = http
            .get(&format!("{catalogd}/v1/datasets?prefix={name}"))
            .await?;
        check_eq("list", &l.json["datasets"], &json!([second]))
    }
    .await;
    report(
        6,
        "restart catalogd → ready, manifest identical, listed",
        t,
        step6,
    );

    println!("{passed} passed, {failed} failed");
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let children = Children::default();
    let on_signal = children.clone();
    let code = actix_web::rt::System::new().block_on(async move {
        tokio::select! {
            code = run(args, children) => code,
            _ = tokio::signal::ctrl_c() => {
                println!("interrupted");
                ExitCode::from(130)
            }
        }
    });
    on_signal.kill_all();
    code
}
