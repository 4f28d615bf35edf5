//! Finding the service binaries.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The path of the workspace binary `name` (`storaged`, `catalogd`) of this build.
///
/// `TESTKIT_<NAME>_BIN` (e.g. `TESTKIT_STORAGED_BIN`) names it explicitly. A test binary
/// (`target/<profile>/deps/<test>-<hash>`) cannot use another package's
/// `CARGO_BIN_EXE_*`, so the services are built once per test process, in the test's own
/// profile, and taken from `target/<profile>/`. Any other program (the smoke harness,
/// `lake-bench`) finds them beside itself.
pub fn bin(name: &str) -> PathBuf {
    let var = format!("TESTKIT_{}_BIN", name.to_uppercase());
    if let Some(path) = std::env::var_os(var) {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("the running program's path");
    let dir = exe.parent().expect("a program lives in a directory");
    if dir.file_name().is_some_and(|n| n == "deps") {
        let profile_dir = dir.parent().expect("target/<profile>/deps");
        build_services(profile_dir);
        profile_dir.join(name)
    } else {
        dir.join(name)
    }
}

/// `storaged` of this build.
pub fn storaged_bin() -> PathBuf {
    bin("storaged")
}

/// `catalogd` of this build.
pub fn catalogd_bin() -> PathBuf {
    bin("catalogd")
}

/// Builds both services once per process, in the profile of `profile_dir`.
fn build_services(profile_dir: &Path) {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let mut cargo = Command::new(option_env!("CARGO").unwrap_or("cargo"));
        cargo.args([
            "build", "--quiet", "--locked", "-p", "storaged", "-p", "catalogd", "--bins",
        ]);
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            cargo.arg("--release");
        }
        let status = cargo.status().expect("running cargo build");
        assert!(status.success(), "building storaged and catalogd failed");
    });
}

/// The project venv's Python (`make venv`: pyarrow, DuckDB, schemathesis), or
/// `INTEROP_PYTHON`. A missing interpreter fails the test that needs it, never skips it.
pub fn venv_python() -> PathBuf {
    if let Some(p) = std::env::var_os("INTEROP_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    assert!(
        venv.try_exists().unwrap_or(false),
        "this test needs {} (pyarrow, DuckDB): run `make venv`, or set INTEROP_PYTHON to a \
         python that has them",
        venv.display()
    );
    venv
}
