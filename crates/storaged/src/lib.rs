//! storaged: a durable object store over HTTP.
//!
//! Objects are byte strings under keys (docs/contracts.md §6, §7). A write is acknowledged only once it is
//! on stable storage (temp file → fsync → rename → fsync directories); readers see the old
//! version or the new one, never a mix; `If-None-Match: *` and `If-Match` are atomic per
//! key; listings are sorted by key bytes and paginated without a cap.
//!
//! The crate is a library plus a thin `main.rs`: [`startup::Application`] builds the server
//! from [`config::Settings`], which is what the integration tests use on port 0.

pub mod backend;
pub mod config;
pub mod error;
pub mod http;
pub mod metrics;
pub mod s3;
pub mod startup;

pub use error::Error;
