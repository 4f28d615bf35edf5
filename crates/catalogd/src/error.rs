//! The crate's one error type and its one mapping to HTTP.

use std::fmt;

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use service_kit::error_chain_fmt;

use crate::catalog::CatalogError;
use crate::store::StoreError;

/// Seconds a client is asked to wait before retrying a 503.
const RETRY_AFTER_SECONDS: &str = "1";

/// Everything a catalogd request can fail with.
#[derive(thiserror::Error)]
pub enum Error {
    /// The catalog refused or could not carry out the operation.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// Malformed JSON, path or query; nothing changed.
    #[error("{0}")]
    InvalidRequest(String),
    /// The body is larger than `max_body_size`; nothing changed.
    #[error("request body is larger than the limit of {limit} bytes")]
    PayloadTooLarge { limit: u64 },
    /// The body is not plain JSON (another Content-Type, or a Content-Encoding).
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// Missing or wrong bearer token.
    #[error("a valid bearer token is required")]
    Unauthorized,
    /// A valid credential without the scope the route needs.
    #[error("credential {credential:?} lacks the scope {needed:?} this request needs")]
    Forbidden {
        credential: String,
        needed: &'static str,
    },
    /// The credentials file cannot be used (start-up only).
    #[error("credentials: {0}")]
    Credentials(String),
    /// Changes after the requested position were forgotten (older than the feed keeps).
    #[error("changes after {after} are no longer kept (the feed starts after {horizon}); start again from the current state")]
    ChangesExpired { after: u64, horizon: u64 },
    /// The index is still being rebuilt from storaged.
    #[error("catalogd is starting: the index is still being rebuilt from storaged")]
    NotReady,
    /// Start-up or serving failed outside a request.
    #[error("i/o error while {op}")]
    Io {
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// A manifest in the index could not be encoded (never expected: it was encoded once
    /// already to be stored).
    #[error("encoding a manifest failed")]
    Encode(#[source] manifest_codec::EncodeError),
}

impl Error {
    /// Wraps an I/O error with what was being done.
    pub fn io(op: &'static str, source: std::io::Error) -> Self {
        Self::Io { op, source }
    }

    /// The stable machine-readable code in the JSON body.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Catalog(CatalogError::Invalid(_)) | Self::InvalidRequest(_) => "invalid_request",
            Self::Catalog(CatalogError::FingerprintConflict { .. }) => "fingerprint_conflict",
            Self::Catalog(
                CatalogError::NotFound { .. }
                | CatalogError::IdNotFound { .. }
                | CatalogError::NoVersion { .. }
                | CatalogError::NotAt { .. }
                | CatalogError::AlreadyPurged,
            ) => "not_found",
            Self::Catalog(CatalogError::NotDeleted { .. }) => "not_deleted",
            Self::Catalog(CatalogError::IdempotencyKeyReused { .. }) => "idempotency_key_reused",
            Self::Catalog(CatalogError::ReplayGone { .. }) => "idempotency_key_expired",
            Self::ChangesExpired { .. } => "changes_expired",
            Self::Catalog(CatalogError::Storage(_)) => "storage_unavailable",
            Self::Catalog(CatalogError::ObjectsInvalid { .. }) => "objects_invalid",
            Self::Catalog(CatalogError::Verify(_)) => "verify_unavailable",
            Self::Catalog(CatalogError::Contended { .. }) => "contended",
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::UnsupportedMediaType(_) => "unsupported_media_type",
            Self::NotReady => "not_ready",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden { .. } => "forbidden",
            Self::Catalog(CatalogError::Encode { .. })
            | Self::Encode(_)
            | Self::Credentials(_)
            | Self::Io { .. } => "internal",
        }
    }

    /// What the client is told: the message for 4xx, a summary without internals for 5xx.
    fn public_message(&self) -> String {
        match self {
            Self::Catalog(CatalogError::Storage(e)) if e.is_certainly_not_written() => {
                "storaged did not accept the write; nothing was changed, retry later".to_owned()
            }
            Self::Catalog(CatalogError::Storage(_)) => {
                "storaged did not confirm the write in time; it may or may not have been \
                 stored, read the dataset before retrying"
                    .to_owned()
            }
            Self::Catalog(CatalogError::Contended { name, attempts }) => format!(
                "other catalogd processes changed {name} during each of {attempts} attempts; \
                 nothing was changed by this request, retry later"
            ),
            Self::Catalog(CatalogError::Encode { .. })
            | Self::Encode(_)
            | Self::Credentials(_)
            | Self::Io { .. } => "internal error; see the server log".to_owned(),
            _ => self.to_string(),
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        error_chain_fmt(self, f)
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        Self::Catalog(CatalogError::Storage(e))
    }
}

impl ResponseError for Error {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Catalog(CatalogError::Invalid(_)) | Self::InvalidRequest(_) => {
                StatusCode::BAD_REQUEST
            }
            Self::Catalog(
                CatalogError::FingerprintConflict { .. } | CatalogError::NotDeleted { .. },
            ) => StatusCode::CONFLICT,
            Self::Catalog(
                CatalogError::NotFound { .. }
                | CatalogError::IdNotFound { .. }
                | CatalogError::NoVersion { .. }
                | CatalogError::NotAt { .. }
                | CatalogError::AlreadyPurged,
            ) => StatusCode::NOT_FOUND,
            Self::Catalog(
                CatalogError::IdempotencyKeyReused { .. } | CatalogError::ObjectsInvalid { .. },
            ) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Catalog(CatalogError::ReplayGone { .. }) | Self::ChangesExpired { .. } => {
                StatusCode::GONE
            }
            Self::Catalog(
                CatalogError::Storage(_) | CatalogError::Verify(_) | CatalogError::Contended { .. },
            )
            | Self::NotReady => StatusCode::SERVICE_UNAVAILABLE,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden { .. } => StatusCode::FORBIDDEN,
            Self::Catalog(CatalogError::Encode { .. })
            | Self::Encode(_)
            | Self::Credentials(_)
            | Self::Io { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        match self {
            Self::Catalog(CatalogError::Storage(_) | CatalogError::Verify(_)) => {
                tracing::warn!(error = ?self, "storaged call failed");
            }
            Self::Catalog(CatalogError::Encode { .. })
            | Self::Encode(_)
            | Self::Credentials(_)
            | Self::Io { .. } => {
                tracing::error!(error = ?self, "request failed");
            }
            _ => {}
        }
        let mut body =
            serde_json::json!({ "error": self.code(), "message": self.public_message() });
        if let Self::Catalog(CatalogError::FingerprintConflict {
            name,
            existing,
            requested,
        }) = self
        {
            body["name"] = name.as_str().into();
            body["existing_fingerprint"] = existing.as_str().into();
            body["requested_fingerprint"] = requested.as_str().into();
        }
        if let Self::Catalog(CatalogError::ObjectsInvalid { offenders, count }) = self {
            body["count"] = (*count).into();
            body["offenders"] = offenders
                .iter()
                .map(|o| {
                    serde_json::json!({
                        "key": o.key.as_str(),
                        "problem": o.problem.as_str(),
                        "expected": o.expected,
                        "actual": o.actual,
                    })
                })
                .collect();
        }
        let mut response = HttpResponse::build(status);
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response.insert_header((header::RETRY_AFTER, RETRY_AFTER_SECONDS));
        }
        if matches!(self, Self::Unauthorized) {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        if matches!(self, Self::PayloadTooLarge { .. }) {
            // The rest of the body is never read; the connection cannot be reused.
            response.insert_header((header::CONNECTION, "close"));
        }
        response.json(body)
    }
}
