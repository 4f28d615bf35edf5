//! The one harness for the real `storaged` and `catalogd` binaries, shared by the smoke
//! harness, the benchmarks, the fault suite and every test that runs a real process.
//!
//! - [`bin`]: the service binaries of this build's profile (built once per test run);
//! - [`Launch`]: how to start a service (flags, environment, an optional wrapper such as
//!   strace, where its log goes), reusable for restarts;
//! - [`Proc`]: a running child in a process group of its own: readiness waits, signals,
//!   restart, group kills; killed on drop, its log printed when the test fails;
//! - [`Api`] and [`Reply`]: one small HTTP client; [`lake`] has the catalog-level helpers
//!   (register bodies, full listings, the stored manifest of a name);
//! - [`Moto`]: moto's S3 server, the store under storaged's S3 backend.

mod bins;
mod client;
pub mod lake;
mod moto;
pub mod pki;
mod process;

pub use bins::{bin, catalogd_bin, storaged_bin, venv_python};
pub use client::{Api, Reply};
pub use moto::Moto;
pub use process::{free_port, storaged_and_catalogd, unique, Launch, Proc};

/// Whether this is the long `make chaos` tier (`CHAOS` set and not `0`).
pub fn chaos() -> bool {
    std::env::var("CHAOS").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// `fast` in `make test`, `long` in `make chaos`.
pub fn sized(fast: usize, long: usize) -> usize {
    if chaos() {
        long
    } else {
        fast
    }
}

/// Copies the directory tree `from` to `to` (files and directories only).
pub fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}
