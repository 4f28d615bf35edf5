//! The real binaries, as child processes.
