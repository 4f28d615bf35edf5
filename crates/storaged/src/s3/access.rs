//! Who may do what on the S3 face: the same credentials and scopes as the native API.
//!
//! s3s checks the SigV4 signature with the secret [`CredentialsAuth`] finds for the access
//! key; [`CredentialsAccess`] then refuses unsigned requests and leaves the caller's
//! [`Grant`] in the request, which each operation checks against the native keys it
//! touches (bucket `b` + key `k` = native `b/k`).

use std::sync::Arc;

use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::{S3Auth, SecretKey};
use s3s::{s3_error, S3Request, S3Result};
use service_kit::credentials::CredentialStore;

use super::serve::Operation;
use super::S3Face;
use crate::http::auth::{self, Access, Caller, StoragedScope, Visibility};

/// The secrets of the configured S3 key pairs.
pub(super) struct CredentialsAuth(pub(super) Arc<CredentialStore<StoragedScope>>);

#[async_trait::async_trait]
impl S3Auth for CredentialsAuth {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        let credentials = self.0.current();
        if let Some(secret) = credentials
            .by_access_key(access_key)
            .and_then(|c| c.secret_access_key())
        {
            return Ok(SecretKey::from(secret.expose()));
        }
        tracing::info!(access_key, "s3: refused: unknown access key");
        Err(s3_error!(
            InvalidAccessKeyId,
            "the access key id is not in storaged's credentials"
        ))
    }
}

/// What a signed request's credential may do, for the operation to check.
#[derive(Debug, Clone)]
pub(super) struct Grant {
    name: String,
    scopes: Vec<StoragedScope>,
}

/// Turns unsigned requests away and records the credential of signed ones.
pub(super) struct CredentialsAccess(pub(super) Arc<CredentialStore<StoragedScope>>);

#[async_trait::async_trait]
impl S3Access for CredentialsAccess {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let name = cx.s3_op().name().to_owned();
        if let Some(slot) = cx.extensions_mut().get::<Operation>() {
            slot.set(&name);
        }
        let Some(access_key) = cx.credentials().map(|c| c.access_key.clone()) else {
            tracing::info!(method = %cx.method(), uri = %cx.uri(), "s3: refused: unsigned request");
            return Err(s3_error!(
                AccessDenied,
                "credentials are configured: sign the request (SigV4) with an access key"
            ));
        };
        let credentials = self.0.current();
        let Some(credential) = credentials.by_access_key(&access_key) else {
            return Err(s3_error!(InvalidAccessKeyId));
        };
        let grant = Grant {
            name: credential.name.clone(),
            scopes: credential.scopes.clone(),
        };
        cx.extensions_mut().insert(grant);
        Ok(())
    }
}

impl S3Face {
    /// The grant of `req`: its credential's, or everything when no credentials are
    /// configured. A signed-mode request always carries one (see [`CredentialsAccess`]).
    fn grant<'r, T>(&self, req: &'r S3Request<T>) -> S3Result<Option<&'r Grant>> {
        match req.extensions.get::<Grant>() {
            Some(grant) => Ok(Some(grant)),
            None if self.credentials.current().is_empty() => Ok(None),
            None => Err(s3_error!(AccessDenied, "the request is not signed")),
        }
    }

    /// Checks that `req`'s caller may do `access` (a native key or prefix); the caller,
    /// for the audit log.
    pub(super) fn authorize<T>(&self, req: &S3Request<T>, access: Access<'_>) -> S3Result<Caller> {
        let Some(grant) = self.grant(req)? else {
            return Ok(Caller::Anonymous);
        };
        let outcome = if auth::allows(&grant.scopes, access) {
            "allowed"
        } else {
            "forbidden"
        };
        self.metrics
            .credential_requests
            .with_label_values(&[grant.name.as_str(), outcome])
            .inc();
        if outcome == "forbidden" {
            let needed = access.needed();
            tracing::info!(credential = %grant.name, scope_needed = %needed, "s3: refused: scope missing");
            return Err(s3_error!(
                AccessDenied,
                "credential {:?} lacks the scope: {needed}",
                grant.name
            ));
        }
        Ok(Caller::Named(grant.name.clone()))
    }

    /// Checks that `req`'s caller reaches anything in `bucket`.
    pub(super) fn authorize_bucket<T>(&self, req: &S3Request<T>, bucket: &str) -> S3Result<()> {
        match self.grant(req)? {
            Some(grant) if !auth::reaches_bucket(&grant.scopes, bucket) => Err(s3_error!(
                AccessDenied,
                "credential {:?} has no scope in bucket {bucket:?}",
                grant.name
            )),
            _ => Ok(()),
        }
    }

    /// What `req`'s listings may show.
    pub(super) fn visibility<T>(&self, req: &S3Request<T>) -> S3Result<Visibility> {
        Ok(match self.grant(req)? {
            Some(grant) if !grant.scopes.contains(&StoragedScope::Admin) => {
                Visibility::Readable(grant.scopes.clone())
            }
            _ => Visibility::All,
        })
    }

    /// Whether `req`'s caller reaches anything in `bucket` (for ListBuckets).
    pub(super) fn sees_bucket<T>(&self, req: &S3Request<T>, bucket: &str) -> bool {
        match self.grant(req) {
            Ok(Some(grant)) => auth::reaches_bucket(&grant.scopes, bucket),
            Ok(None) => true,
            Err(_) => false,
        }
    }
}
