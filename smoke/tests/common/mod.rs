//! What the smoke crate's tests share: the service binaries and child processes that are
//! killed however a test ends.

#![allow(dead_code, reason = "each test binary uses a different part")]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// storaged and catalogd, built next to the harness (a test cannot use another
/// package's `CARGO_BIN_EXE_*`).
pub(crate) fn service_bins() -> (PathBuf, PathBuf) {
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

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process, killed when dropped; its output goes to `<dir>/<name>.log`.
pub(crate) struct Proc {
    child: Child,
    pub(crate) log: PathBuf,
}

impl Proc {
    pub(crate) fn spawn(program: &Path, args: &[&str], dir: &Path, name: &str) -> Self {
        let log = dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
        Self { child, log }
    }

    pub(crate) fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
