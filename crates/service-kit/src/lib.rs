//! Plumbing storaged and catalogd share, so that both behave alike for operators: the same
//! secret redaction, duration syntax, log formats, shutdown signals and error chains.

pub mod credentials;
pub mod http;
pub mod tls;

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use tracing_subscriber::EnvFilter;

/// Log output format (`log_format` in both services' settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line.
    Json,
}

/// A secret that never appears in logs or `Debug` output.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself; only for comparison or to send it where it belongs.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True for the empty string, which both services refuse as a token.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"[redacted]\"")
    }
}

/// Deserializes a human duration such as `"5s"` or `"250ms"`; the error quotes the input.
pub fn duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let raw = String::deserialize(deserializer)?;
    humantime::parse_duration(&raw)
        .map_err(|e| serde::de::Error::custom(format!("invalid duration {raw:?}: {e}")))
}

/// Installs the global `tracing` subscriber; the filter comes from `RUST_LOG` (default
/// `info`). Call once, from `main`.
///
/// Logging never stops the service: a log line that cannot be written (the reader of
/// stdout went away, a full disk) is dropped. tracing-subscriber would otherwise report
/// the failure with `eprintln!`, which panics when stderr is the same broken pipe, and a
/// panic in the shutdown task would leave the process serving after SIGTERM.
///
/// The s3s crate (storaged's S3 face) logs every client error at ERROR; it is silenced
/// unless `RUST_LOG` names it, since the S3 face logs refusals and failures itself.
pub fn init_logging(format: LogFormat) {
    let mut filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let named = std::env::var("RUST_LOG").is_ok_and(|v| v.contains("s3s"));
    if !named {
        if let Ok(off) = "s3s=off".parse() {
            filter = filter.add_directive(off);
        }
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .log_internal_errors(false);
    let _ = match format {
        LogFormat::Pretty => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// Loads a service's settings: the built-in TOML `defaults` < an optional TOML `file` <
/// the `<PREFIX>_*` variables of `env` (passed in, so loading is a pure function) < the
/// `overrides` given as flags. Unknown keys are an error naming the key (the settings type
/// denies unknown fields); the message names the key or file at fault.
pub fn load_settings<T: serde::de::DeserializeOwned, S: std::hash::BuildHasher>(
    defaults: &str,
    file: Option<&std::path::Path>,
    env_prefix: &str,
    env: &std::collections::HashMap<String, String, S>,
    overrides: &[(&str, Option<String>)],
) -> Result<T, String> {
    use config::{Config, Environment, File, FileFormat};

    let mut builder = Config::builder().add_source(File::from_str(defaults, FileFormat::Toml));
    if let Some(path) = file {
        builder = builder.add_source(File::from(path).format(FileFormat::Toml).required(true));
    }
    let wanted = format!("{env_prefix}_");
    let env: config::Map<String, String> = env
        .iter()
        .filter(|(k, _)| k.starts_with(&wanted))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    builder = builder.add_source(
        Environment::with_prefix(env_prefix)
            .source(Some(env))
            .try_parsing(true),
    );
    for (key, value) in overrides {
        builder = builder
            .set_override_option(*key, value.clone())
            .map_err(|e| e.to_string())?;
    }
    builder
        .build()
        .and_then(Config::try_deserialize)
        .map_err(|e| e.to_string())
}

/// Displays an error with every `source()` below it (see [`error_chain_fmt`]), for one
/// log field.
#[derive(Debug)]
pub struct ErrorChain<'a, E>(pub &'a E);

impl<E: std::error::Error> fmt::Display for ErrorChain<'_, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        error_chain_fmt(self.0, f)
    }
}

/// Writes an error and every `source()` below it, one "caused by" per line.
pub fn error_chain_fmt(e: &impl std::error::Error, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    write!(f, "{e}")?;
    let mut current = e.source();
    while let Some(cause) = current {
        write!(f, "\n  caused by: {cause}")?;
        current = cause.source();
    }
    Ok(())
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(e) => {
                    tracing::error!(error = %e, "cannot listen for SIGTERM");
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// Latency buckets (seconds) of both services' request histograms.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
    10.0, 30.0,
];

/// A page token: the last name or key returned, hex-encoded. Opaque to clients, and
/// checked when it comes back (see [`decode_page_token`]).
pub fn encode_page_token(last: &str) -> String {
    use std::fmt::Write;
    last.bytes()
        .fold(String::with_capacity(last.len() * 2), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
}

/// The bytes inside a token from [`encode_page_token`], or `None` if it is not hex.
pub fn decode_page_token(token: &str) -> Option<Vec<u8>> {
    if !token.len().is_multiple_of(2) || !token.is_ascii() {
        return None;
    }
    (0..token.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&token[i..i + 2], 16).ok())
        .collect()
}

/// Parses a `limit` query parameter: absent → `default`, else an integer in `1..=max`.
pub fn parse_limit(raw: Option<&str>, default: usize, max: usize) -> Result<usize, String> {
    match raw {
        None => Ok(default),
        Some(raw) => match raw.parse::<usize>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(format!(
                "limit must be an integer in 1..={max}, got {raw:?}"
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_and_limits() {
        assert_eq!(
            decode_page_token(&encode_page_token("a/é")).unwrap(),
            "a/é".as_bytes()
        );
        for bad in ["0", "zz", "é1"] {
            assert!(decode_page_token(bad).is_none(), "{bad}");
        }
        assert_eq!(parse_limit(None, 10, 100), Ok(10));
        assert_eq!(parse_limit(Some("100"), 10, 100), Ok(100));
        for bad in ["0", "101", "-1", "x", ""] {
            assert!(parse_limit(Some(bad), 10, 100).is_err(), "{bad}");
        }
    }

    #[test]
    fn secret_is_redacted_in_debug() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "\"[redacted]\"");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn error_chain_lists_every_cause() {
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl fmt::Display for Outer {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("outer")
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let text = ErrorChain(&Outer(std::io::Error::other("inner"))).to_string();
        assert_eq!(text, "outer\n  caused by: inner");
    }
}
