//! Acceptance harness: the six-step flow of the product against real processes.
//!
//! By default it starts the workspace's own `storaged` and `catalogd` binaries (found next
//! to this one, or given by `--storaged-bin`/`--catalogd-bin` or `SMOKE_STORAGED_BIN`/
//! `SMOKE_CATALOGD_BIN`) on free ports with a temporary data directory, and kills them on
//! exit, failure or Ctrl-C. With `--storaged-url`, `--catalogd-url` and `--restart-cmd` it
//! drives a stack that is already up (docker compose). Prints one line per step and
//! `N passed, M failed`; exits 1 on any failure.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::{json, Value};
use testkit::{free_port, Api, Launch, Proc};

/// The dataset-id namespace (docs/contracts.md, "Dataset identity"), written out here on purpose: the harness checks
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
    /// PEM certificates of the CA to trust for `https://` URLs (URL mode).
    #[arg(long)]
    ca_file: Option<PathBuf>,
}

/// How the harness reaches and restarts the services.
enum Stack {
    /// The harness started them (killed when the stack is dropped, however the run ends).
    Spawned {
        _storaged: Box<Proc>,
        catalogd: Box<Proc>,
        _dir: tempfile::TempDir,
    },
    /// They are already running (docker compose); `restart_cmd` restarts catalogd.
    External { restart_cmd: String },
}

impl Stack {
    fn spawn(args: &Args) -> Result<(Self, String, String), String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let mut storaged = Launch::storaged(&dir.path().join("data"), free_port());
        if let Some(bin) = &args.storaged_bin {
            storaged = storaged.program(bin);
        }
        let storaged = storaged.log_dir(dir.path()).spawn();
        let mut catalogd = Launch::catalogd(&storaged.url(), free_port());
        if let Some(bin) = &args.catalogd_bin {
            catalogd = catalogd.program(bin);
        }
        let catalogd = catalogd.log_dir(dir.path()).spawn();
        let (storaged_url, catalogd_url) = (storaged.url(), catalogd.url());
        let stack = Self::Spawned {
            _storaged: Box::new(storaged),
            catalogd: Box::new(catalogd),
            _dir: dir,
        };
        Ok((stack, storaged_url, catalogd_url))
    }

    fn restart_catalogd(&mut self) -> Result<(), String> {
        match self {
            Self::Spawned { catalogd, .. } => {
                catalogd.restart_gracefully(Duration::from_secs(15));
                Ok(())
            }
            Self::External { restart_cmd } => {
                let status = std::process::Command::new("sh")
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

async fn wait_ready(api: &Api, timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    let mut last = String::from("no answer");
    while Instant::now() < deadline {
        match api.get("/readyz").await {
            Ok(r) if r.code() == 200 => return Ok(()),
            Ok(r) => last = format!("/readyz answered {}", r.code()),
            Err(e) => last = e,
        }
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    Err(format!(
        "{} not ready after {timeout:?}: {last}",
        api.base()
    ))
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
async fn run(args: Args) -> ExitCode {
    let (mut stack, storaged, catalogd) =
        match (&args.storaged_url, &args.catalogd_url, &args.restart_cmd) {
            (Some(s), Some(c), Some(r)) => (
                Stack::External {
                    restart_cmd: r.clone(),
                },
                s.trim_end_matches('/').to_owned(),
                c.trim_end_matches('/').to_owned(),
            ),
            _ => match Stack::spawn(&args) {
                Ok(spawned) => spawned,
                Err(e) => {
                    println!("FAIL  setup: {e}");
                    println!("0 passed, 6 failed");
                    return ExitCode::FAILURE;
                }
            },
        };
    let api = |url: &str| match &args.ca_file {
        Some(ca) => Api::at_with_ca(url, ca),
        None => Api::at(url),
    };
    let (storaged, catalogd) = (api(&storaged), api(&catalogd));
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
    let dataset_path = format!("/v1/datasets/{name}");

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
        wait_ready(&storaged, ready_timeout).await?;
        let health = storaged.get("/healthz").await?;
        expect(health.code() == 200, || {
            format!("/healthz: expected 200, got {}", health.code())
        })
    }
    .await;
    report(1, "storaged is healthy and ready", t, step1);

    let t = Instant::now();
    let step2 = wait_ready(&catalogd, ready_timeout).await;
    report(2, "catalogd is ready", t, step2);

    let t = Instant::now();
    let mut first = Value::Null;
    let step3 = async {
        let objects = json!([{"key": format!("lake/{name}/part-0.parquet"), "size": 1024}]);
        let r = catalogd.register(&register(objects, "sha256:one")).await?;
        expect(r.code() == 201, || {
            format!("expected 201, got {} {}", r.code(), r.json())
        })?;
        check_eq("existing", &r.json()["existing"], &json!(false))?;
        check_eq(
            "dataset_id",
            &r.json()["manifest"]["dataset_id"],
            &json!(expected_id),
        )?;
        check_eq("version", &r.json()["manifest"]["version"], &json!(1))?;
        first = r.json()["manifest"].clone();
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
        let r = catalogd
            .register(&register(objects.clone(), "sha256:one"))
            .await?;
        expect(r.code() == 200, || {
            format!("expected 200, got {} {}", r.code(), r.json())
        })?;
        let m = &r.json()["manifest"];
        check_eq("existing", &r.json()["existing"], &json!(true))?;
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
        let r = catalogd
            .register(&register(json!([]), "sha256:two"))
            .await?;
        expect(r.code() == 409, || {
            format!("expected 409, got {} {}", r.code(), r.json())
        })?;
        check_eq("error", &r.json()["error"], &json!("fingerprint_conflict"))?;
        let g = catalogd.get(&dataset_path).await?;
        expect(g.code() == 200, || {
            format!("GET: expected 200, got {}", g.code())
        })?;
        check_eq("manifest after the conflict", &g.json(), &second)
    }
    .await;
    report(5, "another fingerprint → 409, manifest unchanged", t, step5);

    let t = Instant::now();
    let step6 = async {
        stack.restart_catalogd()?;
        wait_ready(&catalogd, ready_timeout).await?;
        let g = catalogd.get(&dataset_path).await?;
        expect(g.code() == 200, || {
            format!("GET: expected 200, got {}", g.code())
        })?;
        check_eq("manifest after the restart", &g.json(), &second)?;
        let l = catalogd.get(&format!("/v1/datasets?prefix={name}")).await?;
        check_eq("list", &l.json()["datasets"], &json!([second]))
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
    let code = actix_web::rt::System::new().block_on(async move {
        tokio::select! {
            code = run(args) => code,
            _ = tokio::signal::ctrl_c() => {
                println!("interrupted");
                ExitCode::from(130)
            }
        }
    });
    code
}
