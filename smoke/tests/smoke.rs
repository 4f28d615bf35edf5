//! Runs the harness against the workspace's own binaries (spawn mode), and shows that it
//! fails, naming the step, when there is nothing to test.

use std::path::PathBuf;
use std::process::Command;

/// storaged and catalogd, built next to the harness (a test cannot use another
/// package's `CARGO_BIN_EXE_*`).
fn service_bins() -> (PathBuf, PathBuf) {
    let status = Command::new(option_env!("CARGO").unwrap_or("cargo"))
        .args([
            "build", "--quiet", "-p", "storaged", "-p", "catalogd", "--bins",
        ])
        .status()
        .expect("running cargo build");
    assert!(status.success(), "building the services failed");
    let smoke = PathBuf::from(env!("CARGO_BIN_EXE_smoke"));
    (
        smoke.with_file_name("storaged"),
        smoke.with_file_name("catalogd"),
    )
}

#[test]
fn six_steps_pass_against_the_real_binaries() {
    let (storaged, catalogd) = service_bins();
    let out = Command::new(env!("CARGO_BIN_EXE_smoke"))
        .env("SMOKE_STORAGED_BIN", &storaged)
        .env("SMOKE_CATALOGD_BIN", &catalogd)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("PASS  ")).count(),
        6,
        "{stdout}"
    );
    assert_eq!(stdout.lines().last(), Some("6 passed, 0 failed"));
}

#[test]
fn url_mode_against_nothing_fails_naming_the_steps() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let out = Command::new(env!("CARGO_BIN_EXE_smoke"))
        .args([
            "--storaged-url",
            &url,
            "--catalogd-url",
            &url,
            "--restart-cmd",
            "true",
            "--ready-timeout-secs",
            "1",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.lines().any(|l| l.starts_with("FAIL  1 storaged")),
        "{stdout}"
    );
    assert_eq!(
        stdout.lines().last(),
        Some("0 passed, 6 failed"),
        "{stdout}"
    );
}
