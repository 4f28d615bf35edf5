//! schemathesis (property-based API testing from the OpenAPI documents, with the
//! documents' links for stateful sequences such as register → get → delete) against both
//! real binaries, every check on: no 5xx, responses conform to the documents, schema-valid
//! requests accepted, schema-violating ones rejected.
//!
//! Settings and the few statuses the schema cannot predict: `faults/schemathesis.toml`.
//! `make test` runs a fixed seed; `make chaos` a random one with ten times the examples.

use std::path::PathBuf;
use std::process::Command;

use testkit::storaged_and_catalogd;

fn schemathesis() -> PathBuf {
    let bin = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../.venv/bin/schemathesis"
    ));
    assert!(
        bin.try_exists().unwrap_or(false),
        "{} is missing: run `make venv` (make test does)",
        bin.display()
    );
    bin
}

fn run(port: u16, extra: &[&str]) -> (bool, String) {
    let dir = env!("CARGO_MANIFEST_DIR");
    let mut command = Command::new(schemathesis());
    command
        .current_dir(dir)
        .env("PYTHONPATH", dir)
        .args(["--config-file", &format!("{dir}/schemathesis.toml"), "run"])
        .arg(format!("http://127.0.0.1:{port}/openapi.json"))
        .args(["--checks", "all", "--workers", "1", "--no-color"])
        .args([
            "--max-examples",
            if faults::chaos() { "1000" } else { "100" },
        ])
        .args(extra);
    if !faults::chaos() {
        command.args(["--seed", "20261125"]);
    }
    let out = command.output().expect("schemathesis runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The run's summary line, e.g. "934 generated, 934 passed".
fn summary(text: &str) -> &str {
    text.lines()
        .rev()
        .find(|l| l.contains(" generated"))
        .map_or("", str::trim)
}

#[actix_web::test]
async fn schemathesis_finds_nothing_in_either_service() {
    let dir = tempfile::tempdir().unwrap();
    let (storaged, catalogd) = storaged_and_catalogd(&dir.path().join("data"), dir.path()).await;

    let (ok, text) = run(storaged.port, &[]);
    assert!(ok, "storaged:\n{text}");
    println!("schemathesis storaged: {}", summary(&text));
    // The stateful phase registers, deletes by name, then follows the register's by-id
    // link and calls the 404 a lost resource: it cannot relate the two paths.
    let (ok, text) = run(
        catalogd.port,
        &["--exclude-checks", "ensure_resource_availability"],
    );
    assert!(ok, "catalogd:\n{text}");
    println!("schemathesis catalogd: {}", summary(&text));
    for p in [&storaged, &catalogd] {
        assert!(
            !p.log_text().contains("panicked"),
            "a service panicked:\n{}",
            p.log_text()
        );
    }
}
