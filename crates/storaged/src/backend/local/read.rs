//! The read path: opening an object file, and streaming a range of it with read-ahead.
//!
//! A file is read one chunk ahead: the next chunk is read on the blocking pool while the
//! current one is sent, and no thread waits on a slow client (a read finishes and its
//! chunk waits in memory; at most two chunks per download). 1 MiB chunks come out of a
//! budget shared by all downloads; past it, chunks are 64 KiB, so slow readers by the
//! hundred cannot hold gigabytes.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::Semaphore;

use super::assemble::Segmented;
use super::header::{open_checked, Header, HEADER_LEN};
use super::SMALL_OBJECT;
use crate::backend::fs::{Fs, ReadFile};
use crate::backend::{Attributes, ByteStream, Content, InMemory};

/// Memory all downloads may hold in 1 MiB read-ahead chunks (past it they read 64 KiB).
pub(super) const READ_BUDGET_MIB: usize = 256;
/// Bytes read from a file per chunk of a download, while the read-ahead budget lasts.
const READ_CHUNK: u64 = 1024 * 1024;
/// Bytes per chunk once the budget is spent (many slow readers at once).
const SMALL_READ_CHUNK: u64 = 64 * 1024;
/// Largest piece of a chunk handed to the HTTP layer at once.
const SLICE: usize = 64 * 1024;

/// An opened object file.
pub(super) struct Opened {
    pub(super) header: Header,
    pub(super) attrs: Attributes,
    pub(super) last_modified: std::time::SystemTime,
    pub(super) content: Box<dyn Content>,
}

/// Opens an object file and reads its header; a small object's content is read at once,
/// so serving it costs one blocking task.
pub(super) fn open_object(
    fs: &dyn Fs,
    path: &Path,
    segments_root: &Path,
    budget: &Arc<Semaphore>,
) -> std::io::Result<Opened> {
    let (file, header) = open_checked(fs, path)?;
    let size = header.size;
    let attrs_len = usize::try_from(header.attrs_len).unwrap_or(0);
    // A small object is read with its attributes in one read.
    let (attrs, content): (Vec<u8>, Box<dyn Content>) = if header.segments > 0 {
        let mut attrs = vec![0; attrs_len];
        file.read_exact_at(&mut attrs, HEADER_LEN as u64)?;
        let segmented = Segmented::open(fs, file.as_ref(), &header, segments_root, budget)?;
        (attrs, Box::new(segmented))
    } else if size <= SMALL_OBJECT as u64 {
        let mut all = vec![0; attrs_len + usize::try_from(size).unwrap_or(0)];
        file.read_exact_at(&mut all, HEADER_LEN as u64)?;
        let mut attrs = Bytes::from(all);
        let content = attrs.split_off(attrs_len);
        (attrs.to_vec(), Box::new(InMemory(content)))
    } else {
        let mut attrs = vec![0; attrs_len];
        file.read_exact_at(&mut attrs, HEADER_LEN as u64)?;
        let content = Box::new(FileContent {
            file: file.clone(),
            offset: header.content_offset(),
            budget: budget.clone(),
        });
        (attrs, content)
    };
    let attrs = Attributes::decode(&attrs).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("bad object attributes in {}", path.display()),
        )
    })?;
    Ok(Opened {
        header,
        attrs,
        last_modified: file.modified(),
        content,
    })
}

/// An open object file whose content starts at `offset`; full-size read-ahead chunks are
/// taken from `budget` (one permit per MiB).
#[derive(Debug)]
pub(super) struct FileContent {
    file: Arc<dyn ReadFile>,
    offset: u64,
    budget: Arc<Semaphore>,
}

impl FileContent {
    /// The content of `file` from `offset` on.
    pub(super) fn new(file: Arc<dyn ReadFile>, offset: u64, budget: Arc<Semaphore>) -> Self {
        Self {
            file,
            offset,
            budget,
        }
    }
}

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

type PendingChunk = tokio::task::JoinHandle<std::io::Result<Bytes>>;

/// Starts reading the chunk at `at` (ending at most at `end`) on the blocking pool.
fn read_chunk(
    file: &Arc<dyn ReadFile>,
    budget: &Arc<Semaphore>,
    at: u64,
    end: u64,
) -> PendingChunk {
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
}

impl Content for FileContent {
    fn range(self: Box<Self>, start: u64, len: u64) -> ByteStream {
        let Self {
            file,
            offset,
            budget,
        } = *self;
        let begin = offset + start;
        let end = begin + len;
        let first = (begin < end).then(|| read_chunk(&file, &budget, begin, end));
        // Chunks are handed on in slices: the HTTP layer copies what it is given into its
        // write buffer, so a whole chunk there would be memory outside the budget for as
        // long as the client takes to read it.
        let state = (file, budget, begin, first, Bytes::new());
        futures_util::stream::unfold(
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
                            pending = (at < end).then(|| read_chunk(&file, &budget, at, end));
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
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::fs;

    fn content(file: Arc<dyn ReadFile>, budget: &Arc<Semaphore>) -> Box<dyn Content> {
        Box::new(FileContent {
            file,
            offset: 0,
            budget: budget.clone(),
        })
    }

    #[tokio::test]
    async fn read_ahead_is_full_size_within_the_budget_and_small_past_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let bytes: Vec<u8> = (0..3 * READ_CHUNK).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &bytes).unwrap();
        let open = || fs::Fs::open(&fs::RealFs, &path).unwrap();
        let budget = Arc::new(Semaphore::new(2));

        // A slow reader: its first chunk is taken and kept, the next is read ahead.
        let mut slow = content(open(), &budget).range(0, bytes.len() as u64);
        let kept = slow.next().await.unwrap().unwrap();
        assert_eq!(kept.len(), SLICE, "chunks are handed on in slices");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert_eq!(
            budget.available_permits(),
            0,
            "two MiB are held (the slice keeps its chunk)"
        );

        // Another download still gets every byte, in small chunks.
        let mut other = content(open(), &budget).range(0, bytes.len() as u64);
        let mut got = Vec::new();
        while let Some(chunk) = other.next().await {
            let chunk = chunk.unwrap();
            assert!(chunk.len() as u64 <= SMALL_READ_CHUNK);
            got.extend_from_slice(&chunk);
        }
        assert_eq!(got, bytes);

        // Freed chunks give their MiB back.
        drop(kept);
        drop(slow);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert_eq!(budget.available_permits(), 2);
    }
}
