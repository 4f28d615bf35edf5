//! catalogd: the dataset catalog.
//!
//! The domain lives in [`catalog`] (no HTTP): the register contract of docs/contracts.md §3 —
//! one writer per name, persist then publish, conditional writes — over the storage seam
//! in [`store`] (storaged over HTTP, or an in-memory fake). [`http`] holds thin handlers;
//! [`startup::Application`] wires them together and rebuilds the index at start.

pub mod catalog;
pub mod config;
pub mod error;
pub mod http;
pub mod metrics;
pub mod startup;
pub mod store;

pub use error::Error;
