//! catalogd over real HTTP: an in-process storaged and catalogd on port 0, and (in
//! `process`) the real binaries as child processes.

mod helpers;
mod lookups;
mod openapi;
mod process;
mod register;
mod restart;
