//! schemathesis (property-based API testing from the OpenAPI documents, with the
//! documents' links for stateful sequences such as register → get → delete) against both
//! real binaries, every check on: no 5xx, responses conform to the documents, schema-valid
//! requests accepted, schema-violating ones rejected.
//!
//! Both services require scoped credentials, and schemathesis sends a scoped one (not
//! admin): storaged `write:*` + `metrics` (so keys under `_` are a documented 403),
//! catalogd `read`, `register`, `delete`, `metrics`; its `ignored_auth` check sends
//! requests without it.
//!
//! Settings and the few statuses the schema cannot predict: `faults/schemathesis.toml`.
//! `make test` runs a fixed seed; `make chaos` a random one with ten times the examples.

use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use service_kit::credentials::token_sha256_hex;
use testkit::{free_port, Launch};

const STORAGED_TOKEN: &str = "schemathesis-storaged-0123456789";
const CATALOGD_TOKEN: &str = "schemathesis-catalogd-0123456789";
const CATALOGD_TO_STORAGED: &str = "catalogd-to-storaged-0123456789";

fn credentials(path: &Path, entries: &[(&str, &str, &str)]) {
    let mut text = String::new();
    for (name, token, scopes) in entries {
        let _ = write!(
            text,
            "[[credential]]\nname = \"{name}\"\ntoken_sha256 = \"{}\"\nscopes = {scopes}\n\n",
            token_sha256_hex(token)
        );
    }
    std::fs::write(path, text).unwrap();
}

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
    let (s_file, c_file) = (dir.path().join("s.toml"), dir.path().join("c.toml"));
    credentials(
        &s_file,
        &[
            ("schemathesis", STORAGED_TOKEN, r#"["write:*", "metrics"]"#),
            (
                "catalogd",
                CATALOGD_TO_STORAGED,
                r#"["write:_catalog/", "read:*"]"#,
            ),
        ],
    );
    credentials(
        &c_file,
        &[(
            "schemathesis",
            CATALOGD_TOKEN,
            r#"["read", "register", "delete", "metrics"]"#,
        )],
    );
    let storaged = Launch::storaged(&dir.path().join("data"), free_port())
        .arg("--credentials-file")
        .arg(&s_file)
        .log_dir(dir.path())
        .spawn();
    storaged.wait_ready().await;
    let catalogd = Launch::catalogd(&storaged.url(), free_port())
        .arg("--credentials-file")
        .arg(&c_file)
        .env("CATALOGD_STORAGED_TOKEN", CATALOGD_TO_STORAGED)
        .log_dir(dir.path())
        .spawn();
    catalogd.wait_ready().await;

    let storaged_auth = format!("Authorization: Bearer {STORAGED_TOKEN}");
    let (ok, text) = run(storaged.port, &["--header", &storaged_auth]);
    assert!(ok, "storaged:\n{text}");
    println!("schemathesis storaged: {}", summary(&text));
    // The stateful phase registers, deletes by name, then follows the register's by-id
    // link and calls the 404 a lost resource: it cannot relate the two paths.
    let catalogd_auth = format!("Authorization: Bearer {CATALOGD_TOKEN}");
    let (ok, text) = run(
        catalogd.port,
        &[
            "--header",
            &catalogd_auth,
            "--exclude-checks",
            "ensure_resource_availability",
        ],
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
