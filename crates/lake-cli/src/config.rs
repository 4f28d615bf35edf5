//! Where the services are and how to authenticate: flags win over the environment, which
//! wins over the config file, which wins over the defaults. A pure function of its inputs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{LakeError, Result};

/// storaged's default address (`make run`).
pub const DEFAULT_STORAGED: &str = "http://127.0.0.1:8101";
/// catalogd's default address (`make run`).
pub const DEFAULT_CATALOGD: &str = "http://127.0.0.1:8102";

/// The config file: the same keys as the flags and the environment.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    storaged_url: Option<String>,
    catalogd_url: Option<String>,
    storaged_token: Option<String>,
    storaged_token_file: Option<PathBuf>,
    catalogd_token: Option<String>,
    catalogd_token_file: Option<PathBuf>,
    ca_file: Option<PathBuf>,
}

/// What the command line said about the connection.
#[derive(Debug, Default, Clone)]
pub struct ConnectionFlags {
    pub config: Option<PathBuf>,
    pub storaged: Option<String>,
    pub catalogd: Option<String>,
    pub storaged_token_file: Option<PathBuf>,
    pub catalogd_token_file: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
}

/// The resolved connection settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub storaged_url: String,
    pub catalogd_url: String,
    pub storaged_token: Option<String>,
    pub catalogd_token: Option<String>,
    /// CA certificates for `https://` services; the public web roots without one.
    pub ca_file: Option<PathBuf>,
}

/// The default config file: `$XDG_CONFIG_HOME/lake/config.toml`, else
/// `$HOME/.config/lake/config.toml`.
#[allow(clippy::implicit_hasher)]
pub fn default_config_path(env: &HashMap<String, String>) -> Option<PathBuf> {
    let base = env
        .get("XDG_CONFIG_HOME")
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
        .or_else(|| env.get("HOME").map(|h| Path::new(h).join(".config")))?;
    Some(base.join("lake").join("config.toml"))
}

fn read_token(path: &Path) -> Result<String> {
    let raw = std::fs::read_to_string(path).map_err(|e| LakeError::io(path.display(), e))?;
    let token = raw.trim();
    if token.is_empty() {
        return Err(LakeError::Usage(format!(
            "token file {} is empty",
            path.display()
        )));
    }
    Ok(token.to_owned())
}

fn check_url(what: &str, url: &str) -> Result<String> {
    if url.starts_with("http://") || url.starts_with("https://") {
        Ok(url.trim_end_matches('/').to_owned())
    } else {
        Err(LakeError::Usage(format!(
            "{what} {url:?} is not an http:// or https:// URL"
        )))
    }
}

impl Settings {
    /// Resolves the settings from the flags, the environment and the config file (the
    /// one named by `--config`, which must exist, or the default one, if present).
    #[allow(clippy::implicit_hasher)]
    pub fn load(flags: &ConnectionFlags, env: &HashMap<String, String>) -> Result<Self> {
        let file = match &flags.config {
            Some(path) => Some(read_file(path)?),
            None => match default_config_path(env) {
                Some(path) if path.try_exists().unwrap_or(true) => Some(read_file(&path)?),
                _ => None,
            },
        };
        Self::resolve(flags, env, file.unwrap_or_default())
    }

    /// Flags over environment over file over defaults.
    #[allow(clippy::implicit_hasher)]
    pub fn resolve(
        flags: &ConnectionFlags,
        env: &HashMap<String, String>,
        file: FileConfig,
    ) -> Result<Self> {
        let var = |k: &str| env.get(k).filter(|v| !v.is_empty()).cloned();
        let storaged_url = flags
            .storaged
            .clone()
            .or_else(|| var("LAKE_STORAGED_URL"))
            .or(file.storaged_url)
            .unwrap_or_else(|| DEFAULT_STORAGED.to_owned());
        let catalogd_url = flags
            .catalogd
            .clone()
            .or_else(|| var("LAKE_CATALOGD_URL"))
            .or(file.catalogd_url)
            .unwrap_or_else(|| DEFAULT_CATALOGD.to_owned());
        let token = |flag: &Option<PathBuf>,
                     env_key: &str,
                     inline: Option<String>,
                     file_path: Option<PathBuf>|
         -> Result<Option<String>> {
            if let Some(path) = flag {
                return read_token(path).map(Some);
            }
            if let Some(t) = var(env_key) {
                return Ok(Some(t));
            }
            if let Some(t) = inline {
                return Ok(Some(t));
            }
            file_path.as_deref().map(read_token).transpose()
        };
        let ca_file = flags
            .ca_file
            .clone()
            .or_else(|| var("LAKE_CA_FILE").map(PathBuf::from))
            .or(file.ca_file);
        Ok(Self {
            ca_file,
            storaged_url: check_url("storaged URL", &storaged_url)?,
            catalogd_url: check_url("catalogd URL", &catalogd_url)?,
            storaged_token: token(
                &flags.storaged_token_file,
                "LAKE_STORAGED_TOKEN",
                file.storaged_token,
                file.storaged_token_file,
            )?,
            catalogd_token: token(
                &flags.catalogd_token_file,
                "LAKE_CATALOGD_TOKEN",
                file.catalogd_token,
                file.catalogd_token_file,
            )?,
        })
    }
}

fn read_file(path: &Path) -> Result<FileConfig> {
    let raw = std::fs::read_to_string(path).map_err(|e| LakeError::io(path.display(), e))?;
    toml::from_str(&raw)
        .map_err(|e| LakeError::Usage(format!("config file {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_environment_over_file_over_defaults() {
        let file = || FileConfig {
            storaged_url: Some("http://file:1".into()),
            catalogd_url: Some("http://file:2".into()),
            storaged_token: Some("file-token".into()),
            ..FileConfig::default()
        };
        let mut env = HashMap::new();
        let none = ConnectionFlags::default();
        let s = Settings::resolve(&none, &env, FileConfig::default()).unwrap();
        assert_eq!(s.storaged_url, DEFAULT_STORAGED);
        assert_eq!(s.catalogd_url, DEFAULT_CATALOGD);
        assert_eq!(s.storaged_token, None);

        let s = Settings::resolve(&none, &env, file()).unwrap();
        assert_eq!(s.storaged_url, "http://file:1");
        assert_eq!(s.storaged_token.as_deref(), Some("file-token"));

        env.insert("LAKE_STORAGED_URL".into(), "http://env:1/".into());
        env.insert("LAKE_STORAGED_TOKEN".into(), "env-token".into());
        let s = Settings::resolve(&none, &env, file()).unwrap();
        assert_eq!(s.storaged_url, "http://env:1");
        assert_eq!(s.catalogd_url, "http://file:2");
        assert_eq!(s.storaged_token.as_deref(), Some("env-token"));

        let dir = tempfile::tempdir().unwrap();
        let token_file = dir.path().join("t");
        std::fs::write(&token_file, "flag-token\n").unwrap();
        let flags = ConnectionFlags {
            storaged: Some("http://flag:1".into()),
            storaged_token_file: Some(token_file),
            ..ConnectionFlags::default()
        };
        let s = Settings::resolve(&flags, &env, file()).unwrap();
        assert_eq!(s.storaged_url, "http://flag:1");
        assert_eq!(s.storaged_token.as_deref(), Some("flag-token"));

        let with_ca = FileConfig {
            ca_file: Some("/file/ca.pem".into()),
            ..FileConfig::default()
        };
        let s = Settings::resolve(&none, &env, with_ca).unwrap();
        assert_eq!(s.ca_file, Some(PathBuf::from("/file/ca.pem")));
        env.insert("LAKE_CA_FILE".into(), "/env/ca.pem".into());
        let s = Settings::resolve(&none, &env, FileConfig::default()).unwrap();
        assert_eq!(s.ca_file, Some(PathBuf::from("/env/ca.pem")));
    }

    #[test]
    fn unknown_keys_and_bad_urls_are_usage_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "storaged = \"http://x\"\n").unwrap();
        let flags = ConnectionFlags {
            config: Some(path),
            ..ConnectionFlags::default()
        };
        let err = Settings::load(&flags, &HashMap::new()).unwrap_err();
        assert_eq!(err.exit_code(), 2, "{err}");
        assert!(err.to_string().contains("unknown field"), "{err}");

        let flags = ConnectionFlags {
            catalogd: Some("localhost:8102".into()),
            ..ConnectionFlags::default()
        };
        let err = Settings::resolve(&flags, &HashMap::new(), FileConfig::default()).unwrap_err();
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn the_default_file_lives_under_xdg_config_home() {
        let env: HashMap<String, String> = [("XDG_CONFIG_HOME".to_owned(), "/x".to_owned())].into();
        assert_eq!(
            default_config_path(&env).unwrap(),
            PathBuf::from("/x/lake/config.toml")
        );
        let env: HashMap<String, String> = [("HOME".to_owned(), "/h".to_owned())].into();
        assert_eq!(
            default_config_path(&env).unwrap(),
            PathBuf::from("/h/.config/lake/config.toml")
        );
    }
}
