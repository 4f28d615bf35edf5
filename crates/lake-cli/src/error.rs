//! The one error type of `lake`, and the exit code each kind means.

/// Everything a `lake` command can fail with.
#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    /// The command line or configuration is wrong (exit 2).
    #[error("{0}")]
    Usage(String),
    /// A service answered with an error; its message is shown as sent.
    #[error("{service} answered {status}: {message}")]
    Server {
        service: &'static str,
        status: u16,
        code: String,
        message: String,
    },
    /// A service could not be reached or the exchange broke off.
    #[error("{service} at {url}: {message}")]
    Unreachable {
        service: &'static str,
        url: String,
        message: String,
    },
    /// A local file or directory could not be used.
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A file is not what the command needs (not Parquet, schemas differ, nothing found).
    #[error("{0}")]
    Invalid(String),
}

impl LakeError {
    /// The process exit code: 2 for usage errors, 1 for every failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Usage(_) => 2,
            Self::Server { .. } | Self::Unreachable { .. } | Self::Io { .. } | Self::Invalid(_) => {
                1
            }
        }
    }

    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl std::fmt::Display, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_string(),
            source,
        }
    }
}

/// The result of a `lake` operation.
pub type Result<T, E = LakeError> = std::result::Result<T, E>;
