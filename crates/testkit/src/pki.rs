//! Certificates made at test time (rcgen), for HTTPS tests.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};

/// A CA (its PEM certificate in `<dir>/<name>-ca.pem`) and a server certificate for
/// 127.0.0.1 and localhost signed by it (`<name>-cert.pem`, `<name>-key.pem`).
#[derive(Debug)]
pub struct Pki {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

pub fn pki(dir: &Path, name: &str) -> Pki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, format!("{name} test ca"));
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let params =
        CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
    let cert = params.signed_by(&key, &ca).unwrap();
    let out = Pki {
        ca: dir.join(format!("{name}-ca.pem")),
        cert: dir.join(format!("{name}-cert.pem")),
        key: dir.join(format!("{name}-key.pem")),
    };
    std::fs::write(&out.ca, ca.pem()).unwrap();
    std::fs::write(&out.cert, cert.pem()).unwrap();
    std::fs::write(&out.key, key.serialize_pem()).unwrap();
    out
}

impl Pki {
    /// `launch` serving HTTPS with this PKI's certificate (whichever service it is), and
    /// trusting its CA for readiness and [`crate::Proc::api`].
    pub fn serve(&self, launch: crate::Launch) -> crate::Launch {
        launch
            .env("STORAGED_TLS_CERT_FILE", &self.cert)
            .env("STORAGED_TLS_KEY_FILE", &self.key)
            .env("CATALOGD_TLS_CERT_FILE", &self.cert)
            .env("CATALOGD_TLS_KEY_FILE", &self.key)
            .https(&self.ca)
    }
}
