//! Settings: built-in defaults < TOML file < `STORAGED_*` environment < command-line flags.
//!
//! [`Settings::load`] is a pure function of its inputs (the environment is passed in as a
//! map), so tests build any configuration without touching the process environment.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytesize::ByteSize;
use serde::Deserialize;

const DEFAULTS: &str = include_str!("../config/default.toml");

/// Effective configuration of one storaged process.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Address of the S3 face (docs/s3-compatibility.md); empty turns it off.
    pub s3_listen: String,
    /// A multipart upload neither completed nor aborted is removed after this long without
    /// a new part, e.g. `"24h"`.
    #[serde(deserialize_with = "service_kit::duration")]
    pub multipart_expiry: Duration,
    /// With this set, `<bucket>.<s3_domain>` hosts address buckets virtual-host style
    /// (path style always works).
    #[serde(default)]
    pub s3_domain: Option<String>,
    /// Where objects live: `local` (under `data_dir`) or `s3` (the `[s3]` bucket).
    pub backend: BackendKind,
    /// The bucket of the `s3` backend (docs/operations.md, "Running on an S3 store").
    #[serde(default)]
    pub s3: Option<S3Settings>,
    /// Directory holding `objects/` and the temporary area `tmp/` (the `local` backend).
    pub data_dir: PathBuf,
    /// Largest object accepted, e.g. `"5 GiB"` or a number of bytes.
    pub max_object_size: ByteSize,
    /// An upload that sends nothing for this long is aborted, e.g. `"30s"`.
    #[serde(deserialize_with = "service_kit::duration")]
    pub body_idle_timeout: Duration,
    /// fsync every write before acknowledging it. `false` is unsafe: an acknowledged write
    /// can be lost or torn by a crash. Only for throwaway development data.
    pub fsync: bool,
    /// Objects up to this size are records in the write log (ADR 0017): many writes share
    /// one `fdatasync`. 0 keeps every object a file. At most 1 MiB.
    pub log_max_object_size: ByteSize,
    /// The size of each preallocated log segment file; at least 8 MiB.
    pub log_segment_size: ByteSize,
    /// When set, every route but `/healthz` and `/readyz` requires `Authorization: Bearer`
    /// with this token, which acts as one `admin` credential named `auth_token`.
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
    /// `pretty` or `json`.
    pub log_format: LogFormat,
}

pub use service_kit::{LogFormat, Secret};

/// Which backend keeps the objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// Files under `data_dir`.
    Local,
    /// A bucket of an S3-compatible store.
    S3,
}

/// The `[s3]` table: a bucket of an S3-compatible store. Each key can also be set as
/// `STORAGED_S3_<KEY>` (for example `STORAGED_S3_ENDPOINT`).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Settings {
    /// The store's URL, e.g. `http://127.0.0.1:9000`; unset means AWS S3 in `region`.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// The region requests are signed for.
    #[serde(default = "default_region")]
    pub region: String,
    /// The bucket; it must exist.
    pub bucket: String,
    /// Objects live under this prefix of the bucket (`""`: the whole bucket).
    #[serde(default)]
    pub prefix: String,
    /// The key pair's id; with neither it nor a secret, requests are unsigned.
    #[serde(default)]
    pub access_key_id: Option<String>,
    /// The key pair's secret.
    #[serde(default)]
    pub secret_access_key: Option<Secret>,
    /// A file holding the secret (read at start-up), instead of `secret_access_key`.
    #[serde(default)]
    pub secret_access_key_file: Option<PathBuf>,
    /// Allow a plain-HTTP endpoint (test stores; never across a network you do not own).
    #[serde(default)]
    pub allow_http: bool,
    /// How long one call to the store may take, retries included; past it the request
    /// answers 503 (outcome unknown for a write).
    #[serde(
        default = "default_s3_timeout",
        deserialize_with = "service_kit::duration"
    )]
    pub timeout: Duration,
}

/// The keys of [`S3Settings`], for the `STORAGED_S3_<KEY>` variables.
const S3_KEYS: [&str; 9] = [
    "endpoint",
    "region",
    "bucket",
    "prefix",
    "access_key_id",
    "secret_access_key",
    "secret_access_key_file",
    "allow_http",
    "timeout",
];

fn default_s3_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_region() -> String {
    "us-east-1".to_owned()
}

impl S3Settings {
    /// The secret, from `secret_access_key` or the file `secret_access_key_file`.
    pub fn secret_access_key(&self) -> Result<Option<String>, SettingsError> {
        match (&self.secret_access_key, &self.secret_access_key_file) {
            (Some(secret), None) => Ok(Some(secret.expose().to_owned())),
            (None, Some(file)) => std::fs::read_to_string(file)
                .map(|s| Some(s.trim().to_owned()))
                .map_err(|e| {
                    SettingsError(format!("s3.secret_access_key_file {}: {e}", file.display()))
                }),
            (None, None) => Ok(None),
            (Some(_), Some(_)) => Err(SettingsError(
                "s3: give secret_access_key or secret_access_key_file, not both".into(),
            )),
        }
    }
}

impl std::fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Settings")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("access_key_id", &self.access_key_id)
            .field("allow_http", &self.allow_http)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Values given as command-line flags; they win over every other source.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--listen`
    pub listen: Option<String>,
    /// `--data-dir`
    pub data_dir: Option<PathBuf>,
    /// `--s3-listen`
    pub s3_listen: Option<String>,
    /// `--credentials-file`
    pub credentials_file: Option<PathBuf>,
}

/// Why the settings could not be loaded; the message names the key or file at fault.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct SettingsError(String);

impl Settings {
    /// Loads settings from the built-in defaults, an optional TOML `file`, the `STORAGED_*`
    /// variables of `env`, and `overrides`, in that order. Unknown keys are an error.
    pub fn load(
        file: Option<&Path>,
        env: &HashMap<String, String>,
        overrides: &Overrides,
    ) -> Result<Self, SettingsError> {
        // `STORAGED_S3_<KEY>` sets `s3.<key>` (the flat form would read as a top-level key).
        let mut rest = env.clone();
        let mut s3_overrides = Vec::new();
        for key in S3_KEYS {
            if let Some(value) = rest.remove(&format!("STORAGED_S3_{}", key.to_uppercase())) {
                s3_overrides.push((format!("s3.{key}"), Some(value)));
            }
        }
        let mut overrides_list: Vec<(&str, Option<String>)> = s3_overrides
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        let settings: Self = service_kit::load_settings(DEFAULTS, file, "STORAGED", &rest, &{
            overrides_list.extend([
                ("listen", overrides.listen.clone()),
                ("s3_listen", overrides.s3_listen.clone()),
                (
                    "data_dir",
                    overrides
                        .data_dir
                        .as_ref()
                        .map(|p| p.to_string_lossy().into_owned()),
                ),
                (
                    "credentials_file",
                    overrides
                        .credentials_file
                        .as_ref()
                        .map(|p| p.to_string_lossy().into_owned()),
                ),
            ]);
            overrides_list
        })
        .map_err(SettingsError)?;
        settings.validate()?;
        Ok(settings)
    }

    /// The S3 face's address, or `None` when it is off.
    pub fn s3_addr(&self) -> Option<SocketAddr> {
        self.s3_listen.parse().ok()
    }

    fn validate(&self) -> Result<(), SettingsError> {
        if !self.s3_listen.is_empty() && self.s3_addr().is_none() {
            return Err(SettingsError(format!(
                "s3_listen: {:?} is not an address like 127.0.0.1:8103 (leave it empty to turn the S3 face off)",
                self.s3_listen
            )));
        }
        if self
            .s3_domain
            .as_deref()
            .is_some_and(|d| d.is_empty() || d.contains('/'))
        {
            return Err(SettingsError(
                "s3_domain must be a host name like s3.example.com".into(),
            ));
        }
        match (self.backend, &self.s3) {
            (BackendKind::S3, None) => {
                return Err(SettingsError(
                    "backend = \"s3\" needs an [s3] table with at least `bucket`".into(),
                ))
            }
            (BackendKind::S3, Some(s3)) => {
                if s3.bucket.is_empty() {
                    return Err(SettingsError("s3.bucket must not be empty".into()));
                }
                if s3.secret_access_key.is_some() && s3.secret_access_key_file.is_some() {
                    return Err(SettingsError(
                        "s3: give secret_access_key or secret_access_key_file, not both".into(),
                    ));
                }
            }
            (BackendKind::Local, _) => {}
        }
        if self.max_object_size.as_u64() == 0 {
            return Err(SettingsError("max_object_size must be above 0".into()));
        }
        if self.log_max_object_size.as_u64() > 1 << 20 {
            return Err(SettingsError(
                "log_max_object_size must be at most 1 MiB (larger objects are files)".into(),
            ));
        }
        if self.log_segment_size.as_u64() < 8 << 20 {
            return Err(SettingsError(
                "log_segment_size must be at least 8 MiB".into(),
            ));
        }
        if self.body_idle_timeout.is_zero() {
            return Err(SettingsError("body_idle_timeout must be above 0".into()));
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
        assert_eq!(s.listen.to_string(), "127.0.0.1:8101");
        assert_eq!(s.s3_addr().unwrap().to_string(), "127.0.0.1:8103");
        assert_eq!(s.multipart_expiry, Duration::from_secs(24 * 3600));
        assert_eq!(s.data_dir, PathBuf::from("./data/storaged"));
        assert_eq!(s.max_object_size.as_u64(), 5 * 1024 * 1024 * 1024);
        assert_eq!(s.body_idle_timeout, Duration::from_secs(30));
        assert!(s.fsync);
        assert!(s.auth_token.is_none());
        assert_eq!(s.log_format, LogFormat::Pretty);
    }

    #[test]
    fn layering_file_env_flags() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:9000\"\nfsync = false\nmax_object_size = 1024\n",
        )
        .unwrap();
        let s = Settings::load(
            Some(&file),
            &env(&[
                ("STORAGED_LISTEN", "127.0.0.1:9001"),
                ("STORAGED_BODY_IDLE_TIMEOUT", "250ms"),
                ("STORAGED_AUTH_TOKEN", "12345"),
                ("OTHER_VAR", "ignored"),
            ]),
            &Overrides {
                listen: Some("127.0.0.1:9002".into()),
                data_dir: Some("/tmp/x".into()),
                credentials_file: None,
                s3_listen: Some(String::new()),
            },
        )
        .unwrap();
        assert_eq!(s.listen.port(), 9002);
        assert_eq!(
            s.s3_addr(),
            None,
            "an empty s3_listen turns the S3 face off"
        );
        assert_eq!(s.data_dir, PathBuf::from("/tmp/x"));
        assert!(!s.fsync);
        assert_eq!(s.max_object_size.as_u64(), 1024);
        assert_eq!(s.body_idle_timeout, Duration::from_millis(250));
        assert_eq!(s.auth_token.as_ref().unwrap().expose(), "12345");
        assert!(
            !format!("{s:?}").contains("12345"),
            "token leaked into Debug"
        );
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_key() {
        let err = Settings::load(
            None,
            &env(&[("STORAGED_LISTN", "x")]),
            &Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("listn"), "{err}");

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s.toml");
        std::fs::write(&file, "bogus = 1\n").unwrap();
        let err = Settings::load(Some(&file), &HashMap::new(), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("bogus"), "{err}");

        for (k, v, needle) in [
            ("STORAGED_LISTEN", "nonsense", "listen"),
            ("STORAGED_BODY_IDLE_TIMEOUT", "soon", "soon"),
            ("STORAGED_FSYNC", "maybe", "fsync"),
            ("STORAGED_LOG_FORMAT", "xml", "xml"),
            ("STORAGED_TLS_KEY_FILE", "/key.pem", "tls_cert_file"),
            ("STORAGED_MAX_OBJECT_SIZE", "0", "max_object_size"),
            (
                "STORAGED_LOG_MAX_OBJECT_SIZE",
                "2 MiB",
                "log_max_object_size",
            ),
            ("STORAGED_LOG_SEGMENT_SIZE", "1 MiB", "log_segment_size"),
            ("STORAGED_S3_LISTEN", "localhost", "s3_listen"),
        ] {
            let err = Settings::load(None, &env(&[(k, v)]), &Overrides::default())
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{k}={v}: {err}");
        }
    }

    #[test]
    fn s3_backend_from_file_and_env() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s.toml");
        std::fs::write(
            &file,
            "backend = \"s3\"\n[s3]\nbucket = \"lake\"\nendpoint = \"http://127.0.0.1:1\"\n",
        )
        .unwrap();
        let s = Settings::load(
            Some(&file),
            &env(&[
                ("STORAGED_S3_ALLOW_HTTP", "true"),
                ("STORAGED_S3_PREFIX", "prod"),
                ("STORAGED_S3_SECRET_ACCESS_KEY", "hush"),
                ("STORAGED_S3_LISTEN", ""),
            ]),
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(s.backend, BackendKind::S3);
        let s3 = s.s3.as_ref().unwrap();
        assert_eq!(
            (s3.bucket.as_str(), s3.prefix.as_str(), s3.allow_http),
            ("lake", "prod", true)
        );
        assert_eq!(s3.region, "us-east-1");
        assert_eq!(s3.timeout, Duration::from_secs(10));
        assert_eq!(s3.secret_access_key().unwrap().as_deref(), Some("hush"));
        assert!(
            !format!("{s:?}").contains("hush"),
            "secret leaked into Debug"
        );
        assert_eq!(
            s.s3_addr(),
            None,
            "STORAGED_S3_LISTEN is still the face's address"
        );

        let err = Settings::load(
            None,
            &env(&[("STORAGED_BACKEND", "s3")]),
            &Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("[s3]"), "{err}");
        let err = Settings::load(
            None,
            &env(&[("STORAGED_BACKEND", "tape")]),
            &Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("tape"), "{err}");
        std::fs::write(&file, "[s3]\nbucket = \"lake\"\nbucket_name = \"x\"\n").unwrap();
        let err = Settings::load(Some(&file), &HashMap::new(), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("bucket_name"), "{err}");
    }

    #[test]
    fn missing_config_file_is_an_error() {
        let err = Settings::load(
            Some(Path::new("/nonexistent/storaged.toml")),
            &HashMap::new(),
            &Overrides::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("nonexistent"), "{err}");
    }
}
