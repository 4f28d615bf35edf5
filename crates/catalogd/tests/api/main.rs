//! catalogd over real HTTP: an in-process storaged and catalogd on port 0. Tests of the
//! real binaries live in `faults/tests/`.

mod helpers;
mod history;
mod lookups;
mod openapi;
mod register;
mod restart;
mod upgrade;
