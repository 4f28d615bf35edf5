//! The fault and bad-input suite: every test that runs the real `storaged` and `catalogd`
//! binaries (through `testkit`) lives in `tests/`; this library adds what only they need: a
//! fault-injecting TCP proxy to put between the services, the kill -9 storm, the check every
//! outage test makes once healed, what a crash sweep checks after a restart, an strace parser and tree snapshots.
//!
//! Two tiers: `make test` runs every test at its fast size; `make chaos` sets `CHAOS=1`,
//! which makes the sweeps longer (more kills, more crash points, more requests).

pub mod crash;
pub mod heal;
pub mod linearizable;
pub mod proxy;
pub mod storm;
pub mod strace;
pub mod tree;

pub use testkit::{chaos, sized};
