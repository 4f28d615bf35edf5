//! Scoped credentials, shared by both services: who may do what, loaded from a TOML file
//! that holds no secret (`token_sha256`) or points at one (`token_file`), and re-read when
//! it changes or on SIGHUP without a restart.
//!
//! ```toml
//! [[credential]]
//! name = "producer"
//! token_sha256 = "<hex sha-256 of the bearer token>"
//! access_key_id = "AKLAKEPRODUCER"          # optional: an S3 key pair (storaged's S3 face)
//! secret_access_key_file = "producer.secret" # or secret_access_key = "..."
//! scopes = ["write:lake/"]
//! ```
//!
//! A credential has a bearer token, an S3 key pair, or both. SigV4 needs the S3 secret
//! itself (not a hash) to check a signature, so it is kept in memory as a [`crate::Secret`].
//!
//! Each service parses the scope strings into its own scope type ([`Scope`]); a file with
//! an unknown scope, a missing secret or a duplicate name is refused as a whole, naming the
//! entry at fault.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use serde::Deserialize;
use sha2::{Digest, Sha256};

/// A service's scope: parsed from the strings of a credential's `scopes`.
pub trait Scope: Sized + fmt::Debug + Clone + Send + Sync + 'static {
    /// Parses one scope string, or says what is wrong with it.
    fn parse(text: &str) -> Result<Self, String>;

    /// The scope that allows everything (the legacy `auth_token`).
    fn admin() -> Self;
}

/// One credential: a name (logged, never the secret), the SHA-256 of its bearer token,
/// and what it may do.
#[derive(Clone)]
pub struct Credential<S> {
    /// Logged and counted; never secret.
    pub name: String,
    token_sha256: Option<[u8; 32]>,
    s3: Option<S3Key>,
    /// What the holder may do.
    pub scopes: Vec<S>,
}

/// An S3 access key id and its secret.
#[derive(Clone)]
struct S3Key {
    access_key_id: String,
    secret: crate::Secret,
}

impl<S> Credential<S> {
    /// The S3 access key id, if the credential has a key pair.
    pub fn access_key_id(&self) -> Option<&str> {
        self.s3.as_ref().map(|k| k.access_key_id.as_str())
    }

    /// The S3 secret access key, if the credential has a key pair.
    pub fn secret_access_key(&self) -> Option<&crate::Secret> {
        self.s3.as_ref().map(|k| &k.secret)
    }
}

impl<S: fmt::Debug> fmt::Debug for Credential<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("name", &self.name)
            .field("access_key_id", &self.access_key_id())
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

/// A set of credentials, as loaded at one moment.
#[derive(Clone)]
pub struct Credentials<S> {
    entries: Vec<Credential<S>>,
}

impl<S: fmt::Debug> fmt::Debug for Credentials<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.entries).finish()
    }
}

/// What presenting a bearer token proved.
#[derive(Debug, Clone, Copy)]
pub enum Authentication<'a, S> {
    /// No credentials are configured: everything is open.
    Open,
    /// The token belongs to this credential.
    Known(&'a Credential<S>),
    /// No token, or one that matches no credential.
    Unknown,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileFormat {
    #[serde(default)]
    credential: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    name: String,
    token_sha256: Option<String>,
    token_file: Option<PathBuf>,
    access_key_id: Option<String>,
    secret_access_key: Option<String>,
    secret_access_key_file: Option<PathBuf>,
    #[serde(default)]
    scopes: Vec<String>,
}

/// The content of a secret file (trailing whitespace trimmed), never empty.
fn read_secret(at: &str, path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{at}: cannot read {}: {e}", path.display()))?;
    let text = text.trim_end();
    if text.is_empty() {
        return Err(format!("{at}: {} is empty", path.display()));
    }
    Ok(text.to_owned())
}

/// The hex SHA-256 of `token` (what a credentials file's `token_sha256` holds).
pub fn token_sha256_hex(token: &str) -> String {
    sha256_hex(token.as_bytes())
}

/// The lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    Sha256::digest(bytes)
        .iter()
        .fold(String::with_capacity(64), |mut hex, b| {
            let _ = write!(hex, "{b:02x}");
            hex
        })
}

fn parse_hex32(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut out = [0; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

impl<S: Scope> Credentials<S> {
    /// No credentials: every request is allowed.
    pub fn none() -> Self {
        Self {
            entries: Vec::new(),
        }
    }

    /// Whether any credential is configured (if not, everything is open).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The credentials of `file` (TOML), plus the legacy `auth_token` as one `admin`
    /// credential named `auth_token`. `token_file` paths are relative to the file's
    /// directory; their content has trailing whitespace trimmed.
    pub fn load(file: Option<&Path>, auth_token: Option<&str>) -> Result<Self, String> {
        let mut entries = Vec::new();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            entries = Self::parse(&text, path.parent().unwrap_or(Path::new(".")))
                .map_err(|e| format!("{}: {e}", path.display()))?;
        }
        if let Some(token) = auth_token {
            if entries
                .iter()
                .any(|c: &Credential<S>| c.name == "auth_token")
            {
                return Err("a credential is named auth_token, as the legacy auth_token is".into());
            }
            entries.push(Credential {
                name: "auth_token".into(),
                token_sha256: Some(Sha256::digest(token.as_bytes()).into()),
                s3: None,
                scopes: vec![S::admin()],
            });
        }
        Ok(Self { entries })
    }

    fn parse(text: &str, base: &Path) -> Result<Vec<Credential<S>>, String> {
        let file: FileFormat = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut out: Vec<Credential<S>> = Vec::with_capacity(file.credential.len());
        for (i, entry) in file.credential.into_iter().enumerate() {
            let at = format!("credential {i} ({:?})", entry.name);
            if entry.name.is_empty() {
                return Err(format!("credential {i}: the name is empty"));
            }
            if out.iter().any(|c| c.name == entry.name) {
                return Err(format!("{at}: the name is used twice"));
            }
            let token_sha256 = match (&entry.token_sha256, &entry.token_file) {
                (Some(hex), None) => {
                    Some(parse_hex32(&hex.to_ascii_lowercase()).ok_or_else(|| {
                        format!(
                            "{at}: token_sha256 must be 64 hex digits (the SHA-256 of the token)"
                        )
                    })?)
                }
                (None, Some(path)) => {
                    let token = read_secret(&at, &base.join(path))?;
                    Some(Sha256::digest(token.as_bytes()).into())
                }
                (Some(_), Some(_)) => {
                    return Err(format!("{at}: give token_sha256 or token_file, not both"))
                }
                (None, None) => None,
            };
            let s3 = Self::s3_key(&at, &entry, base)?;
            if let Some(key) = &s3 {
                if out
                    .iter()
                    .any(|c| c.access_key_id() == Some(&key.access_key_id))
                {
                    return Err(format!("{at}: access_key_id is used twice"));
                }
            }
            if token_sha256.is_none() && s3.is_none() {
                return Err(format!(
                    "{at}: needs a secret (token_sha256 or token_file, or an S3 key pair)"
                ));
            }
            if entry.scopes.is_empty() {
                return Err(format!("{at}: has no scopes"));
            }
            let scopes = entry
                .scopes
                .iter()
                .map(|s| S::parse(s).map_err(|e| format!("{at}: scope {s:?}: {e}")))
                .collect::<Result<Vec<S>, String>>()?;
            out.push(Credential {
                name: entry.name,
                token_sha256,
                s3,
                scopes,
            });
        }
        Ok(out)
    }

    fn s3_key(at: &str, entry: &Entry, base: &Path) -> Result<Option<S3Key>, String> {
        let secret = match (&entry.secret_access_key, &entry.secret_access_key_file) {
            (Some(secret), None) if secret.is_empty() => {
                return Err(format!("{at}: secret_access_key is empty"))
            }
            (Some(secret), None) => Some(secret.clone()),
            (None, Some(path)) => Some(read_secret(at, &base.join(path))?),
            (Some(_), Some(_)) => {
                return Err(format!(
                    "{at}: give secret_access_key or secret_access_key_file, not both"
                ))
            }
            (None, None) => None,
        };
        match (&entry.access_key_id, secret) {
            (Some(id), Some(secret)) => {
                let valid = !id.is_empty()
                    && id.len() <= 128
                    && id
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
                if !valid {
                    return Err(format!(
                        "{at}: access_key_id must be 1 to 128 letters, digits, '-', '_' or '.'"
                    ));
                }
                Ok(Some(S3Key {
                    access_key_id: id.clone(),
                    secret: crate::Secret::new(secret),
                }))
            }
            (Some(_), None) => Err(format!(
                "{at}: access_key_id needs secret_access_key or secret_access_key_file"
            )),
            (None, Some(_)) => Err(format!("{at}: a secret access key needs its access_key_id")),
            (None, None) => Ok(None),
        }
    }

    /// The credential whose S3 access key id is `access_key_id`.
    pub fn by_access_key(&self, access_key_id: &str) -> Option<&Credential<S>> {
        self.entries
            .iter()
            .find(|c| c.access_key_id() == Some(access_key_id))
    }

    /// Who presents `authorization` (an `Authorization` header value, `Bearer <token>`
    /// with the scheme case-insensitive, RFC 9110 §11.1): the token's SHA-256 is compared
    /// with every credential's in constant time.
    pub fn authenticate(&self, authorization: Option<&str>) -> Authentication<'_, S> {
        use subtle::ConstantTimeEq;
        if self.entries.is_empty() {
            return Authentication::Open;
        }
        let Some(token) = authorization
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token)
        else {
            return Authentication::Unknown;
        };
        let presented: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found = None;
        for entry in &self.entries {
            if let Some(hash) = &entry.token_sha256 {
                if bool::from(hash.ct_eq(&presented)) {
                    found = Some(entry);
                }
            }
        }
        found.map_or(Authentication::Unknown, Authentication::Known)
    }
}

/// The credentials in force, swapped whole when the file changes.
#[derive(Debug)]
pub struct CredentialStore<S> {
    current: RwLock<Arc<Credentials<S>>>,
    file: Option<PathBuf>,
    auth_token: Option<crate::Secret>,
}

/// What identifies one version of a file on disk (a rewrite in place changes the time or
/// length; a replacement by rename changes the inode).
fn stamp(path: &Path) -> Option<(SystemTime, u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len(), meta.ino()))
}

impl<S: Scope> CredentialStore<S> {
    /// Loads `file` (if any) and the legacy `auth_token`; an error names what is wrong.
    pub fn open(file: Option<PathBuf>, auth_token: Option<crate::Secret>) -> Result<Self, String> {
        let loaded = Credentials::load(
            file.as_deref(),
            auth_token.as_ref().map(crate::Secret::expose),
        )?;
        Ok(Self {
            current: RwLock::new(Arc::new(loaded)),
            file,
            auth_token,
        })
    }

    /// The credentials in force now.
    pub fn current(&self) -> Arc<Credentials<S>> {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Re-reads the file. A broken file keeps the credentials in force and says why.
    pub fn reload(&self) -> Result<usize, String> {
        let loaded = Credentials::load(
            self.file.as_deref(),
            self.auth_token.as_ref().map(crate::Secret::expose),
        )?;
        let count = loaded.entries.len();
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(loaded);
        Ok(count)
    }

    /// Re-reads the file whenever it changes on disk (checked every `every`) and on
    /// SIGHUP; logs each reload and each refusal. Runs until dropped.
    pub async fn watch(self: Arc<Self>, every: Duration) {
        let Some(path) = self.file.clone() else {
            return;
        };
        let mut hangup =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        let mut seen = stamp(&path);
        loop {
            let by_signal = if let Some(signal) = hangup.as_mut() {
                tokio::select! {
                    _ = signal.recv() => true,
                    () = tokio::time::sleep(every) => false,
                }
            } else {
                tokio::time::sleep(every).await;
                false
            };
            let now = stamp(&path);
            if !by_signal && now == seen {
                continue;
            }
            seen = now;
            match self.reload() {
                Ok(count) => {
                    tracing::info!(file = %path.display(), credentials = count, by_signal, "credentials reloaded");
                }
                Err(error) => {
                    tracing::warn!(file = %path.display(), %error, "credentials file refused; the previous credentials stay in force");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
