//! What a storage backend can fail with. Nothing here knows HTTP: `crate::Error` has the
//! one conversion (`From<StorageError>`) that gives each variant its status.

use std::time::Duration;

/// Why an upload body ended early.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// It grew past this limit.
    #[error("object is larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    /// No bytes arrived for this long.
    #[error("request body idle for more than {0:?}; upload aborted")]
    IdleTimeout(Duration),
    /// The client's stream failed.
    #[error("request body could not be read: {0}")]
    Aborted(String),
    /// The content does not match a digest the client sent with it (`Content-MD5`, an
    /// `x-amz-checksum-*` header or trailer).
    #[error("{0}")]
    DigestMismatch(String),
}

/// A backend operation's failure. "Certainly not written" for every variant but `Io`,
/// `Unknown`, `NotDurable` and `Remote`: `Io`'s outcome a caller must treat as unknown only where the backend says so
/// (LocalFs writes are all or nothing: an `Io` from `put` leaves the old version);
/// `Remote`'s is unknown.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// No object under this key.
    #[error("no object with key {key:?}")]
    NotFound { key: String },
    /// The write's or delete's condition did not hold; nothing changed.
    #[error("precondition failed for key {key:?}")]
    PreconditionFailed { key: String },
    /// The key's place is taken by something the backend did not create (a planted link
    /// or file); nothing changed.
    #[error("key {key:?} cannot be stored: {reason}")]
    KeyConflict { key: String, reason: &'static str },
    /// The object's attributes take more than this many bytes; nothing was stored.
    #[error("object attributes (headers and metadata) exceed {limit} bytes")]
    AttributesTooLarge { limit: usize },
    /// The upload body failed; nothing was stored.
    #[error(transparent)]
    Body(#[from] BodyError),
    /// The disk is full or over quota; the previous version, if any, is intact.
    #[error("insufficient storage")]
    InsufficientStorage(#[source] std::io::Error),
    /// Any other I/O failure, with what was being done.
    #[error("i/o error while {op}")]
    Io {
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// A local write whose outcome is unknown: the write log stopped after a failed
    /// `fdatasync` (ADR 0017) and takes no writes until a restart replays what is on disk.
    #[error("storage stopped taking writes while {op}")]
    Unknown {
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// A local change was made but making it durable failed (a directory or file fsync
    /// after the rename or unlink): readers see it now, a crash may undo it. The outcome
    /// is unknown to the caller.
    #[error("the change is made but may not survive a crash: fsync failed while {op}")]
    NotDurable {
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// A remote object store failed or did not answer (after retrying what is
    /// idempotent): a write's outcome is unknown.
    #[error("object store failed while {op}")]
    Remote {
        op: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The backend cannot do this (said in `what`); nothing changed.
    #[error("not supported: {what}")]
    Unsupported { what: String },
    /// The backend cannot be used as configured (start-up only).
    #[error("{0}")]
    Config(String),
}

impl StorageError {
    /// Wraps an I/O error, recognising a full disk.
    pub fn io(op: &'static str, source: std::io::Error) -> Self {
        match source.kind() {
            std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => {
                Self::InsufficientStorage(source)
            }
            _ => Self::Io { op, source },
        }
    }

    /// A blocking task that panicked or was cancelled while doing `op`.
    pub fn task(op: &'static str, e: tokio::task::JoinError) -> Self {
        Self::Io {
            op,
            source: std::io::Error::other(e),
        }
    }
}
