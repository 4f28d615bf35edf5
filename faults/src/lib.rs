//! The fault and bad-input suite's harness: the real `storaged` and `catalogd` binaries as
//! child processes, a fault-injecting TCP proxy to put between them, and a small HTTP
//! client. The tests live in `tests/`.
//!
//! Two tiers: `make test` runs every test at its fast size; `make chaos` sets `CHAOS=1`,
//! which makes the sweeps longer (more kills, more crash points, more requests).

pub mod client;
pub mod procs;
pub mod proxy;
pub mod strace;
pub mod tree;

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
