//! The write path: temporary file in `tmp/` → write → fsync → (under the key's lock)
//! condition check → create missing directories → rename over the target → fsync the
//! parent and every directory created. Only then is the put acknowledged.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use futures_util::StreamExt;
use manifest_codec::ObjectKey;

use md5::Digest as _;

use super::header::{Header, HEADER_LEN, MAX_ATTRS};
use super::{blocking, Entry, FsyncPolicy, LocalFs, SMALL_OBJECT};
use crate::backend::fs::{Fs, Kind, WriteFile};
use crate::backend::{
    check_condition, Body, Condition, ETag, NewObject, PutOutcome, S3Tag, StorageError,
};

/// A larger upload is written in blocking writes of about this many bytes.
const WRITE_BATCH: usize = 1024 * 1024;

/// An upload that has been read: small ones still in memory, larger ones in their
/// fsynced temporary file.
pub(super) struct Staged {
    header: Header,
    /// A small object's attributes and content, to be written with the header.
    small: Option<(Vec<u8>, bytes::BytesMut)>,
    /// The segment directory of an assembled object.
    generation: Option<u64>,
}

impl Staged {
    /// An assembled object's file: header, attributes, segment table.
    pub(super) fn table(
        header: Header,
        attrs: Vec<u8>,
        table: bytes::BytesMut,
        generation: u64,
    ) -> Self {
        Self {
            header,
            small: Some((attrs, table)),
            generation: Some(generation),
        }
    }
}

/// The content hashes every object gets: BLAKE3 (storaged's ETag) and MD5 (S3's).
#[derive(Default)]
struct Hashes {
    blake3: blake3::Hasher,
    md5: md5::Md5,
}

impl Hashes {
    fn update(&mut self, data: &[u8]) {
        self.blake3.update(data);
        self.md5.update(data);
    }

    /// The header of `size` bytes hashed here, with `attrs_len` bytes of attributes; the
    /// S3 tag is `s3_tag` when given (an object assembled from parts).
    fn header(self, size: u64, attrs_len: usize, s3_tag: Option<S3Tag>) -> Header {
        Header {
            etag: ETag::from_hasher(&self.blake3),
            size,
            s3_tag: Some(s3_tag.unwrap_or_else(|| S3Tag::single(self.md5.finalize().into()))),
            attrs_len: u32::try_from(attrs_len).unwrap_or(u32::MAX),
            segments: 0,
        }
    }
}

impl LocalFs {
    /// Reads `body`. One that ends within [`SMALL_OBJECT`] bytes comes back buffered, to
    /// be written, fsynced and installed in one blocking task by [`Self::commit`]; a larger
    /// one is written in batches into a new temporary file at `path`, which is fsynced.
    pub(super) async fn write_temp(
        &self,
        path: &Path,
        new: &NewObject,
        mut body: Body,
    ) -> Result<Staged, StorageError> {
        let attrs = new.attrs.encode();
        if attrs.len() > MAX_ATTRS {
            return Err(StorageError::AttributesTooLarge { limit: MAX_ATTRS });
        }
        let mut hashes = Hashes::default();
        let mut buffered = bytes::BytesMut::new();
        let mut ended = false;
        while buffered.len() <= SMALL_OBJECT {
            let Some(chunk) = body.next().await else {
                ended = true;
                break;
            };
            buffered.extend_from_slice(&chunk?);
        }
        let mut size = buffered.len() as u64;
        if ended {
            hashes.update(&buffered);
            return Ok(Staged {
                header: hashes.header(size, attrs.len(), new.s3_tag),
                small: Some((attrs, buffered)),
                generation: None,
            });
        }

        let write_err = |e| StorageError::io("writing a temporary file", e);
        let fs = self.fs.clone();
        let at = path.to_path_buf();
        let file = blocking(move || fs.create_new(&at))
            .await
            .map_err(|e| StorageError::io("creating a temporary file", e))?;
        let mut writer = BatchWriter::new(file, hashes);
        let prefix = HEADER_LEN + attrs.len();
        let mut batch = bytes::BytesMut::with_capacity(WRITE_BATCH + prefix);
        batch.extend_from_slice(&[0; HEADER_LEN]);
        batch.extend_from_slice(&attrs);
        batch.extend_from_slice(&buffered);
        drop(buffered);
        // The first batch starts with the header's placeholder and the attributes, which
        // are not content and so not hashed.
        let mut skip = prefix;
        while let Some(chunk) = body.next().await {
            let chunk = chunk?;
            size += chunk.len() as u64;
            batch.extend_from_slice(&chunk);
            if batch.len() >= WRITE_BATCH {
                writer
                    .write(batch.split().freeze(), std::mem::take(&mut skip))
                    .await
                    .map_err(write_err)?;
            }
        }
        writer
            .write(batch.freeze(), skip)
            .await
            .map_err(write_err)?;
        let (mut file, hashes) = writer.finish().await.map_err(write_err)?;
        let header = hashes.header(size, attrs.len(), new.s3_tag);
        let fsync = self.fsync.clone();
        tokio::task::spawn_blocking(move || {
            file.write_all_at(&header.encode(), 0)
                .map_err(|e| StorageError::io("writing an object header", e))?;
            fsync.file(file.as_mut())
        })
        .await
        .map_err(|e| StorageError::task("finishing a temporary file", e))??;
        Ok(Staged {
            header,
            small: None,
            generation: None,
        })
    }

    /// Under the key's lock: checks the condition, writes a small object's temporary file,
    /// renames it into place and fsyncs the directory, all in one blocking task.
    pub(super) async fn commit(
        &self,
        key: &ObjectKey,
        condition: Condition,
        temp: PathBuf,
        target: PathBuf,
        staged: Staged,
    ) -> Result<PutOutcome, StorageError> {
        let Staged {
            header,
            small,
            generation,
        } = staged;
        let small = match (small, generation, self.log_for(header.size)) {
            (Some((attrs, content)), None, Some(log)) => {
                let log = log.clone();
                return self
                    .commit_to_log(&log, key, condition, header, attrs, content.freeze())
                    .await;
            }
            (small, ..) => small,
        };
        let _key = self.locks.lock(key).await;
        let previous = self.current(key);
        check_condition(key, condition, previous.map(|e| e.tags()))?;
        let Installed {
            modified: last_modified,
            durable,
        } = {
            let _dirs = self.dirs.read().await;
            let root = self.objects.clone();
            let fs = self.fs.clone();
            let fsync = self.fsync.clone();
            let key = key.to_string();
            tokio::task::spawn_blocking(move || {
                let fs = fs.as_ref();
                if let Some((attrs, content)) = small {
                    write_small(fs, &temp, &header.encode(), &attrs, &content, &fsync)?;
                }
                install(fs, &root, &temp, &target, &fsync, &key)
            })
            .await
            .map_err(|e| StorageError::task("installing an object", e))??
        };
        let _superseded = if previous.is_some_and(|p| p.log.is_some()) {
            self.supersede(key).await?
        } else {
            None
        };
        let entry = Entry {
            size: header.size,
            etag: header.etag,
            s3_tag: header.s3_tag,
            last_modified,
            segments: generation,
            log: None,
        };
        let outcome = self.publish(key, entry, previous).await;
        durable.map(|()| outcome)
    }
}

type Writing = (Box<dyn WriteFile>, Hashes);
type PendingWrite = tokio::task::JoinHandle<(Writing, std::io::Result<()>)>;

/// Writes a file in blocking batches, one batch in flight while the next is gathered;
/// the content is hashed on the blocking pool too, in order, batch by batch.
struct BatchWriter {
    idle: Option<Writing>,
    pending: Option<PendingWrite>,
}

impl BatchWriter {
    fn new(file: Box<dyn WriteFile>, hashes: Hashes) -> Self {
        Self {
            idle: Some((file, hashes)),
            pending: None,
        }
    }

    /// Waits for the previous batch, then starts writing `batch`, hashing all but its
    /// first `skip` bytes.
    async fn write(&mut self, batch: bytes::Bytes, skip: usize) -> std::io::Result<()> {
        let (mut file, mut hashes) = self.settle().await?;
        self.pending = Some(tokio::task::spawn_blocking(move || {
            hashes.update(batch.get(skip..).unwrap_or_default());
            let result = file.write_all(&batch);
            ((file, hashes), result)
        }));
        Ok(())
    }

    async fn settle(&mut self) -> std::io::Result<Writing> {
        if let Some(pending) = self.pending.take() {
            let (writing, result) = pending.await.map_err(std::io::Error::other)?;
            result?;
            return Ok(writing);
        }
        self.idle
            .take()
            .ok_or_else(|| std::io::Error::other("a failed write left no file"))
    }

    /// The file and the content's hashes, once every batch is written.
    async fn finish(mut self) -> std::io::Result<Writing> {
        self.settle().await
    }
}

/// Creates `path`, writes header, attributes and content, fsyncs it as `fsync` says.
pub(super) fn write_small(
    fs: &dyn Fs,
    path: &Path,
    header: &[u8],
    attrs: &[u8],
    content: &[u8],
    fsync: &FsyncPolicy,
) -> Result<(), StorageError> {
    let mut file = fs
        .create_new(path)
        .map_err(|e| StorageError::io("creating a temporary file", e))?;
    let mut all = Vec::with_capacity(header.len() + attrs.len() + content.len());
    all.extend_from_slice(header);
    all.extend_from_slice(attrs);
    all.extend_from_slice(content);
    file.write_all(&all)
        .map_err(|e| StorageError::io("writing a temporary file", e))?;
    fsync.file(file.as_mut())
}

/// What [`install`] did: the rename happened; `durable` says whether the fsyncs after it
/// succeeded (if not, readers see the new version but a crash may undo it).
pub(super) struct Installed {
    pub(super) modified: SystemTime,
    pub(super) durable: Result<(), StorageError>,
}

/// Creates the directories `target` needs, renames `temp` over it and fsyncs (as `fsync`
/// says) the target's directory and the parent of every directory on the way that was
/// created and may not be durable yet — by this writer or by a concurrent one, which may
/// not have fsynced it yet.
fn install(
    fs: &dyn Fs,
    root: &Path,
    temp: &Path,
    target: &Path,
    fsync: &FsyncPolicy,
    key: &str,
) -> Result<Installed, StorageError> {
    let parent = target.parent().unwrap_or(root);
    let relative = parent.strip_prefix(root).unwrap_or(Path::new(""));
    let mut created = Vec::new();
    let mut fresh = Vec::new();
    let mut dir = root.to_path_buf();
    for component in relative.components() {
        dir.push(component);
        match fs.stat(&dir) {
            Ok(Some(m)) if m.kind == Kind::Dir => {
                if fsync.is_fresh(&dir) {
                    fresh.push(dir.clone());
                }
            }
            Ok(Some(_)) => {
                return Err(StorageError::KeyConflict {
                    key: key.to_owned(),
                    reason: "a path component is a file or link that storaged did not create",
                })
            }
            Ok(None) => {
                // Noted before it exists, so that no writer finds it and not noted.
                fsync.note_created(&dir);
                match fs.create_dir(&dir) {
                    Ok(()) => created.push(dir.clone()),
                    // Its creator noted it too and forgets it once durable.
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(StorageError::io("creating a directory", e)),
                }
                fresh.push(dir.clone());
            }
            Err(e) => return Err(StorageError::io("inspecting a directory", e)),
        }
    }
    if fs
        .stat(target)
        .is_ok_and(|m| m.is_some_and(|m| m.kind != Kind::File))
    {
        return Err(StorageError::KeyConflict {
            key: key.to_owned(),
            reason: "the object path is a directory or link that storaged did not create",
        });
    }
    fs.rename(temp, target)
        .map_err(|e| StorageError::io("renaming into place", e))?;
    let durable = (|| {
        fsync.dir(fs, parent)?;
        for dir in &fresh {
            if let Some(p) = dir.parent() {
                fsync.dir(fs, p)?;
            }
        }
        for dir in &created {
            fsync.forget_created(dir);
        }
        Ok(())
    })()
    .map_err(|e| match e {
        StorageError::Io { source, .. } | StorageError::InsufficientStorage(source) => {
            StorageError::NotDurable {
                op: "fsyncing directories after a rename",
                source,
            }
        }
        e => e,
    });
    let modified = match fs.stat(target) {
        Ok(Some(m)) => m.modified,
        _ => SystemTime::now(),
    };
    Ok(Installed { modified, durable })
}
