//! TLS for both services (rustls with the `ring` provider, no OpenSSL): a server
//! certificate re-read on SIGHUP without a restart, and client configurations that trust
//! a private CA.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

pub use rustls::ClientConfig;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The certificate chain and private key of two PEM files, ready to serve.
fn certified_key(cert_file: &Path, key_file: &Path) -> Result<CertifiedKey, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_file)
        .map_err(|e| format!("cannot read {}: {e}", cert_file.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: not a PEM certificate chain: {e}", cert_file.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: holds no certificate", cert_file.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key_file)
        .map_err(|e| format!("{}: no PEM private key: {e}", key_file.display()))?;
    CertifiedKey::from_der(certs, key, &provider())
        .map_err(|e| format!("{} and {}: {e}", cert_file.display(), key_file.display()))
}

/// The server's certificate, swapped whole on [`ReloadableCert::reload`].
#[derive(Debug)]
pub struct ReloadableCert {
    cert_file: PathBuf,
    key_file: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
}

impl ReloadableCert {
    /// Loads the PEM `cert_file` (chain) and `key_file`; the error names the file at fault.
    pub fn load(cert_file: &Path, key_file: &Path) -> Result<Arc<Self>, String> {
        let key = certified_key(cert_file, key_file)?;
        Ok(Arc::new(Self {
            cert_file: cert_file.to_path_buf(),
            key_file: key_file.to_path_buf(),
            current: RwLock::new(Arc::new(key)),
        }))
    }

    /// Re-reads both files; on an error the certificate in use stays.
    pub fn reload(&self) -> Result<(), String> {
        let key = certified_key(&self.cert_file, &self.key_file)?;
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(key);
        Ok(())
    }

    /// A rustls server configuration that serves the current certificate.
    pub fn server_config(self: &Arc<Self>) -> Result<rustls::ServerConfig, String> {
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }

    /// Re-reads the certificate on every SIGHUP, logging the outcome. Runs until dropped.
    pub async fn reload_on_hangup(self: Arc<Self>) {
        let Ok(mut hangup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            return;
        };
        while hangup.recv().await.is_some() {
            match self.reload() {
                Ok(()) => {
                    tracing::info!(cert = %self.cert_file.display(), "tls certificate reloaded");
                }
                Err(error) => {
                    tracing::warn!(%error, "tls certificate refused; the previous one stays in use");
                }
            }
        }
    }
}

impl ResolvesServerCert for ReloadableCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone(),
        )
    }
}

/// The server configuration for `cert_file` and `key_file` when both are given (`None`
/// for plain HTTP), its certificate re-read on every SIGHUP. Call inside the runtime: it
/// spawns the reload task.
pub fn serve(
    cert_file: Option<&Path>,
    key_file: Option<&Path>,
) -> Result<Option<rustls::ServerConfig>, String> {
    let (Some(cert_file), Some(key_file)) = (cert_file, key_file) else {
        return Ok(None);
    };
    let cert = ReloadableCert::load(cert_file, key_file)?;
    let config = cert.server_config()?;
    tokio::spawn(cert.reload_on_hangup());
    Ok(Some(config))
}

/// A rustls client configuration that trusts the certificates of the PEM `ca_file` (a
/// private CA), or, without one, the public web roots.
pub fn client_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            for cert in CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?
            {
                let cert =
                    cert.map_err(|e| format!("{}: not a PEM certificate: {e}", path.display()))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
            }
            if roots.is_empty() {
                return Err(format!("{}: holds no certificate", path.display()));
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    Ok(rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth())
}
