//! Who may do what in catalogd (docs/operations.md, "Credentials"): `read` (GET: datasets,
//! lists, manifests), `register` (POST; includes read), `delete` (DELETE; includes read),
//! `metrics` (`/metrics`), `admin` (everything). Probes and the API document are open.

use actix_web::http::Method;
use service_kit::credentials::Scope;

/// One of catalogd's scopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatalogdScope {
    /// Look datasets up and list them.
    Read,
    /// Register datasets (and read).
    Register,
    /// Delete datasets (and read).
    Delete,
    /// `/metrics`.
    Metrics,
    /// Everything.
    Admin,
}

impl Scope for CatalogdScope {
    fn parse(text: &str) -> Result<Self, String> {
        match text {
            "read" => Ok(Self::Read),
            "register" => Ok(Self::Register),
            "delete" => Ok(Self::Delete),
            "metrics" => Ok(Self::Metrics),
            "admin" => Ok(Self::Admin),
            _ => Err(
                "unknown scope (catalogd has read, register, delete, metrics, admin)".to_owned(),
            ),
        }
    }

    fn admin() -> Self {
        Self::Admin
    }
}

impl CatalogdScope {
    /// The scope's name, as written in a credentials file.
    pub fn name(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Register => "register",
            Self::Delete => "delete",
            Self::Metrics => "metrics",
            Self::Admin => "admin",
        }
    }
}

/// The scope a request needs, or `None` for the routes anyone may call.
pub fn needed(method: &Method, path: &str, metrics_open: bool) -> Option<CatalogdScope> {
    match path {
        "/healthz" | "/readyz" | "/openapi.json" => None,
        "/metrics" if metrics_open => None,
        "/metrics" => Some(CatalogdScope::Metrics),
        _ if *method == Method::POST => Some(CatalogdScope::Register),
        _ if *method == Method::DELETE => Some(CatalogdScope::Delete),
        _ => Some(CatalogdScope::Read),
    }
}

/// Whether `scopes` include `needed` (register and delete include read).
pub fn allows(scopes: &[CatalogdScope], needed: CatalogdScope) -> bool {
    scopes.iter().any(|&scope| {
        scope == CatalogdScope::Admin
            || scope == needed
            || (needed == CatalogdScope::Read
                && matches!(scope, CatalogdScope::Register | CatalogdScope::Delete))
    })
}

/// The credential that made a request, kept in its extensions for the audit log.
#[derive(Debug, Clone)]
pub struct CallerName(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_need_their_scope_and_register_or_delete_include_read() {
        use CatalogdScope::{Admin, Delete, Metrics, Read, Register};
        assert_eq!(needed(&Method::GET, "/readyz", false), None);
        assert_eq!(needed(&Method::GET, "/metrics", true), None);
        assert_eq!(needed(&Method::GET, "/metrics", false), Some(Metrics));
        assert_eq!(needed(&Method::POST, "/v1/datasets", false), Some(Register));
        assert_eq!(
            needed(&Method::DELETE, "/v1/datasets/a", false),
            Some(Delete)
        );
        assert_eq!(needed(&Method::GET, "/v1/datasets/a", false), Some(Read));
        assert!(allows(&[Register], Read) && allows(&[Delete], Read));
        assert!(!allows(&[Read], Register) && !allows(&[Register], Delete));
        assert!(!allows(&[Read, Register, Delete], Metrics));
        assert!(allows(&[Admin], Metrics));
        for bad in ["Read", "write", "read:*", ""] {
            assert!(CatalogdScope::parse(bad).is_err(), "{bad:?}");
        }
    }
}
