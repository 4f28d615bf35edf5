//! The storage seam: what the HTTP layer needs from a place that keeps objects.
//!
//! [`LocalFs`] keeps objects on a local disk, [`S3Store`] in a bucket of an S3-compatible
//! store; `Memory` is the fake for tests. All three run the shared [`conformance`] suite. The seam speaks storage, not HTTP: every method
//! fails with a [`StorageError`], and `crate::Error` maps that to a status in one place.

use std::fmt;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::stream::BoxStream;
use manifest_codec::ObjectKey;

mod attrs;
#[cfg(test)]
pub mod conformance;
mod delimited;
mod error;
mod etag;
pub mod fs;
mod local;
#[cfg(test)]
mod memory;
#[cfg(test)]
mod power_loss;
mod s3;
#[cfg(test)]
mod simfs;

pub use attrs::{Attributes, S3Tag};
pub use delimited::{list_delimited, DelimitedPage, Listed};
pub use error::{BodyError, StorageError};
pub use etag::ETag;
pub use local::{FsyncPolicy, LocalFs, LogConfig, LogMetrics, OpenReport};
#[cfg(test)]
pub use memory::Memory;
pub use s3::S3Store;

/// What is known about a stored object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    /// The object's key.
    pub key: ObjectKey,
    /// Content length in bytes.
    pub size: u64,
    /// Strong entity tag of the content.
    pub etag: ETag,
    /// The tag S3 clients expect (MD5-based); `None` for objects written before storaged
    /// kept one (ADR 0015).
    pub s3_tag: Option<S3Tag>,
    /// When this version was written.
    pub last_modified: SystemTime,
}

impl ObjectMeta {
    /// The S3 tag; an object written before storaged kept one shows its BLAKE3 tag as a
    /// one-part tag (`<etag>-1`), which clients treat as opaque (ADR 0015).
    pub fn s3_tag_or_legacy(&self) -> S3Tag {
        self.s3_tag.unwrap_or(S3Tag {
            digest: *self.etag.as_bytes(),
            parts: 1,
        })
    }
}

/// Condition a write or delete must meet, checked atomically with the change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Condition {
    /// No condition.
    #[default]
    None,
    /// `If-None-Match: *`: the key must not exist.
    Absent,
    /// `If-Match: *`: the key must exist.
    Exists,
    /// `If-Match: "<etag>"`: the key must exist with this tag.
    Matches(ETag),
    /// S3's `If-Match`: the key must exist with this S3 tag.
    MatchesS3(S3Tag),
}

/// A new version of an object: the condition it is written under and what is kept with it.
#[derive(Debug, Clone, Default)]
pub struct NewObject {
    /// Checked atomically with the write.
    pub condition: Condition,
    /// Returned with the content on every read.
    pub attrs: Attributes,
    /// The S3 tag of an object assembled from parts; `None`: the MD5 of the content.
    pub s3_tag: Option<S3Tag>,
}

/// Result of a successful put.
#[derive(Debug, Clone)]
pub struct PutOutcome {
    /// The stored object.
    pub meta: ObjectMeta,
    /// True when the key did not exist before.
    pub created: bool,
}

/// An upload body: chunks until the end, or the first error.
pub type Body = BoxStream<'static, Result<Bytes, BodyError>>;

/// A download: chunks of the requested range.
pub type ByteStream = BoxStream<'static, Result<Bytes, std::io::Error>>;

/// The content of one opened version of an object. Each backend implements it its own
/// way (LocalFs reads ahead from the open file; Memory slices its bytes).
pub trait Content: fmt::Debug + Send {
    /// Streams `len` bytes starting at `start`; the caller has checked that the range
    /// lies within the object.
    fn range(self: Box<Self>, start: u64, len: u64) -> ByteStream;
}

/// An opened object: its metadata and a handle on exactly that version's content, so a
/// concurrent overwrite never mixes two versions into one response.
#[derive(Debug)]
pub struct ObjectReader {
    /// Metadata of the opened version.
    pub meta: ObjectMeta,
    /// Attributes of the opened version.
    pub attrs: Attributes,
    /// The content source.
    pub content: Box<dyn Content>,
}

impl ObjectReader {
    /// Streams `len` bytes starting at `start` (the caller has checked the range).
    pub fn stream(self, start: u64, len: u64) -> ByteStream {
        self.content.range(start, len)
    }
}

/// Bytes held in memory as an object's content.
#[derive(Debug)]
pub struct InMemory(pub Bytes);

impl Content for InMemory {
    fn range(self: Box<Self>, start: u64, len: u64) -> ByteStream {
        use futures_util::StreamExt;
        let bytes = self.0;
        let start = usize::try_from(start)
            .unwrap_or(usize::MAX)
            .min(bytes.len());
        let end = usize::try_from(len)
            .ok()
            .and_then(|len| start.checked_add(len))
            .unwrap_or(bytes.len())
            .min(bytes.len());
        let slice = bytes.slice(start..end);
        futures_util::stream::once(async move { Ok(slice) }).boxed()
    }
}

/// One page of a listing.
#[derive(Debug, Clone)]
pub struct ListPage {
    /// Objects in key byte order.
    pub objects: Vec<ObjectMeta>,
    /// True when more keys follow the last one.
    pub is_truncated: bool,
}

/// A place that keeps objects.
///
/// Every method is atomic with respect to the others on the same key: a put is all or
/// nothing and readers see the old version or the new one, never a mix; a condition is
/// checked and the change made as one step, so of two concurrent `Absent` puts exactly one
/// succeeds. Once `put` or `delete` returns `Ok`, the change survives a crash.
#[async_trait]
pub trait Backend: fmt::Debug + Send + Sync {
    /// Stores `body` under `key` with `new`'s attributes if `new.condition` holds, else
    /// [`StorageError::PreconditionFailed`] and nothing changes. A body error stores
    /// nothing.
    async fn write(
        &self,
        key: &ObjectKey,
        new: NewObject,
        body: Body,
    ) -> Result<PutOutcome, StorageError>;

    /// [`Backend::write`] without attributes.
    async fn put(
        &self,
        key: &ObjectKey,
        condition: Condition,
        body: Body,
    ) -> Result<PutOutcome, StorageError> {
        let new = NewObject {
            condition,
            ..NewObject::default()
        };
        self.write(key, new, body).await
    }

    /// Stores under `key` the content of the objects `parts`, in order, with `new`'s
    /// attributes, if `new.condition` holds — atomically, as [`Backend::write`]. A part
    /// that does not exist is [`StorageError::NotFound`]. The parts are left as they are;
    /// deleting them later does not change the new object. The native ETag may be derived
    /// from the parts' ETags rather than the bytes (still strong).
    async fn assemble(
        &self,
        key: &ObjectKey,
        new: NewObject,
        parts: Vec<ObjectKey>,
    ) -> Result<PutOutcome, StorageError>;

    /// Opens the current version of `key`, or [`StorageError::NotFound`].
    async fn get(&self, key: &ObjectKey) -> Result<ObjectReader, StorageError>;

    /// Removes `key` if `condition` holds. Removing an absent key without a condition
    /// succeeds (deletes are idempotent).
    async fn delete(&self, key: &ObjectKey, condition: Condition) -> Result<(), StorageError>;

    /// Up to `limit` objects whose keys start with `prefix` and sort strictly after
    /// `after`, in key byte order. Keys written during a walk appear at most once.
    async fn list(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<ListPage, StorageError>;

    /// Whether the backend can currently serve requests (for `/readyz`).
    async fn is_ready(&self) -> bool;

    /// True when ETags and S3 tags are a remote store's own (MD5 for a single PUT),
    /// false when storaged computes them (BLAKE3; the S3 tag as given or the MD5).
    fn store_etags(&self) -> bool {
        false
    }
}

/// One page of `map` in key order: keys with `prefix`, strictly after `after`, at most
/// `limit`; shared by the backends that keep a sorted map.
pub(crate) fn page_of<V>(
    map: &std::collections::BTreeMap<ObjectKey, V>,
    prefix: &str,
    after: Option<&str>,
    limit: usize,
    meta: impl Fn(&ObjectKey, &V) -> ObjectMeta,
) -> ListPage {
    use std::ops::Bound;
    let start = match after {
        Some(after) if after >= prefix => Bound::Excluded(after),
        _ => Bound::Included(prefix),
    };
    let mut objects: Vec<ObjectMeta> = map
        .range::<str, _>((start, Bound::Unbounded))
        .take_while(|(k, _)| k.as_str().starts_with(prefix))
        .take(limit + 1)
        .map(|(k, v)| meta(k, v))
        .collect();
    let is_truncated = objects.len() > limit;
    objects.truncate(limit);
    ListPage {
        objects,
        is_truncated,
    }
}

/// Checks `condition` against the current state of a key: its ETag and S3 tag, `None`
/// when absent.
pub(crate) fn check_condition(
    key: &ObjectKey,
    condition: Condition,
    current: Option<(ETag, Option<S3Tag>)>,
) -> Result<(), StorageError> {
    let holds = match (condition, current) {
        (Condition::None, _) | (Condition::Absent, None) | (Condition::Exists, Some(_)) => true,
        (Condition::Matches(want), Some((have, _))) => want == have,
        (Condition::MatchesS3(want), Some((_, Some(have)))) => have == want,
        (Condition::MatchesS3(want), Some((etag, None))) => {
            want.parts == 1 && want.digest == *etag.as_bytes()
        }
        (Condition::Absent, Some(_))
        | (Condition::Exists | Condition::Matches(_) | Condition::MatchesS3(_), None) => false,
    };
    if holds {
        Ok(())
    } else {
        Err(StorageError::PreconditionFailed {
            key: key.to_string(),
        })
    }
}
