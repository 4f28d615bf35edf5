//! catalogd binary: flags → settings → logging → serve until SIGTERM/Ctrl-C.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use catalogd::config::{Overrides, Settings};
use catalogd::startup::Application;
use clap::Parser;

/// mimalloc rather than glibc malloc: a register allocates and frees many small buffers
/// (HTTP, JSON, a Parquet file), and glibc's bookkeeping cost a third of catalogd's CPU.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The dataset catalog: register datasets, look them up, manifests kept in storaged.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// TOML configuration file.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Address to listen on (overrides the config file and CATALOGD_LISTEN).
    #[arg(long)]
    listen: Option<String>,
    /// Base URL of storaged (overrides the config file and CATALOGD_STORAGED_URL).
    #[arg(long)]
    storaged_url: Option<String>,
    /// Scoped credentials, TOML (overrides CATALOGD_CREDENTIALS_FILE).
    #[arg(long)]
    credentials_file: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let env = std::env::vars().collect();
    let overrides = Overrides {
        listen: args.listen,
        storaged_url: args.storaged_url,
        credentials_file: args.credentials_file,
    };
    let settings = match Settings::load(args.config.as_deref(), &env, &overrides) {
        Ok(settings) => settings,
        Err(e) => {
            // Not eprintln!: it panics when stderr is gone.
            let _ = writeln!(std::io::stderr(), "catalogd: {e}");
            return ExitCode::from(2);
        }
    };
    service_kit::init_logging(settings.log_format);
    tracing::info!(?settings, "starting catalogd");
    let result = actix_web::rt::System::new().block_on(async move {
        Application::build(settings)
            .await?
            .run_until_signalled()
            .await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = ?e, "catalogd failed");
            ExitCode::FAILURE
        }
    }
}
