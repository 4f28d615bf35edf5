//! Errors. Each names the rule that failed, so it can go to a client as-is.

use thiserror::Error;

/// A dataset name broke one of the rules of [`crate::DatasetName`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NameError {
    /// The name is empty.
    #[error("name is empty")]
    Empty,
    /// Over [`crate::name::MAX_NAME_LEN`] bytes.
    #[error("name is {len} bytes, longer than 255 bytes")]
    TooLong { len: usize },
    /// An uppercase ASCII letter; names are never lowercased for the caller.
    #[error("uppercase letter {ch:?} at byte {at}: names are lowercase")]
    Uppercase { ch: char, at: usize },
    /// Two dots in a row, or a leading or trailing dot.
    #[error("empty segment at byte {at}: segments are joined by single dots and are not empty")]
    EmptySegment { at: usize },
    /// A segment starts with `_` or `-`.
    #[error("segment starts with {ch:?} at byte {at}: each segment starts with a letter or digit")]
    BadSegmentStart { ch: char, at: usize },
    /// Anything but `a-z`, `0-9`, `_`, `-` and `.`.
    #[error("character {ch:?} at byte {at} is not allowed: use a-z, 0-9, '_', '-' and '.'")]
    InvalidChar { ch: char, at: usize },
}

/// An object key broke one of the rules of [`crate::ObjectKey`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum KeyError {
    /// The key is empty.
    #[error("key is empty")]
    Empty,
    /// Over [`crate::key::MAX_KEY_LEN`] bytes.
    #[error("key is {len} bytes, longer than 1024 bytes")]
    TooLong { len: usize },
    /// The bytes are not UTF-8 (includes overlong encodings).
    #[error("key is not valid UTF-8 at byte {at}")]
    NotUtf8 { at: usize },
    /// Keys are relative; a leading `/` would be an empty first segment.
    #[error("key starts with '/': keys are relative")]
    LeadingSlash,
    /// `//` (a key may end with one `/`, not two).
    #[error("empty segment at byte {at}: segments are separated by single '/'")]
    EmptySegment { at: usize },
    /// A `.` or `..` segment.
    #[error("'.' or '..' segment at byte {at}: keys cannot navigate directories")]
    DotSegment { at: usize },
    /// A control character, NUL included.
    #[error("control character U+{code:04X} at byte {at} is not allowed")]
    ControlChar { code: u32, at: usize },
    /// A backslash, which some platforms take as a separator.
    #[error("backslash at byte {at} is not allowed")]
    Backslash { at: usize },
}

/// A schema fingerprint broke one of the rules of [`crate::SchemaFingerprint`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FingerprintError {
    /// The fingerprint is empty.
    #[error("schema fingerprint is empty")]
    Empty,
    /// Over [`crate::manifest::MAX_FINGERPRINT_LEN`] bytes.
    #[error("schema fingerprint is {len} bytes, longer than 512 bytes")]
    TooLong { len: usize },
}

/// A manifest could not be encoded because it breaks an invariant of the format.
///
/// Every manifest that encodes also decodes; these are the cases that would not.
#[derive(Debug, Error)]
pub enum EncodeError {
    /// `dataset_id` is not the id derived from `name`.
    #[error("dataset_id {found} is not the id of name {name:?} ({expected})")]
    IdMismatch {
        name: String,
        found: uuid::Uuid,
        expected: uuid::Uuid,
    },
    /// A count or size is negative or the version is below 1.
    #[error("{field} is {value}: {rule}")]
    OutOfRange {
        field: &'static str,
        value: i64,
        rule: &'static str,
    },
    /// The Parquet writer failed (a bug: it writes to memory).
    #[error("parquet writer failed")]
    Parquet(#[source] parquet::errors::ParquetError),
}

/// Bytes that are not a valid manifest file. The message says what is wrong.
#[derive(Debug, Error)]
pub enum DecodeError {
    /// Zero bytes.
    #[error("manifest is empty (0 bytes)")]
    Empty,
    /// Not a Parquet file, or one whose footer or pages are damaged.
    #[error("not a readable parquet file: {0}")]
    Parquet(String),
    /// The key-value metadata has no format version.
    #[error("missing format version (key-value metadata {key:?})")]
    MissingFormatVersion { key: &'static str },
    /// A format version this release does not know.
    #[error("unknown format version {found:?}: this release reads versions 1 and 2")]
    UnknownFormatVersion { found: String },
    /// The file does not hold exactly one row.
    #[error("manifest has {rows} rows: exactly one is required")]
    RowCount { rows: i64 },
    /// A required column is absent.
    #[error("missing column {column:?}")]
    MissingColumn { column: &'static str },
    /// A column has the wrong type.
    #[error("column {column:?} has type {found}, expected {expected}")]
    ColumnType {
        column: &'static str,
        found: String,
        expected: String,
    },
    /// A null where a value is required.
    #[error("column {column:?} is null: a value is required")]
    Null { column: &'static str },
    /// Array data that fails validation (offsets past the values, bad UTF-8, ...).
    #[error("column {column:?} is malformed: {reason}")]
    Malformed {
        column: &'static str,
        reason: String,
    },
    /// A value that breaks a rule of the model.
    #[error("column {column:?} holds an invalid value: {reason}")]
    InvalidValue {
        column: &'static str,
        reason: String,
    },
    /// The reader panicked on this input; the panic was contained.
    #[error("parquet reader panicked on this input: {0}")]
    Panicked(String),
}
