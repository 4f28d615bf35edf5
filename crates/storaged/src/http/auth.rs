//! Who may do what: storaged's scopes over key prefixes (docs/operations.md, "Credentials").
//!
//! - `read:<prefix>` reads (GET, HEAD) keys under the prefix and lists prefixes under it;
//!   `write:<prefix>` also writes (PUT, DELETE); `admin` does everything; `metrics` reads
//!   `/metrics`. `<prefix>` is a key prefix, `*` every key.
//! - Keys that begin with `_` (service areas such as `_catalog/`) are covered only by a
//!   prefix that itself begins with `_`, or by `admin`: `write:*` cannot touch the catalog.
//! - A listing of prefix P needs a scope whose prefix is a prefix of P, or `*`; what it
//!   returns is only what the caller may read (so a `*` listing leaves out `_` keys).

use service_kit::credentials::{Authentication, Credential, Scope};

/// A key prefix a scope covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prefix {
    /// `*`: every key that does not begin with `_`.
    Any,
    /// Keys that begin with this (never empty).
    Keys(String),
}

impl Prefix {
    fn covers_key(&self, key: &str) -> bool {
        match self {
            Self::Any => !key.starts_with('_'),
            Self::Keys(prefix) => key.starts_with(prefix.as_str()),
        }
    }

    fn covers_listing(&self, prefix: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Keys(p) => prefix.starts_with(p.as_str()),
        }
    }
}

/// One of storaged's scopes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoragedScope {
    /// GET, HEAD and LIST under the prefix.
    Read(Prefix),
    /// PUT and DELETE under the prefix, and everything `Read` allows.
    Write(Prefix),
    /// `/metrics`.
    Metrics,
    /// Everything.
    Admin,
}

impl Scope for StoragedScope {
    fn parse(text: &str) -> Result<Self, String> {
        let prefix = |p: &str| match p {
            "*" => Ok(Prefix::Any),
            "" => Err("the prefix is empty (write * for every key)".to_owned()),
            p => Ok(Prefix::Keys(p.to_owned())),
        };
        match text.split_once(':') {
            None if text == "admin" => Ok(Self::Admin),
            None if text == "metrics" => Ok(Self::Metrics),
            Some(("read", p)) => Ok(Self::Read(prefix(p)?)),
            Some(("write", p)) => Ok(Self::Write(prefix(p)?)),
            _ => Err(
                "unknown scope (storaged has read:<prefix>, write:<prefix>, metrics, admin)"
                    .to_owned(),
            ),
        }
    }

    fn admin() -> Self {
        Self::Admin
    }
}

/// What a request does.
#[derive(Debug, Clone, Copy)]
pub enum Access<'a> {
    /// GET or HEAD of a key.
    Read(&'a str),
    /// PUT or DELETE of a key.
    Write(&'a str),
    /// A listing of a prefix.
    List(&'a str),
    /// `/metrics`.
    Metrics,
}

impl Access<'_> {
    /// The scope that would allow this access, for the 403 message.
    pub fn needed(&self) -> String {
        match self {
            Self::Read(key) => format!("read or write on a prefix of {key:?}"),
            Self::Write(key) => format!("write on a prefix of {key:?}"),
            Self::List(prefix) => format!("read or write on a prefix of {prefix:?}, or on *"),
            Self::Metrics => "metrics".to_owned(),
        }
    }
}

/// Whether `scopes` allow `access`.
pub fn allows(scopes: &[StoragedScope], access: Access<'_>) -> bool {
    scopes.iter().any(|scope| match (scope, access) {
        (StoragedScope::Admin, _) | (StoragedScope::Metrics, Access::Metrics) => true,
        (StoragedScope::Read(p) | StoragedScope::Write(p), Access::Read(key))
        | (StoragedScope::Write(p), Access::Write(key)) => p.covers_key(key),
        (StoragedScope::Read(p) | StoragedScope::Write(p), Access::List(prefix)) => {
            p.covers_listing(prefix)
        }
        _ => false,
    })
}

/// Whether `scopes` reach anything in the S3 bucket `bucket` (native prefix `bucket/`):
/// enough to see that it exists, not to read its keys.
pub fn reaches_bucket(scopes: &[StoragedScope], bucket: &str) -> bool {
    let root = format!("{bucket}/");
    scopes.iter().any(|scope| match scope {
        StoragedScope::Admin => true,
        StoragedScope::Metrics => false,
        StoragedScope::Read(p) | StoragedScope::Write(p) => match p {
            Prefix::Any => !bucket.starts_with('_'),
            Prefix::Keys(p) => p.starts_with(&root) || root.starts_with(p.as_str()),
        },
    })
}

/// Who made a request, for the audit log.
#[derive(Debug, Clone)]
pub enum Caller {
    /// No credentials are configured.
    Anonymous,
    /// The credential of this name.
    Named(String),
}

impl Caller {
    /// The name logged and counted (`-` when credentials are off).
    pub fn name(&self) -> &str {
        match self {
            Self::Anonymous => "-",
            Self::Named(name) => name,
        }
    }
}

/// What a listing shows the caller: everything (no credentials, or `admin`), or only keys
/// the caller may read.
#[derive(Debug, Clone)]
pub enum Visibility {
    /// Every key.
    All,
    /// Only keys these scopes allow to read.
    Readable(Vec<StoragedScope>),
}

impl Visibility {
    /// The visibility of `authenticated`'s listings.
    pub fn of(authenticated: &Authentication<'_, StoragedScope>) -> Self {
        match authenticated {
            Authentication::Known(c) if !c.scopes.contains(&StoragedScope::Admin) => {
                Self::Readable(c.scopes.clone())
            }
            _ => Self::All,
        }
    }

    /// Whether the caller sees `key`.
    pub fn shows(&self, key: &str) -> bool {
        match self {
            Self::All => true,
            Self::Readable(scopes) => allows(scopes, Access::Read(key)),
        }
    }
}

/// The caller a known credential stands for.
pub fn caller(credential: &Credential<StoragedScope>) -> Caller {
    Caller::Named(credential.name.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scopes(list: &[&str]) -> Vec<StoragedScope> {
        list.iter()
            .map(|s| StoragedScope::parse(s).unwrap())
            .collect()
    }

    #[test]
    fn prefixes_and_the_reserved_underscore_area() {
        let producer = scopes(&["write:lake/"]);
        assert!(allows(&producer, Access::Write("lake/orders/p0")));
        assert!(allows(&producer, Access::Read("lake/orders/p0")));
        assert!(!allows(&producer, Access::Write("lakes/x")));
        assert!(!allows(&producer, Access::Read("other/x")));
        assert!(allows(&producer, Access::List("lake/orders/")));
        assert!(!allows(&producer, Access::List("lake")));
        assert!(!allows(&producer, Access::List("")));

        let everything = scopes(&["write:*"]);
        assert!(allows(&everything, Access::Write("lake/x")));
        assert!(!allows(
            &everything,
            Access::Write("_catalog/manifests/a.parquet")
        ));
        assert!(!allows(
            &everything,
            Access::Read("_catalog/checkpoint/catalog.parquet")
        ));
        assert!(allows(&everything, Access::List("")));
        assert!(allows(&everything, Access::List("_catalog/")));

        let catalogd = scopes(&["write:_catalog/", "read:*"]);
        assert!(allows(
            &catalogd,
            Access::Write("_catalog/manifests/a.parquet")
        ));
        assert!(allows(&catalogd, Access::Read("lake/x")));
        assert!(!allows(&catalogd, Access::Write("lake/x")));
        assert!(!allows(&catalogd, Access::Metrics));

        assert!(allows(&scopes(&["admin"]), Access::Write("_x")));
        assert!(allows(&scopes(&["metrics"]), Access::Metrics));
        assert!(!allows(&scopes(&["metrics"]), Access::Read("a")));
    }

    #[test]
    fn a_star_listing_leaves_out_underscore_keys() {
        let visible = Visibility::Readable(scopes(&["read:*"]));
        assert!(visible.shows("lake/a"));
        assert!(!visible.shows("_catalog/manifests/a.parquet"));
        let both = Visibility::Readable(scopes(&["read:*", "read:_catalog/"]));
        assert!(both.shows("_catalog/manifests/a.parquet"));
        assert!(!both.shows("_other/x"));
    }

    #[test]
    fn a_scope_reaches_the_buckets_its_prefix_touches() {
        let orders = scopes(&["read:lake/orders/"]);
        assert!(reaches_bucket(&orders, "lake"));
        assert!(!reaches_bucket(&orders, "lakes"));
        assert!(reaches_bucket(&scopes(&["write:la"]), "lake"));
        assert!(reaches_bucket(&scopes(&["read:*"]), "other"));
        assert!(!reaches_bucket(&scopes(&["metrics"]), "lake"));
    }

    #[test]
    fn bad_scopes_are_refused() {
        for bad in ["read:", "write", "delete:x", "Admin", "read", ""] {
            assert!(StoragedScope::parse(bad).is_err(), "{bad:?}");
        }
    }
}
