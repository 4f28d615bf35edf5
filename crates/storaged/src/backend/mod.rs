//! The storage seam: what the HTTP layer needs from a place that keeps objects.
//!
//! [`LocalFs`] is the durable production backend; [`Memory`] is the fake for tests. An S3
//! backend can implement the same trait without touching the HTTP layer. Both run the
//! shared [`conformance`] suite.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::stream::LocalBoxStream;
use manifest_codec::ObjectKey;

use crate::Error;

#[cfg(test)]
pub mod conformance;
mod dirsync;
pub mod fs;
mod local;
mod memory;
#[cfg(test)]
mod power_loss;
#[cfg(test)]
mod simfs;

pub use local::LocalFs;
pub use memory::Memory;

/// A strong entity tag: 128 bits of the BLAKE3 hash of the content, as 32 hex digits.
///
/// Deterministic, so it survives restarts; two different contents never share one.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ETag([u8; 16]);

impl ETag {
    /// The tag of `content`.
    pub fn of(content: &[u8]) -> Self {
        let mut hasher = blake3::Hasher::new();
        hasher.update(content);
        Self::from_hasher(&hasher)
    }

    /// The tag of everything fed to `hasher`.
    pub fn from_hasher(hasher: &blake3::Hasher) -> Self {
        let mut raw = [0; 16];
        raw.copy_from_slice(&hasher.finalize().as_bytes()[..16]);
        Self(raw)
    }

    /// The raw 16 bytes.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// From raw bytes, as stored on disk.
    pub fn from_bytes(raw: [u8; 16]) -> Self {
        Self(raw)
    }

    /// Parses the 32 hex digits (without quotes).
    pub fn parse_hex(hex: &str) -> Option<Self> {
        if hex.len() != 32 {
            return None;
        }
        let mut raw = [0; 16];
        for (i, byte) in raw.iter_mut().enumerate() {
            *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(Self(raw))
    }
}

impl fmt::Display for ETag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for ETag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ETag({self})")
    }
}

/// What is known about a stored object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    /// The object's key.
    pub key: ObjectKey,
    /// Content length in bytes.
    pub size: u64,
    /// Strong entity tag of the content.
    pub etag: ETag,
    /// When this version was written.
    pub last_modified: SystemTime,
}

/// Condition a write or delete must meet, checked atomically with the change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// No condition.
    None,
    /// `If-None-Match: *`: the key must not exist.
    Absent,
    /// `If-Match: *`: the key must exist.
    Exists,
    /// `If-Match: "<etag>"`: the key must exist with this tag.
    Matches(ETag),
}

/// Result of a successful put.
#[derive(Debug, Clone)]
pub struct PutOutcome {
    /// The stored object.
    pub meta: ObjectMeta,
    /// True when the key did not exist before.
    pub created: bool,
}

/// Why an upload body ended early.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// It grew past this limit.
    TooLarge { limit: u64 },
    /// No bytes arrived for this long.
    IdleTimeout(std::time::Duration),
    /// The client's stream failed.
    Aborted(String),
}

impl From<BodyError> for Error {
    fn from(e: BodyError) -> Self {
        match e {
            BodyError::TooLarge { limit } => Error::PayloadTooLarge { limit },
            BodyError::IdleTimeout(idle) => Error::BodyTimeout { idle },
            BodyError::Aborted(reason) => Error::BodyAborted(reason),
        }
    }
}

/// An upload body: chunks until the end, or the first error.
pub type Body = LocalBoxStream<'static, Result<Bytes, BodyError>>;

/// A download: chunks of the requested range.
pub type ByteStream = LocalBoxStream<'static, Result<Bytes, std::io::Error>>;

/// An opened object: its metadata and a handle on exactly that version's content, so a
/// concurrent overwrite never mixes two versions into one response.
pub struct ObjectReader {
    /// Metadata of the opened version.
    pub meta: ObjectMeta,
    /// The content source.
    pub content: Content,
}

impl fmt::Debug for ObjectReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectReader")
            .field("meta", &self.meta)
            .finish_non_exhaustive()
    }
}

/// Where an opened object's bytes come from.
#[derive(Debug)]
pub enum Content {
    /// An open file; the content starts at `offset`. Full-size read-ahead chunks are
    /// taken from `budget` (one permit per MiB).
    File {
        file: Arc<dyn fs::ReadFile>,
        offset: u64,
        budget: Arc<tokio::sync::Semaphore>,
    },
    /// Bytes in memory.
    Memory(Bytes),
}

/// Bytes read from a file per chunk of a download, while the read-ahead budget lasts.
const READ_CHUNK: u64 = 1024 * 1024;
/// Bytes per chunk once the budget is spent (many slow readers at once).
const SMALL_READ_CHUNK: u64 = 64 * 1024;
/// Largest piece of a chunk handed to the HTTP layer at once.
const SLICE: usize = 64 * 1024;

/// A chunk read from a file, holding its share of the read-ahead budget until freed.
struct Chunk {
    buf: Vec<u8>,
    _permit: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl AsRef<[u8]> for Chunk {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl ObjectReader {
    /// Streams `len` bytes starting at `start` (the caller has checked the range).
    ///
    /// A file is read one chunk ahead: the next chunk is read on the blocking pool while
    /// the current one is sent, and no thread waits on a slow client (a read finishes and
    /// its chunk waits in memory; at most two chunks per download). 1 MiB chunks come out
    /// of a budget shared by all downloads; past it, chunks are 64 KiB, so slow readers
    /// by the hundred cannot hold gigabytes.
    pub fn stream(self, start: u64, len: u64) -> Result<ByteStream, Error> {
        use futures_util::StreamExt;
        match self.content {
            Content::File {
                file,
                offset,
                budget,
            } => {
                let begin = offset + start;
                let end = begin + len;
                let read = move |file: &Arc<dyn fs::ReadFile>,
                                 budget: &Arc<tokio::sync::Semaphore>,
                                 at: u64| {
                    let permit = budget.clone().try_acquire_owned().ok();
                    let chunk = if permit.is_some() {
                        READ_CHUNK
                    } else {
                        SMALL_READ_CHUNK
                    };
                    let n = usize::try_from(chunk.min(end - at)).unwrap_or(0);
                    let file = file.clone();
                    tokio::task::spawn_blocking(move || {
                        let mut buf = vec![0; n];
                        file.read_exact_at(&mut buf, at).map(|()| {
                            Bytes::from_owner(Chunk {
                                buf,
                                _permit: permit,
                            })
                        })
                    })
                };
                let first = (begin < end).then(|| read(&file, &budget, begin));
                // Chunks are handed on in slices: the HTTP layer copies what it is given
                // into its write buffer, so a whole chunk there would be memory outside
                // the budget for as long as the client takes to read it.
                let state = (file, budget, begin, first, Bytes::new());
                Ok(futures_util::stream::unfold(
                    state,
                    move |(file, budget, mut at, mut pending, mut current)| async move {
                        if current.is_empty() {
                            let chunk = match pending.take()?.await {
                                Ok(chunk) => chunk,
                                Err(e) => Err(std::io::Error::other(e)),
                            };
                            match chunk {
                                Ok(bytes) => {
                                    at += bytes.len() as u64;
                                    pending = (at < end).then(|| read(&file, &budget, at));
                                    current = bytes;
                                }
                                Err(e) => return Some((Err(e), (file, budget, at, None, current))),
                            }
                        }
                        let n = current.len().min(SLICE);
                        let slice = current.split_to(n);
                        Some((Ok(slice), (file, budget, at, pending, current)))
                    },
                )
                .boxed_local())
            }
            Content::Memory(bytes) => {
                let start = usize::try_from(start)
                    .unwrap_or(usize::MAX)
                    .min(bytes.len());
                let end = usize::try_from(len)
                    .ok()
                    .and_then(|len| start.checked_add(len))
                    .unwrap_or(bytes.len())
                    .min(bytes.len());
                let slice = bytes.slice(start..end);
                Ok(futures_util::stream::once(async move { Ok(slice) }).boxed_local())
            }
        }
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
#[async_trait(?Send)]
pub trait Backend: fmt::Debug + Send + Sync {
    /// Stores `body` under `key` if `condition` holds, else [`Error::PreconditionFailed`]
    /// and nothing changes. A body error stores nothing.
    async fn put(
        &self,
        key: &ObjectKey,
        condition: Condition,
        body: Body,
    ) -> Result<PutOutcome, Error>;

    /// Opens the current version of `key`, or [`Error::NotFound`].
    async fn get(&self, key: &ObjectKey) -> Result<ObjectReader, Error>;

    /// Removes `key` if `condition` holds. Removing an absent key without a condition
    /// succeeds (deletes are idempotent).
    async fn delete(&self, key: &ObjectKey, condition: Condition) -> Result<(), Error>;

    /// Up to `limit` objects whose keys start with `prefix` and sort strictly after
    /// `after`, in key byte order. Keys written during a walk appear at most once.
    async fn list(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<ListPage, Error>;

    /// Whether the backend can currently serve requests (for `/readyz`).
    async fn is_ready(&self) -> bool;
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

/// Checks `condition` against the current state of a key (`None` when absent).
pub(crate) fn check_condition(
    key: &ObjectKey,
    condition: Condition,
    current: Option<ETag>,
) -> Result<(), Error> {
    let holds = match (condition, current) {
        (Condition::None, _) | (Condition::Absent, None) | (Condition::Exists, Some(_)) => true,
        (Condition::Matches(want), Some(have)) => want == have,
        (Condition::Absent, Some(_)) | (Condition::Exists | Condition::Matches(_), None) => false,
    };
    if holds {
        Ok(())
    } else {
        Err(Error::PreconditionFailed {
            key: key.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    fn reader(file: Arc<dyn fs::ReadFile>, budget: &Arc<tokio::sync::Semaphore>) -> ObjectReader {
        ObjectReader {
            meta: ObjectMeta {
                key: ObjectKey::parse("k").unwrap(),
                size: file.size(),
                etag: ETag::of(b""),
                last_modified: SystemTime::UNIX_EPOCH,
            },
            content: Content::File {
                file,
                offset: 0,
                budget: budget.clone(),
            },
        }
    }

    #[tokio::test]
    async fn read_ahead_is_full_size_within_the_budget_and_small_past_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let content: Vec<u8> = (0..3 * READ_CHUNK).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &content).unwrap();
        let open = || fs::Fs::open(&fs::RealFs, &path).unwrap();
        let budget = Arc::new(tokio::sync::Semaphore::new(2));

        // A slow reader: its first chunk is taken and kept, the next is read ahead.
        let mut slow = reader(open(), &budget)
            .stream(0, content.len() as u64)
            .unwrap();
        let kept = slow.next().await.unwrap().unwrap();
        assert_eq!(kept.len(), SLICE, "chunks are handed on in slices");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert_eq!(
            budget.available_permits(),
            0,
            "two MiB are held (the slice keeps its chunk)"
        );

        // Another download still gets every byte, in small chunks.
        let mut other = reader(open(), &budget)
            .stream(0, content.len() as u64)
            .unwrap();
        let mut got = Vec::new();
        while let Some(chunk) = other.next().await {
            let chunk = chunk.unwrap();
            assert!(chunk.len() as u64 <= SMALL_READ_CHUNK);
            got.extend_from_slice(&chunk);
        }
        assert_eq!(got, content);

        // Freed chunks give their MiB back.
        drop(kept);
        drop(slow);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert_eq!(budget.available_permits(), 2);
    }
}
