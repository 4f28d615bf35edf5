//! catalogd: the dataset catalog.
//!
//! The domain lives in [`catalog`] (no HTTP): the register contract of design §3 —
//! one writer per name, persist then publish, conditional writes — over the storage seam
//! in [`store`]. The HTTP layer and the storaged client arrive with the rest of issue 4.

pub mod catalog;
pub mod store;
