//! The command line.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// lake: load, register and explore the lake (storaged + catalogd).
///
/// Remote paths are s3://<bucket>/<key>, the names of storaged's S3 face: storaged's key
/// lake/orders/part-0.parquet is s3://lake/orders/part-0.parquet.
#[derive(Debug, Parser)]
#[command(name = "lake", version)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options accepted anywhere on the line.
#[derive(Debug, Args)]
pub struct Global {
    /// storaged's URL [env: LAKE_STORAGED_URL] [default: http://127.0.0.1:8101]
    #[arg(long, global = true, value_name = "URL")]
    pub storaged: Option<String>,
    /// catalogd's URL [env: LAKE_CATALOGD_URL] [default: http://127.0.0.1:8102]
    #[arg(long, global = true, value_name = "URL")]
    pub catalogd: Option<String>,
    /// File holding storaged's bearer token [or env: LAKE_STORAGED_TOKEN]
    #[arg(long, global = true, value_name = "FILE")]
    pub storaged_token_file: Option<PathBuf>,
    /// File holding catalogd's bearer token [or env: LAKE_CATALOGD_TOKEN]
    #[arg(long, global = true, value_name = "FILE")]
    pub catalogd_token_file: Option<PathBuf>,
    /// PEM CA certificates to trust for https:// services (a private CA) [env: LAKE_CA_FILE]
    #[arg(long, global = true, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// Config file (TOML, the same keys) [default: $XDG_CONFIG_HOME/lake/config.toml]
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print one JSON object per line on stdout, and nothing else
    #[arg(long, global = true)]
    pub json: bool,
    /// No progress bars or summaries
    #[arg(long, short, global = true)]
    pub quiet: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List objects and prefixes (buckets, with no path)
    Ls {
        /// s3://bucket/prefix
        path: Option<String>,
        /// Every object under the path, not one level
        #[arg(short, long)]
        recursive: bool,
        /// Sizes, modification times and ETags
        #[arg(short, long)]
        long: bool,
    },
    /// Copy files to or from the lake (local → s3:// or s3:// → local; `-` is stdin or stdout)
    Cp {
        src: String,
        dst: String,
        /// Copy a directory tree or every object under a prefix
        #[arg(short, long)]
        recursive: bool,
        /// Parallel transfers
        #[arg(short = 'j', long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
        jobs: u16,
        /// Skip files whose size and content hash already match the destination
        #[arg(long)]
        update: bool,
    },
    /// Write an object to stdout
    Cat { path: String },
    /// Show an object's size, ETag, modification time and content type
    Stat { path: String },
    /// Remove an object, or with -r every object under a prefix
    Rm {
        path: String,
        #[arg(short, long)]
        recursive: bool,
    },
    /// Print the schema fingerprint of Parquet files (docs/schema-fingerprint.md)
    Fingerprint {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Register the Parquet files under a prefix (or a local directory) as a dataset
    Register {
        /// Dataset name (e.g. sales.orders)
        name: String,
        /// s3://bucket/prefix/, or a local directory with --upload-to
        source: String,
        /// Where to upload a local directory first
        #[arg(long, value_name = "S3_PREFIX")]
        upload_to: Option<String>,
        /// Register with this fingerprint instead of the computed one
        #[arg(long)]
        fingerprint: Option<String>,
        /// Parallel transfers for --upload-to
        #[arg(short = 'j', long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
        jobs: u16,
    },
    /// The catalog's datasets
    Datasets {
        #[command(subcommand)]
        command: DatasetsCommand,
    },
    /// Print a DuckDB SQL statement that reads a dataset's objects
    Query {
        name: String,
        /// s3:// paths for storaged's S3 face instead of HTTP URLs
        #[arg(long)]
        s3: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum DatasetsCommand {
    /// List datasets
    Ls {
        #[arg(long)]
        prefix: Option<String>,
    },
    /// Show a dataset and its objects
    Show {
        name: String,
        /// A past version
        #[arg(long)]
        version: Option<i64>,
    },
    /// A dataset's versions, newest first
    History { name: String },
    /// What changed between two versions: objects added and removed, row count
    Diff { name: String, v1: i64, v2: i64 },
    /// Delete a dataset (soft: undrop brings it back; --purge removes its history too)
    Rm {
        name: String,
        #[arg(long)]
        purge: bool,
    },
    /// Bring a deleted dataset back
    Undrop { name: String },
}
