//! Runs the harness against the workspace's own binaries (spawn mode), and shows that it
//! fails, naming the step, when there is nothing to test.

use std::process::Command;

use testkit::{catalogd_bin, free_port, storaged_bin, Moto};

#[test]
fn six_steps_pass_against_the_real_binaries() {
    six_steps_pass(&[]);
}

/// The same flow with storaged on an S3 store (moto): catalogd's restart rebuilds its
/// index from manifests in the bucket.
#[test]
fn six_steps_pass_with_storaged_on_s3() {
    let moto = Moto::start();
    moto.create_bucket("smoke");
    six_steps_pass(&moto.storaged_env("smoke"));
    let listed = moto.list_xml("smoke", "_catalog/");
    assert!(
        listed.contains("<Key>_catalog/"),
        "the manifests are in the bucket: {listed}"
    );
}

fn six_steps_pass(env: &[(String, String)]) {
    let out = Command::new(env!("CARGO_BIN_EXE_smoke"))
        .env("SMOKE_STORAGED_BIN", storaged_bin())
        .env("SMOKE_CATALOGD_BIN", catalogd_bin())
        .envs(env.iter().map(|(k, v)| (k, v)))
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
    let port = free_port();
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
