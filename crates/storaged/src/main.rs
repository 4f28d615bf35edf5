//! storaged binary: flags → settings → logging → serve until SIGTERM/Ctrl-C.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use storaged::config::{Overrides, Settings};
use storaged::startup::Application;

/// mimalloc rather than glibc malloc: every request allocates and frees many small
/// buffers, which glibc's bookkeeping makes costly (docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A durable object store over HTTP.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// TOML configuration file.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Address to listen on (overrides the config file and STORAGED_LISTEN).
    #[arg(long)]
    listen: Option<String>,
    /// Address of the S3 face; empty turns it off (overrides STORAGED_S3_LISTEN).
    #[arg(long)]
    s3_listen: Option<String>,
    /// Data directory (overrides the config file and STORAGED_DATA_DIR).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Scoped credentials, TOML (overrides STORAGED_CREDENTIALS_FILE).
    #[arg(long)]
    credentials_file: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let env = std::env::vars().collect();
    let overrides = Overrides {
        listen: args.listen,
        data_dir: args.data_dir,
        s3_listen: args.s3_listen,
        credentials_file: args.credentials_file,
    };
    let settings = match Settings::load(args.config.as_deref(), &env, &overrides) {
        Ok(settings) => settings,
        Err(e) => {
            // Not eprintln!: it panics when stderr is gone.
            let _ = writeln!(std::io::stderr(), "storaged: {e}");
            return ExitCode::from(2);
        }
    };
    service_kit::init_logging(settings.log_format);
    tracing::info!(?settings, "starting storaged");
    let result = actix_web::rt::System::new().block_on(async move {
        let app = Application::build(settings).await?;
        app.run_until_signalled()
            .await
            .map_err(|e| storaged::Error::io("serving", e))
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = ?e, "storaged failed");
            ExitCode::FAILURE
        }
    }
}
