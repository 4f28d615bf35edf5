//! Objects assembled from other objects without copying them (S3 multipart completion).
//!
//! Each part's file gets a second name (a hard link) in a new segment directory
//! `segments/<generation>/<i>`, which is fsynced; then the object file — a header, the
//! attributes and the segment table, no content — is written and installed like any small
//! object. A crash before the install leaves a segment directory no object names, removed
//! at the next start-up; after it, the object is whole. The parts stay objects of their own
//! until deleted; the segment links keep the bytes. Overwriting or deleting an assembled
//! object removes its segment directory after the object file is gone.
//!
//! The native ETag of an assembled object is the BLAKE3-128 of its parts' ETags and sizes
//! (strong, stable, never shared by different content), not of its bytes (ADR 0015).

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use futures_util::StreamExt;
use manifest_codec::ObjectKey;

use super::header::{open_checked, Header, MAX_ATTRS, MAX_SEGMENTS};
use super::read::FileContent;
use super::write::Staged;
use super::{blocking, LocalFs};
use crate::backend::fs::{Fs, ReadFile};
use crate::backend::{ByteStream, Content, ETag, NewObject, PutOutcome, StorageError};

impl LocalFs {
    pub(super) fn segment_dir(&self, generation: u64) -> PathBuf {
        self.segments.join(format!("{generation:016x}"))
    }

    fn new_generation(&self) -> u64 {
        let mut h = blake3::Hasher::new();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        h.update(&now.as_nanos().to_le_bytes());
        h.update(
            &self
                .tmp_counter
                .fetch_add(1, Ordering::Relaxed)
                .to_le_bytes(),
        );
        h.update(&std::process::id().to_le_bytes());
        let mut raw = [0; 8];
        raw.copy_from_slice(&h.finalize().as_bytes()[..8]);
        u64::from_le_bytes(raw)
    }

    /// Removes the segment directory `generation` (best effort: a leftover is removed at
    /// the next start-up).
    pub(super) async fn drop_segments(&self, generation: u64) {
        let fs = self.fs.clone();
        let dir = self.segment_dir(generation);
        if let Err(e) = blocking(move || fs.remove_dir_all(&dir)).await {
            tracing::warn!(generation, error = %e, "cannot remove a segment directory");
        }
    }

    /// Removes the temporary copies of log-resident parts (their links stay).
    async fn remove_copies(&self, copies: Vec<std::path::PathBuf>) {
        if copies.is_empty() {
            return;
        }
        let fs = self.fs.clone();
        let _ = blocking(move || {
            for copy in copies {
                let _ = fs.remove_file(&copy);
            }
            Ok(())
        })
        .await;
    }

    /// `key` made of `parts` in order (see the module documentation).
    pub(super) async fn assemble_parts(
        &self,
        key: &ObjectKey,
        new: NewObject,
        parts: Vec<ObjectKey>,
    ) -> Result<PutOutcome, StorageError> {
        let count = u32::try_from(parts.len())
            .ok()
            .filter(|n| (1..=MAX_SEGMENTS).contains(n))
            .ok_or_else(|| {
                StorageError::io(
                    "assembling an object",
                    std::io::Error::other("1 to 10,000 parts"),
                )
            })?;
        let attrs = new.attrs.encode();
        if attrs.len() > MAX_ATTRS {
            return Err(StorageError::AttributesTooLarge { limit: MAX_ATTRS });
        }
        let mut expected = Vec::with_capacity(parts.len());
        let mut hasher = blake3::Hasher::new();
        hasher.update(b"storaged assembled object\0");
        // Parts in the write log are copied out to files of their own to be linked.
        let mut copies = Vec::new();
        for part in &parts {
            let entry = self
                .current(part)
                .filter(|e| e.segments.is_none())
                .ok_or_else(|| StorageError::NotFound {
                    key: part.to_string(),
                })?;
            hasher.update(entry.etag.as_bytes());
            hasher.update(&entry.size.to_le_bytes());
            let path = match entry.log {
                Some(at) => match self.materialize(at).await {
                    Ok(copy) => {
                        copies.push(copy.clone());
                        copy
                    }
                    Err(e) => {
                        self.remove_copies(copies).await;
                        return Err(e);
                    }
                },
                None => self.object_path(part),
            };
            expected.push((path, entry.etag, entry.size));
        }
        let generation = self.new_generation();
        let dir = self.segment_dir(generation);
        let link = {
            let (fs, fsync, root, dir) = (
                self.fs.clone(),
                self.fsync.clone(),
                self.segments.clone(),
                dir.clone(),
            );
            let expected = expected.clone();
            tokio::task::spawn_blocking(move || {
                link_segments(fs.as_ref(), &fsync, &root, &dir, &expected)
            })
            .await
            .map_err(|e| StorageError::task("linking segments", e))?
        };
        self.remove_copies(copies).await;
        if let Err(e) = link {
            self.drop_segments(generation).await;
            return Err(e);
        }
        let mut table = bytes::BytesMut::with_capacity(8 + 8 * parts.len());
        table.extend_from_slice(&generation.to_le_bytes());
        for (_, _, size) in &expected {
            table.extend_from_slice(&size.to_le_bytes());
        }
        let header = Header {
            etag: ETag::from_hasher(&hasher),
            size: expected.iter().map(|(_, _, size)| size).sum(),
            s3_tag: new.s3_tag,
            attrs_len: u32::try_from(attrs.len()).unwrap_or(u32::MAX),
            segments: count,
        };
        let staged = Staged::table(header, attrs, table, generation);
        let temp = self.temp_path();
        let result = self
            .commit(
                key,
                new.condition,
                temp.clone(),
                self.object_path(key),
                staged,
            )
            .await;
        if result.is_err() {
            self.drop_segments(generation).await;
            let fs = self.fs.clone();
            let _ = blocking(move || fs.remove_file(&temp)).await;
        }
        result
    }
}

/// Links each part file into `dir` as segment `i`, checks that each link names the version
/// recorded (a concurrent overwrite of a part fails the assembly), and makes the directory
/// durable.
fn link_segments(
    fs: &dyn Fs,
    fsync: &super::FsyncPolicy,
    root: &Path,
    dir: &Path,
    expected: &[(PathBuf, ETag, u64)],
) -> Result<(), StorageError> {
    fs.create_dir(dir)
        .map_err(|e| StorageError::io("creating a segment directory", e))?;
    for (i, (part, etag, size)) in expected.iter().enumerate() {
        let segment = dir.join(format!("{i:05}"));
        fs.hard_link(part, &segment).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                StorageError::NotFound {
                    key: part.display().to_string(),
                }
            } else {
                StorageError::io("linking a segment", e)
            }
        })?;
        let (_, header) =
            open_checked(fs, &segment).map_err(|e| StorageError::io("checking a segment", e))?;
        if header.etag != *etag || header.size != *size || header.segments != 0 {
            return Err(StorageError::PreconditionFailed {
                key: part.display().to_string(),
            });
        }
    }
    fsync.dir(fs, dir)?;
    fsync.dir(fs, root)
}

/// The content of an assembled object: its segments, each an object file of its own.
#[derive(Debug)]
pub(super) struct Segmented {
    pieces: Vec<(Box<FileContent>, u64)>,
}

impl Segmented {
    /// Opens the segments of the object file `file` (whose header is `header`).
    pub(super) fn open(
        fs: &dyn Fs,
        file: &dyn ReadFile,
        header: &Header,
        segments_root: &Path,
        budget: &Arc<tokio::sync::Semaphore>,
    ) -> std::io::Result<Self> {
        let n = usize::try_from(header.segments).unwrap_or(0);
        let mut table = vec![0; 8 + 8 * n];
        file.read_exact_at(&mut table, header.content_offset())?;
        let word = |i: usize| {
            let mut raw = [0; 8];
            raw.copy_from_slice(&table[8 * i..8 * i + 8]);
            u64::from_le_bytes(raw)
        };
        let dir = segments_root.join(format!("{:016x}", word(0)));
        let mut pieces = Vec::with_capacity(n);
        for i in 0..n {
            let (segment, piece) = open_checked(fs, &dir.join(format!("{i:05}")))?;
            if piece.size != word(i + 1) || piece.segments != 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("segment {i} of an assembled object does not match its table"),
                ));
            }
            let content = FileContent::new(segment, piece.content_offset(), budget.clone());
            pieces.push((Box::new(content), piece.size));
        }
        Ok(Self { pieces })
    }
}

impl Content for Segmented {
    fn range(self: Box<Self>, start: u64, len: u64) -> ByteStream {
        let end = start + len;
        let mut at = 0;
        let mut ranges = Vec::new();
        for (piece, size) in self.pieces {
            let (first, last) = (at.max(start), (at + size).min(end));
            if first < last {
                ranges.push((piece, first - at, last - first));
            }
            at += size;
        }
        futures_util::stream::iter(ranges)
            .flat_map(|(piece, from, len)| piece.range(from, len))
            .boxed()
    }
}

/// Removes segment directories that no object names (assemblies a crash interrupted,
/// overwrites and deletes a crash kept from cleaning up); how many.
pub(super) fn sweep_segments(
    fs: &dyn Fs,
    root: &Path,
    named: &std::collections::HashSet<u64>,
) -> Result<usize, StorageError> {
    let mut swept = 0;
    for entry in fs
        .read_dir(root)
        .map_err(|e| StorageError::io("reading the segment directory", e))?
    {
        let generation = entry
            .name
            .to_str()
            .and_then(|n| u64::from_str_radix(n, 16).ok());
        if generation.is_some_and(|g| named.contains(&g)) {
            continue;
        }
        fs.remove_dir_all(&root.join(&entry.name))
            .map_err(|e| StorageError::io("removing an orphaned segment directory", e))?;
        swept += 1;
    }
    Ok(swept)
}

#[cfg(test)]
mod tests {
    use super::super::{FsyncPolicy, LocalFs};
    use crate::backend::conformance::{body, read};
    use crate::backend::{Backend, Condition, NewObject};
    use manifest_codec::ObjectKey;

    fn key(k: &str) -> ObjectKey {
        ObjectKey::parse(k).unwrap()
    }

    fn segment_dirs(root: &std::path::Path) -> usize {
        std::fs::read_dir(root.join("segments")).unwrap().count()
    }

    #[tokio::test]
    async fn assembled_objects_survive_a_restart_and_leave_no_segments_behind() {
        let dir = tempfile::tempdir().unwrap();
        let open = || LocalFs::open(dir.path(), FsyncPolicy::on(None));
        {
            let (store, _) = open().await.unwrap();
            store
                .put(&key("p/1"), Condition::None, body(vec![1; 70_000]))
                .await
                .unwrap();
            store
                .put(&key("p/2"), Condition::None, body("tail"))
                .await
                .unwrap();
            let parts = vec![key("p/1"), key("p/2")];
            store
                .assemble(&key("whole"), NewObject::default(), parts)
                .await
                .unwrap();
            store.delete(&key("p/1"), Condition::None).await.unwrap();
            assert_eq!(segment_dirs(dir.path()), 1);
        }
        // An interrupted assembly leaves a directory no object names.
        std::fs::create_dir(dir.path().join("segments/00000000deadbeef")).unwrap();
        let (store, report) = open().await.unwrap();
        assert_eq!(report.swept, 1);
        assert_eq!(segment_dirs(dir.path()), 1);
        let whole = read(&store, "whole").await.unwrap();
        assert_eq!((whole.len(), &whole[70_000..]), (70_004, &b"tail"[..]));
        // Overwriting, then deleting, removes the segments.
        store
            .put(&key("whole"), Condition::None, body("plain"))
            .await
            .unwrap();
        assert_eq!(segment_dirs(dir.path()), 0);
        let parts = vec![key("p/2")];
        store
            .assemble(&key("again"), NewObject::default(), parts)
            .await
            .unwrap();
        assert_eq!(segment_dirs(dir.path()), 1);
        store.delete(&key("again"), Condition::None).await.unwrap();
        assert_eq!(segment_dirs(dir.path()), 0);
    }
}
