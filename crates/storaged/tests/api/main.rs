//! storaged integration tests: the real server on port 0 with a temporary data directory,
//! driven over real HTTP. Tests of the real binary live in `faults/tests/`.

mod auth_metrics;
mod conditional;
mod durability;
mod helpers;
mod keys;
mod list;
mod objects;
mod openapi;
mod write_log;
