//! `lake`: one command-line tool to load, register and explore the lake.
//!
//! Remote paths are `s3://<bucket>/<key>` ([`path`]); everything talks to storaged's and
//! catalogd's native HTTP APIs ([`client`]). Output rules ([`output`]): human tables by
//! default, `--json` one object per line, progress on stderr only on a terminal. Exit
//! codes: 0 success, 1 failure (the server's message printed), 2 usage error.

pub mod cli;
pub mod client;
mod commands;
pub mod config;
pub mod error;
pub mod output;
pub mod path;

use std::collections::HashMap;
use std::io::Write;
use std::process::ExitCode;

use cli::Cli;
use client::{Catalogd, Service, Storaged};
use config::{ConnectionFlags, Settings};
use output::Output;

/// What every command gets: both services and how to print.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub storaged: Storaged,
    pub catalogd: Catalogd,
    pub settings: Settings,
    pub out: Output,
}

/// Runs a parsed command line to its exit code.
pub fn run(cli: Cli) -> ExitCode {
    let env: HashMap<String, String> = std::env::vars().collect();
    let flags = ConnectionFlags {
        config: cli.global.config.clone(),
        storaged: cli.global.storaged.clone(),
        catalogd: cli.global.catalogd.clone(),
        storaged_token_file: cli.global.storaged_token_file.clone(),
        catalogd_token_file: cli.global.catalogd_token_file.clone(),
        ca_file: cli.global.ca_file.clone(),
    };
    let out = Output::new(cli.global.json, cli.global.quiet);
    let result = Settings::load(&flags, &env).and_then(|settings| {
        let https = [&settings.storaged_url, &settings.catalogd_url]
            .iter()
            .any(|u| u.starts_with("https://"));
        let tls = https
            .then(|| service_kit::tls::client_config(settings.ca_file.as_deref()))
            .transpose()
            .map_err(|e| error::LakeError::Usage(format!("TLS: {e}")))?
            .map(std::sync::Arc::new);
        let ctx = Ctx {
            storaged: Storaged(Service::new(
                "storaged",
                &settings.storaged_url,
                settings.storaged_token.clone(),
                tls.clone(),
            )),
            catalogd: Catalogd(Service::new(
                "catalogd",
                &settings.catalogd_url,
                settings.catalogd_token.clone(),
                tls,
            )),
            settings,
            out,
        };
        actix_rt::System::new().block_on(commands::dispatch(cli.command, ctx))
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "lake: error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
