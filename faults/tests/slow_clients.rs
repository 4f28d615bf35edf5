//! Slow clients (slowloris heads, slow bodies, slow readers of a 64 MiB object) against
//! the real binaries while a well-behaved client's small GETs keep a p99 under 200 ms.
//! The attackers are a Python raw-socket script (`scripts/slow_clients.py`).

use std::process::Command;

use testkit::storaged_and_catalogd;

#[actix_web::test]
async fn slow_clients_do_not_starve_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let (storaged, catalogd) = storaged_and_catalogd(&dir.path().join("data"), dir.path()).await;
    let seconds = if faults::chaos() { "60" } else { "8" };
    let out = Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scripts/slow_clients.py"
        ))
        .args(["--storaged", &storaged.port.to_string()])
        .args(["--catalogd", &catalogd.port.to_string()])
        .args(["--storaged-pid", &storaged.pid().to_string()])
        .args(["--seconds", seconds])
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("slow clients: {stdout}");
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Both services still answer afterwards.
    for p in [&storaged, &catalogd] {
        assert_eq!(p.api().get_ok("/healthz").await.code(), 200);
    }
}
