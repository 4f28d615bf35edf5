//! The `lake` binary: parse the command line (usage errors exit 2), run it.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    lake_cli::run(lake_cli::cli::Cli::parse())
}
