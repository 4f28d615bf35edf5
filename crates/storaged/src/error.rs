//! The crate's one error type and its one mapping to HTTP.

use std::fmt;
use std::time::Duration;

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use manifest_codec::KeyError;
use service_kit::error_chain_fmt;

use crate::backend::{BodyError, StorageError};

/// Everything a storaged request can fail with.
#[derive(thiserror::Error)]
pub enum Error {
    // ---- the request is wrong ----
    /// The key breaks a key rule (docs/contracts.md, "Object keys").
    #[error("invalid key: {0}")]
    InvalidKey(#[from] KeyError),
    /// A malformed query parameter, header or continuation token.
    #[error("{0}")]
    InvalidRequest(String),
    /// Missing or wrong bearer token.
    #[error("missing or invalid bearer token")]
    Unauthorized,
    /// A valid credential without the scope the request needs.
    #[error("credential {credential:?} lacks the scope this request needs: {needed}")]
    Forbidden { credential: String, needed: String },
    /// No object under this key.
    #[error("no object with key {key:?}")]
    NotFound { key: String },
    /// `If-Match` / `If-None-Match` did not hold; nothing was changed.
    #[error("precondition failed for key {key:?}")]
    PreconditionFailed { key: String },
    /// The body is, or grew, larger than `max_object_size`; nothing was stored.
    #[error("object is larger than the limit of {limit} bytes")]
    PayloadTooLarge { limit: u64 },
    /// The range lies outside the object.
    #[error("range not satisfiable for an object of {size} bytes")]
    RangeNotSatisfiable { size: u64 },
    /// The client sent no body bytes for too long; the upload was aborted.
    #[error("request body idle for more than {idle:?}; upload aborted")]
    BodyTimeout { idle: Duration },
    /// The client's body stream failed (disconnect, bad chunked encoding).
    #[error("request body could not be read: {0}")]
    BodyAborted(String),
    /// The key's path is blocked by something that is not ours (a planted symlink or file).
    #[error("key {key:?} cannot be stored: {reason}")]
    KeyConflict { key: String, reason: &'static str },

    // ---- the server failed ----
    /// The disk is full or over quota; the previous version, if any, is intact.
    #[error("insufficient storage")]
    InsufficientStorage(#[source] std::io::Error),
    /// The credentials file cannot be used (start-up only).
    #[error("credentials: {0}")]
    Credentials(String),
    /// Any other I/O failure, with what was being done.
    #[error("i/o error while {op}")]
    Io {
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// The remote object store failed or did not answer; a write's outcome is unknown
    /// and the client should retry after a second.
    #[error("storage unavailable while {op}")]
    Unavailable {
        op: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The backend cannot do what was asked; nothing changed.
    #[error("not supported: {0}")]
    NotImplemented(String),
    /// The backend cannot be used as configured (start-up only).
    #[error("{0}")]
    Config(String),
}

impl Error {
    /// Wraps an I/O error, recognising a full disk.
    pub fn io(op: &'static str, source: std::io::Error) -> Self {
        StorageError::io(op, source).into()
    }

    /// The stable machine-readable code in the JSON body, also the `errors_total` label.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidKey(_) => "invalid_key",
            Self::InvalidRequest(_) | Self::BodyAborted(_) => "invalid_request",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden { .. } => "forbidden",
            Self::NotFound { .. } => "not_found",
            Self::PreconditionFailed { .. } => "precondition_failed",
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::RangeNotSatisfiable { .. } => "range_not_satisfiable",
            Self::BodyTimeout { .. } => "body_timeout",
            Self::KeyConflict { .. } => "key_conflict",
            Self::InsufficientStorage(_) => "insufficient_storage",
            Self::Unavailable { .. } => "unavailable",
            Self::NotImplemented(_) => "not_implemented",
            Self::Credentials(_) | Self::Config(_) | Self::Io { .. } => "internal",
        }
    }
}

impl From<StorageError> for Error {
    /// The one place a storage failure becomes an HTTP error.
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::NotFound { key } => Self::NotFound { key },
            StorageError::PreconditionFailed { key } => Self::PreconditionFailed { key },
            StorageError::KeyConflict { key, reason } => Self::KeyConflict { key, reason },
            StorageError::Body(BodyError::TooLarge { limit }) => Self::PayloadTooLarge { limit },
            StorageError::Body(BodyError::IdleTimeout(idle)) => Self::BodyTimeout { idle },
            StorageError::Body(BodyError::Aborted(reason) | BodyError::DigestMismatch(reason)) => {
                Self::BodyAborted(reason)
            }
            e @ StorageError::AttributesTooLarge { .. } => Self::InvalidRequest(e.to_string()),
            StorageError::InsufficientStorage(source) => Self::InsufficientStorage(source),
            StorageError::Io { op, source } => Self::Io { op, source },
            StorageError::Remote { op, source } => Self::Unavailable { op, source },
            StorageError::Unknown { op, source } | StorageError::NotDurable { op, source } => {
                Self::Unavailable {
                    op,
                    source: Box::new(source),
                }
            }
            StorageError::Unsupported { what } => Self::NotImplemented(what),
            StorageError::Config(message) => Self::Config(message),
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        error_chain_fmt(self, f)
    }
}

impl ResponseError for Error {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::InvalidKey(_) | Self::InvalidRequest(_) | Self::BodyAborted(_) => {
                StatusCode::BAD_REQUEST
            }
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden { .. } => StatusCode::FORBIDDEN,
            Self::NotFound { .. } => StatusCode::NOT_FOUND,
            Self::PreconditionFailed { .. } => StatusCode::PRECONDITION_FAILED,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::RangeNotSatisfiable { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
            Self::BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            Self::KeyConflict { .. } => StatusCode::CONFLICT,
            Self::InsufficientStorage(_) => StatusCode::INSUFFICIENT_STORAGE,
            Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            Self::Credentials(_) | Self::Config(_) | Self::Io { .. } => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let message = if status.is_server_error() {
            tracing::error!(error = ?self, code = self.code(), "request failed");
            // The client gets no internals; the log has the cause chain.
            match self {
                Self::InsufficientStorage(_) => {
                    "insufficient storage: the object was not stored".to_owned()
                }
                Self::Unavailable { .. } => {
                    "the object store is unavailable; retry (a write may or may not have taken effect)".to_owned()
                }
                Self::NotImplemented(_) => self.to_string(),
                _ => "internal error; see the server log".to_owned(),
            }
        } else {
            self.to_string()
        };
        let mut response = HttpResponse::build(status);
        match self {
            Self::Unauthorized => {
                response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
            }
            Self::RangeNotSatisfiable { size } => {
                response.insert_header((header::CONTENT_RANGE, format!("bytes */{size}")));
            }
            Self::Unavailable { .. } => {
                response.insert_header((header::RETRY_AFTER, "1"));
            }
            Self::BodyTimeout { .. } | Self::PayloadTooLarge { .. } | Self::BodyAborted(_) => {
                // The rest of the body is never read; the connection cannot be reused.
                response.insert_header((header::CONNECTION, "close"));
            }
            _ => {}
        }
        response.json(serde_json::json!({ "error": self.code(), "message": message }))
    }
}
