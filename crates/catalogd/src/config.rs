//! Settings: built-in defaults < TOML file < `CATALOGD_*` environment < command-line flags.
//!
//! [`Settings::load`] is a pure function of its inputs (the environment is passed in as a
//! map), so tests build any configuration without touching the process environment.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytesize::ByteSize;
use serde::Deserialize;

pub use service_kit::{LogFormat, Secret};

const DEFAULTS: &str = include_str!("../config/default.toml");

/// Effective configuration of one catalogd process.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Base URL of storaged, e.g. `http://127.0.0.1:8101`.
    pub storaged_url: String,
    /// Bearer token required on every route but `/healthz`, `/readyz` and
    /// `/openapi.json`, when set; it acts as one `admin` credential named `auth_token`.
    #[serde(default)]
    pub auth_token: Option<Secret>,
    /// A TOML file of scoped credentials (docs/operations.md, "Credentials"); re-read when
    /// it changes and on SIGHUP.
    #[serde(default)]
    pub credentials_file: Option<PathBuf>,
    /// Serve `/metrics` without credentials even when credentials are configured.
    #[serde(default)]
    pub metrics_open: bool,
    /// Serve HTTPS with this PEM certificate chain (with `tls_key_file`); re-read on
    /// SIGHUP.
    #[serde(default)]
    pub tls_cert_file: Option<PathBuf>,
    /// The PEM private key of `tls_cert_file`.
    #[serde(default)]
    pub tls_key_file: Option<PathBuf>,
    /// PEM certificates of the CA that signed storaged's certificate, for an `https://`
    /// `storaged_url` (without it, the public web roots are trusted).
    #[serde(default)]
    pub storaged_ca_file: Option<PathBuf>,
    /// Bearer token sent to storaged, when storaged requires one.
    #[serde(default)]
    pub storaged_token: Option<Secret>,
    /// Deadline of every call to storaged, e.g. `"5s"`; a register that cannot finish in
    /// time answers 503.
    #[serde(deserialize_with = "service_kit::duration")]
    pub storaged_timeout: Duration,
    /// Largest register body accepted (a 100,000-object manifest is about 6 MiB of JSON).
    pub max_body_size: ByteSize,
    /// Most objects one register may list (a manifest is one Parquet row, read whole).
    pub max_objects: usize,
    /// How often the index is checkpointed to storaged when it changed (`"0s"`: never).
    /// A checkpoint lets start-up fetch only the manifests that changed since.
    #[serde(deserialize_with = "service_kit::duration")]
    pub checkpoint_interval: Duration,
    /// How often the index is caught up with writes through other catalogd replicas over
    /// the same store (`"0s"`: never; one replica needs none).
    #[serde(deserialize_with = "service_kit::duration")]
    pub index_refresh: Duration,
    /// How long the change feed keeps a change (`after` older than that is 410).
    #[serde(deserialize_with = "service_kit::duration")]
    pub changes_retention: Duration,
    /// How long a register's `Idempotency-Key` is remembered.
    #[serde(deserialize_with = "service_kit::duration")]
    pub idempotency_window: Duration,
    /// How long a soft-deleted dataset can be undropped before it is purged.
    #[serde(deserialize_with = "service_kit::duration")]
    pub deleted_retention: Duration,
    /// Keep at most this many versions of each dataset (the head included); older ones
    /// expire. Unset: every version is kept.
    #[serde(default)]
    pub max_versions: Option<u32>,
    /// How often retention is applied (purging, expiring, forgetting old changes).
    #[serde(deserialize_with = "service_kit::duration")]
    pub maintenance_interval: Duration,
    /// `pretty` or `json`.
    pub log_format: LogFormat,
}

/// Values given as command-line flags; they win over every other source.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--listen`
    pub listen: Option<String>,
    /// `--storaged-url`
    pub storaged_url: Option<String>,
    /// `--credentials-file`
    pub credentials_file: Option<PathBuf>,
}

/// Why the settings could not be loaded; the message names the key or file at fault.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct SettingsError(String);

impl Settings {
    /// Loads settings from the built-in defaults, an optional TOML `file`, the `CATALOGD_*`
    /// variables of `env`, and `overrides`, in that order. Unknown keys are an error.
    pub fn load(
        file: Option<&Path>,
        env: &HashMap<String, String>,
        overrides: &Overrides,
    ) -> Result<Self, SettingsError> {
        let settings: Self = service_kit::load_settings(
            DEFAULTS,
            file,
            "CATALOGD",
            env,
            &[
                ("listen", overrides.listen.clone()),
                ("storaged_url", overrides.storaged_url.clone()),
                (
                    "credentials_file",
                    overrides
                        .credentials_file
                        .as_ref()
                        .map(|p| p.to_string_lossy().into_owned()),
                ),
            ],
        )
        .map_err(SettingsError)?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), SettingsError> {
        let url_ok = self
            .storaged_url
            .strip_prefix("http://")
            .or_else(|| self.storaged_url.strip_prefix("https://"))
            .is_some_and(|rest| !rest.is_empty() && !rest.contains(['?', '#']));
        if !url_ok {
            return Err(SettingsError(format!(
                "storaged_url must be an http:// or https:// URL with a host, got {:?}",
                self.storaged_url
            )));
        }
        if self.storaged_timeout.is_zero() {
            return Err(SettingsError("storaged_timeout must be above 0".into()));
        }
        if self.max_versions == Some(0) {
            return Err(SettingsError(
                "max_versions must be at least 1 (leave it unset to keep every version)".into(),
            ));
        }
        if self.maintenance_interval.is_zero() {
            return Err(SettingsError("maintenance_interval must be above 0".into()));
        }
        if self.max_objects == 0 {
            return Err(SettingsError("max_objects must be above 0".into()));
        }
        if self.max_body_size.as_u64() == 0 {
            return Err(SettingsError("max_body_size must be above 0".into()));
        }
        if self.storaged_ca_file.is_some() && !self.storaged_url.starts_with("https://") {
            return Err(SettingsError(
                "storaged_ca_file is set but storaged_url is not https://".into(),
            ));
        }
        if self.tls_cert_file.is_some() != self.tls_key_file.is_some() {
            return Err(SettingsError(
                "tls_cert_file and tls_key_file go together: give both or neither".into(),
            ));
        }
        if self.auth_token.as_ref().is_some_and(Secret::is_empty) {
            return Err(SettingsError(
                "auth_token must not be empty (leave it unset to disable auth)".into(),
            ));
        }
        if self.storaged_token.as_ref().is_some_and(Secret::is_empty) {
            return Err(SettingsError(
                "storaged_token must not be empty (leave it unset when storaged has no token)"
                    .into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn defaults() {
        let s = Settings::load(None, &HashMap::new(), &Overrides::default()).unwrap();
        assert_eq!(s.listen.to_string(), "127.0.0.1:8102");
        assert_eq!(s.storaged_url, "http://127.0.0.1:8101");
        assert!(s.storaged_token.is_none());
        assert_eq!(s.storaged_timeout, Duration::from_secs(5));
        assert_eq!(s.max_body_size.as_u64(), 64 * 1024 * 1024);
        assert_eq!(s.max_objects, 100_000);
        assert_eq!(s.log_format, LogFormat::Pretty);
    }

    #[test]
    fn layering_file_env_flags() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:9000\"\nstoraged_timeout = \"2s\"\nmax_body_size = 1024\n",
        )
        .unwrap();
        let s = Settings::load(
            Some(&file),
            &env(&[
                ("CATALOGD_LISTEN", "127.0.0.1:9001"),
                ("CATALOGD_STORAGED_TIMEOUT", "250ms"),
                ("CATALOGD_STORAGED_TOKEN", "t0ken-value"),
                ("CATALOGD_LOG_FORMAT", "json"),
                ("STORAGED_LISTEN", "ignored"),
            ]),
            &Overrides {
                listen: Some("127.0.0.1:9002".into()),
                storaged_url: Some("http://storaged:8101".into()),
                credentials_file: None,
            },
        )
        .unwrap();
        assert_eq!(s.listen.port(), 9002);
        assert_eq!(s.storaged_url, "http://storaged:8101");
        assert_eq!(s.storaged_timeout, Duration::from_millis(250));
        assert_eq!(s.max_body_size.as_u64(), 1024);
        assert_eq!(s.log_format, LogFormat::Json);
        assert_eq!(s.storaged_token.as_ref().unwrap().expose(), "t0ken-value");
        assert!(!format!("{s:?}").contains("t0ken-value"), "token leaked");
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_key() {
        let err = Settings::load(
            None,
            &env(&[("CATALOGD_STORAGED_URI", "x")]),
            &Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("storaged_uri"), "{err}");

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "bogus = 1\n").unwrap();
        let err = Settings::load(Some(&file), &HashMap::new(), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("bogus"), "{err}");

        for (k, v, needle) in [
            ("CATALOGD_LISTEN", "nonsense", "listen"),
            ("CATALOGD_STORAGED_TIMEOUT", "soon", "soon"),
            ("CATALOGD_STORAGED_TIMEOUT", "0s", "storaged_timeout"),
            ("CATALOGD_STORAGED_URL", "ftp://x", "storaged_url"),
            ("CATALOGD_STORAGED_CA_FILE", "/ca.pem", "storaged_ca_file"),
            ("CATALOGD_TLS_CERT_FILE", "/cert.pem", "tls_key_file"),
            ("CATALOGD_STORAGED_URL", "http://", "storaged_url"),
            ("CATALOGD_STORAGED_TOKEN", "", "storaged_token"),
            ("CATALOGD_MAX_BODY_SIZE", "0", "max_body_size"),
            ("CATALOGD_MAX_OBJECTS", "0", "max_objects"),
            ("CATALOGD_LOG_FORMAT", "xml", "xml"),
        ] {
            let err = Settings::load(None, &env(&[(k, v)]), &Overrides::default())
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{k}={v}: {err}");
        }
    }

    #[test]
    fn missing_config_file_is_an_error() {
        let err = Settings::load(
            Some(Path::new("/nonexistent/catalogd.toml")),
            &HashMap::new(),
            &Overrides::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("nonexistent"), "{err}");
    }
}
