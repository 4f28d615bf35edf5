//! The durable local-disk backend.
//!
//! Layout under the data directory:
//! - `objects/`: one file per object. Each key segment is a path component with `%`
//!   escaped as `%25`; the last one gets the suffix `%obj`. Since an escaped segment never
//!   contains `%o`, object files and directories never collide (`a` and `a/b` coexist).
//! - `tmp/`: uploads in progress; swept at start-up, never listed.
//!
//! An object file is a 64-byte header (magic, ETag, content length) followed by the
//! content, so an object's tag is read from the very file that is served.
//!
//! A put streams into `tmp/`, fsyncs, then, under the key's lock, checks the condition,
//! creates missing directories, renames over the target and fsyncs the parent and every
//! directory it created. Only then does it return. The sorted in-memory index (rebuilt
//! from disk at start-up) answers existence, conditions and listings.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Instant, SystemTime};

use async_trait::async_trait;
use futures_util::StreamExt;
use manifest_codec::ObjectKey;

use super::dirsync::DirSyncs;
use super::fs::{Fs, Kind, RealFs, WriteFile};
use super::{
    check_condition, page_of, Backend, Body, Condition, Content, ETag, ListPage, ObjectMeta,
    ObjectReader, PutOutcome,
};
use crate::Error;
use keylock::KeyLocks;

const HEADER_LEN: usize = 64;
const MAGIC: &[u8; 8] = b"STGOBJ01";
const OBJECT_SUFFIX: &str = "%obj";
const MAX_FILE_NAME: usize = 255;
/// Objects up to this size are written and read in a single blocking task.
const SMALL_OBJECT: usize = 256 * 1024;
/// Memory all downloads may hold in 1 MiB read-ahead chunks (past it they read 64 KiB).
const READ_BUDGET_MIB: usize = 256;
/// A larger upload is written in blocking writes of about this many bytes.
const WRITE_BATCH: usize = 1024 * 1024;

/// An upload that has been read: small ones still in memory, larger ones in their
/// fsynced temporary file.
struct Staged {
    etag: ETag,
    size: u64,
    small: Option<bytes::BytesMut>,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    size: u64,
    etag: ETag,
    last_modified: SystemTime,
}

/// Objects on a local filesystem, written durably.
#[derive(Debug)]
pub struct LocalFs {
    fs: Arc<dyn Fs>,
    objects: PathBuf,
    tmp: PathBuf,
    fsync: bool,
    fsync_seconds: Option<prometheus::Histogram>,
    index: RwLock<BTreeMap<ObjectKey, Entry>>,
    locks: KeyLocks<ObjectKey>,
    /// Puts hold it shared from creating directories to the rename; deletes hold it
    /// exclusively while removing empty directories, so a delete never removes a
    /// directory a put is about to rename into.
    dirs: tokio::sync::RwLock<()>,
    tmp_counter: AtomicU64,
    /// Directory fsyncs shared by concurrent writers (group commit).
    dir_syncs: Arc<DirSyncs>,
    /// Read-ahead memory of all downloads, one permit per MiB.
    read_budget: Arc<tokio::sync::Semaphore>,
    /// Holds an exclusive lock on `<data_dir>/LOCK` for the life of the store: a second
    /// storaged on the same directory would break per-key atomicity and the index.
    _owner: Box<dyn std::fmt::Debug + Send + Sync>,
}

/// What start-up found on disk.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenReport {
    /// Objects indexed.
    pub objects: usize,
    /// Leftover temporary files removed.
    pub swept: usize,
    /// Files or links under `objects/` that are not objects (ignored, left in place).
    pub skipped: usize,
}

impl LocalFs {
    /// Opens (creating if needed) the store in `data_dir`: sweeps leftover temporary files
    /// and rebuilds the index from the object files.
    pub async fn open(
        data_dir: &Path,
        fsync: bool,
        fsync_seconds: Option<prometheus::Histogram>,
    ) -> Result<(Self, OpenReport), Error> {
        Self::open_on(Arc::new(RealFs), data_dir, fsync, fsync_seconds).await
    }

    /// [`Self::open`] on the file system `fs`.
    pub(crate) async fn open_on(
        fs: Arc<dyn Fs>,
        data_dir: &Path,
        fsync: bool,
        fsync_seconds: Option<prometheus::Histogram>,
    ) -> Result<(Self, OpenReport), Error> {
        let objects = data_dir.join("objects");
        let tmp = data_dir.join("tmp");
        let created = missing_dirs(fs.as_ref(), data_dir);
        let owner = lock_data_dir(fs.as_ref(), data_dir)?;
        let (index, report) = {
            let (fs, objects, tmp) = (fs.clone(), objects.clone(), tmp.clone());
            let data_dir = data_dir.to_path_buf();
            tokio::task::spawn_blocking(move || {
                let scanned = scan(fs.as_ref(), &objects, &tmp)?;
                if fsync {
                    // The first acknowledged write needs `objects/` (and every directory
                    // created above it) to survive a power loss too.
                    let parents = created.iter().filter_map(|d| d.parent());
                    for dir in std::iter::once(data_dir.as_path()).chain(parents) {
                        fs.sync_dir(dir)
                            .map_err(|e| Error::io("fsyncing the data directory", e))?;
                    }
                }
                Ok::<_, Error>(scanned)
            })
            .await
            .map_err(|e| Error::io("scanning the data directory", std::io::Error::other(e)))??
        };
        let store = Self {
            fs,
            objects,
            tmp,
            fsync,
            fsync_seconds,
            index: RwLock::new(index),
            _owner: owner,
            locks: KeyLocks::default(),
            dirs: tokio::sync::RwLock::new(()),
            tmp_counter: AtomicU64::new(0),
            dir_syncs: Arc::default(),
            read_budget: Arc::new(tokio::sync::Semaphore::new(READ_BUDGET_MIB)),
        };
        Ok((store, report))
    }

    fn object_path(&self, key: &ObjectKey) -> PathBuf {
        object_path(&self.objects, key)
    }

    fn current(&self, key: &ObjectKey) -> Option<Entry> {
        self.index
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(key)
            .copied()
    }

    fn temp_path(&self) -> PathBuf {
        let n = self.tmp_counter.fetch_add(1, Ordering::Relaxed);
        self.tmp.join(format!("{}-{n}.tmp", std::process::id()))
    }

    /// Reads `body`. One that ends within [`SMALL_OBJECT`] bytes comes back buffered, to
    /// be written, fsynced and installed in one blocking task by [`Self::commit`]; a larger
    /// one streams through the async file API into a new temporary file at `path`, which
    /// is fsynced.
    async fn write_temp(&self, path: &Path, mut body: Body) -> Result<Staged, Error> {
        let mut hasher = blake3::Hasher::new();
        let mut buffered = bytes::BytesMut::new();
        let mut ended = false;
        while buffered.len() <= SMALL_OBJECT {
            let Some(chunk) = body.next().await else {
                ended = true;
                break;
            };
            buffered.extend_from_slice(&chunk?);
        }
        hasher.update(&buffered);
        let mut size = buffered.len() as u64;
        if ended {
            return Ok(Staged {
                etag: ETag::from_hasher(&hasher),
                size,
                small: Some(buffered),
            });
        }

        let write_err = |e| Error::io("writing a temporary file", e);
        let fs = self.fs.clone();
        let at = path.to_path_buf();
        let file = blocking(move || fs.create_new(&at))
            .await
            .map_err(|e| Error::io("creating a temporary file", e))?;
        let mut writer = BatchWriter::new(file);
        let mut batch = bytes::BytesMut::with_capacity(WRITE_BATCH + HEADER_LEN);
        batch.extend_from_slice(&[0; HEADER_LEN]);
        batch.extend_from_slice(&buffered);
        drop(buffered);
        while let Some(chunk) = body.next().await {
            let chunk = chunk?;
            hasher.update(&chunk);
            size += chunk.len() as u64;
            batch.extend_from_slice(&chunk);
            if batch.len() >= WRITE_BATCH {
                writer
                    .write(batch.split().freeze())
                    .await
                    .map_err(write_err)?;
            }
        }
        writer.write(batch.freeze()).await.map_err(write_err)?;
        let etag = ETag::from_hasher(&hasher);
        let mut file = writer.finish().await.map_err(write_err)?;
        let fsync = self.fsync;
        let started = Instant::now();
        blocking(move || {
            file.write_all_at(&header(etag, size), 0)?;
            if fsync {
                file.sync_all()?;
            }
            Ok(())
        })
        .await
        .map_err(|e| Error::io("finishing a temporary file (header, fsync)", e))?;
        if fsync {
            self.observe_fsync(started);
        }
        Ok(Staged {
            etag,
            size,
            small: None,
        })
    }

    fn observe_fsync(&self, started: Instant) {
        if let Some(h) = &self.fsync_seconds {
            h.observe(started.elapsed().as_secs_f64());
        }
    }

    /// Under the key's lock: checks the condition, writes a small object's temporary file,
    /// renames it into place and fsyncs the directory, all in one blocking task.
    async fn commit(
        &self,
        key: &ObjectKey,
        condition: Condition,
        temp: PathBuf,
        target: PathBuf,
        staged: Staged,
    ) -> Result<PutOutcome, Error> {
        let Staged { etag, size, small } = staged;
        let _key = self.locks.lock(key).await;
        let previous = self.current(key);
        check_condition(key, condition, previous.map(|e| e.etag))?;
        let last_modified = {
            let _dirs = self.dirs.read().await;
            let root = self.objects.clone();
            let fs = self.fs.clone();
            let fsync = self
                .fsync
                .then(|| (self.dir_syncs.clone(), self.fsync_seconds.clone()));
            let key = key.to_string();
            tokio::task::spawn_blocking(move || {
                let fs = fs.as_ref();
                if let Some(content) = small {
                    let histogram = fsync.as_ref().map(|(_, h)| h.clone());
                    write_small(fs, &temp, &header(etag, size), &content, histogram.as_ref())?;
                }
                let fsync = fsync.as_ref().map(|(d, h)| (d.as_ref(), h.as_ref()));
                install(fs, &root, &temp, &target, fsync, &key)
            })
            .await
            .map_err(|e| Error::io("installing an object", std::io::Error::other(e)))??
        };
        let entry = Entry {
            size,
            etag,
            last_modified,
        };
        self.index
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(key.clone(), entry);
        Ok(PutOutcome {
            meta: meta(key.clone(), entry),
            created: previous.is_none(),
        })
    }
}

#[async_trait(?Send)]
impl Backend for LocalFs {
    async fn put(
        &self,
        key: &ObjectKey,
        condition: Condition,
        body: Body,
    ) -> Result<PutOutcome, Error> {
        let target = self.object_path(key);
        // Fail fast before reading the body; checked again under the key's lock.
        check_condition(key, condition, self.current(key).map(|e| e.etag))?;
        let temp = self.temp_path();
        let result = match self.write_temp(&temp, body).await {
            Ok(staged) => {
                self.commit(key, condition, temp.clone(), target, staged)
                    .await
            }
            Err(e) => Err(e),
        };
        if result.is_err() {
            let fs = self.fs.clone();
            let at = temp.clone();
            if let Err(e) = blocking(move || fs.remove_file(&at)).await {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(path = %temp.display(), error = %e, "cannot remove temporary file");
                }
            }
        }
        result
    }

    async fn get(&self, key: &ObjectKey) -> Result<ObjectReader, Error> {
        let not_found = || Error::NotFound {
            key: key.to_string(),
        };
        if self.current(key).is_none() {
            return Err(not_found());
        }
        let path = self.object_path(key);
        let fs = self.fs.clone();
        let budget = self.read_budget.clone();
        let opened = tokio::task::spawn_blocking(move || open_object(fs.as_ref(), &path, &budget))
            .await
            .map_err(|e| Error::io("opening an object", std::io::Error::other(e)))?;
        let opened = match opened {
            Ok(opened) => opened,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(not_found()),
            Err(e) => return Err(Error::io("opening an object", e)),
        };
        Ok(ObjectReader {
            meta: ObjectMeta {
                key: key.clone(),
                size: opened.size,
                etag: opened.etag,
                last_modified: opened.last_modified,
            },
            content: opened.content,
        })
    }

    async fn delete(&self, key: &ObjectKey, condition: Condition) -> Result<(), Error> {
        let path = self.object_path(key);
        let _key = self.locks.lock(key).await;
        let current = self.current(key);
        check_condition(key, condition, current.map(|e| e.etag))?;
        if current.is_none() {
            return Ok(());
        }
        let fsync = self
            .fsync
            .then(|| (self.dir_syncs.clone(), self.fsync_seconds.clone()));
        let file = path.clone();
        let fs = self.fs.clone();
        tokio::task::spawn_blocking(move || -> Result<(), Error> {
            match fs.remove_file(&file) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("removing an object", e)),
            }
            if let (Some((dirs, histogram)), Some(parent)) = (fsync, file.parent()) {
                dirs.sync(fs.as_ref(), parent, histogram.as_ref())?;
            }
            Ok(())
        })
        .await
        .map_err(|e| Error::io("removing an object", std::io::Error::other(e)))??;
        self.index
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(key);

        let _dirs = self.dirs.write().await;
        let root = self.objects.clone();
        let fs = self.fs.clone();
        tokio::task::spawn_blocking(move || remove_empty_parents(fs.as_ref(), &root, &path))
            .await
            .ok();
        Ok(())
    }

    async fn list(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<ListPage, Error> {
        let index = self
            .index
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Ok(page_of(&index, prefix, after, limit, |k, e| {
            meta(k.clone(), *e)
        }))
    }

    async fn is_ready(&self) -> bool {
        let dir_ok = |p: &Path| matches!(self.fs.stat(p), Ok(Some(m)) if m.kind == Kind::Dir);
        dir_ok(&self.objects) && dir_ok(&self.tmp)
    }
}

struct Opened {
    size: u64,
    etag: ETag,
    last_modified: SystemTime,
    content: Content,
}

/// Opens an object file and reads its header; a small object's content is read at once,
/// so serving it costs one blocking task.
fn open_object(
    fs: &dyn Fs,
    path: &Path,
    budget: &Arc<tokio::sync::Semaphore>,
) -> std::io::Result<Opened> {
    let file = fs.open(path)?;
    let mut raw = [0; HEADER_LEN];
    file.read_exact_at(&mut raw, 0)?;
    let (etag, size) = parse_header(&raw, file.size()).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("bad object header in {}", path.display()),
        )
    })?;
    let content = if size <= SMALL_OBJECT as u64 {
        let mut content = vec![0; usize::try_from(size).unwrap_or(0)];
        file.read_exact_at(&mut content, HEADER_LEN as u64)?;
        Content::Memory(content.into())
    } else {
        Content::File {
            file: file.clone(),
            offset: HEADER_LEN as u64,
            budget: budget.clone(),
        }
    };
    Ok(Opened {
        size,
        etag,
        last_modified: file.modified(),
        content,
    })
}

/// Runs `f` on the blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)))
}

type PendingWrite = tokio::task::JoinHandle<(Box<dyn WriteFile>, std::io::Result<()>)>;

/// Writes a file in blocking batches, one batch in flight while the next is gathered.
struct BatchWriter {
    file: Option<Box<dyn WriteFile>>,
    pending: Option<PendingWrite>,
}

impl BatchWriter {
    fn new(file: Box<dyn WriteFile>) -> Self {
        Self {
            file: Some(file),
            pending: None,
        }
    }

    /// Waits for the previous batch, then starts writing `batch`.
    async fn write(&mut self, batch: bytes::Bytes) -> std::io::Result<()> {
        let mut file = self.settle().await?;
        self.pending = Some(tokio::task::spawn_blocking(move || {
            let result = file.write_all(&batch);
            (file, result)
        }));
        Ok(())
    }

    async fn settle(&mut self) -> std::io::Result<Box<dyn WriteFile>> {
        if let Some(pending) = self.pending.take() {
            let (file, result) = pending.await.map_err(std::io::Error::other)?;
            result?;
            return Ok(file);
        }
        self.file
            .take()
            .ok_or_else(|| std::io::Error::other("a failed write left no file"))
    }

    /// The file, once every batch is written.
    async fn finish(mut self) -> std::io::Result<Box<dyn WriteFile>> {
        self.settle().await
    }
}

/// Creates `path`, writes header and content, fsyncs it when asked.
fn write_small(
    fs: &dyn Fs,
    path: &Path,
    header: &[u8],
    content: &[u8],
    fsync: Option<&Option<prometheus::Histogram>>,
) -> Result<(), Error> {
    let write_err = |e| Error::io("writing a temporary file", e);
    let mut file = fs
        .create_new(path)
        .map_err(|e| Error::io("creating a temporary file", e))?;
    let mut all = Vec::with_capacity(header.len() + content.len());
    all.extend_from_slice(header);
    all.extend_from_slice(content);
    file.write_all(&all).map_err(write_err)?;
    if let Some(histogram) = fsync {
        let started = Instant::now();
        file.sync_all()
            .map_err(|e| Error::io("fsyncing a temporary file", e))?;
        if let Some(h) = histogram {
            h.observe(started.elapsed().as_secs_f64());
        }
    }
    Ok(())
}

/// `dir` and those of its ancestors that do not exist yet.
fn missing_dirs(fs: &dyn Fs, dir: &Path) -> Vec<PathBuf> {
    dir.ancestors()
        .take_while(|d| !d.as_os_str().is_empty() && matches!(fs.stat(d), Ok(None)))
        .map(Path::to_path_buf)
        .collect()
}

/// Takes the data directory's exclusive lock, or fails naming the directory when another
/// process holds it.
fn lock_data_dir(
    fs: &dyn Fs,
    data_dir: &Path,
) -> Result<Box<dyn std::fmt::Debug + Send + Sync>, Error> {
    fs.lock(data_dir).map_err(|e| {
        if e.kind() == std::io::ErrorKind::WouldBlock {
            Error::io(
                "locking the data directory",
                std::io::Error::other(format!(
                    "{} is in use by another storaged process",
                    data_dir.display()
                )),
            )
        } else {
            Error::io("locking the data directory", e)
        }
    })
}

fn meta(key: ObjectKey, entry: Entry) -> ObjectMeta {
    ObjectMeta {
        key,
        size: entry.size,
        etag: entry.etag,
        last_modified: entry.last_modified,
    }
}

fn header(etag: ETag, size: u64) -> [u8; HEADER_LEN] {
    let mut raw = [0; HEADER_LEN];
    raw[..8].copy_from_slice(MAGIC);
    raw[8..24].copy_from_slice(etag.as_bytes());
    raw[24..32].copy_from_slice(&size.to_le_bytes());
    raw
}

/// The ETag and content length of an object file, if its header is intact and agrees with
/// the file's length.
fn parse_header(raw: &[u8; HEADER_LEN], file_len: u64) -> Option<(ETag, u64)> {
    if &raw[..8] != MAGIC {
        return None;
    }
    let mut etag = [0; 16];
    etag.copy_from_slice(&raw[8..24]);
    let mut size = [0; 8];
    size.copy_from_slice(&raw[24..32]);
    let size = u64::from_le_bytes(size);
    (file_len.checked_sub(HEADER_LEN as u64) == Some(size))
        .then_some((ETag::from_bytes(etag), size))
}

fn escape(segment: &str) -> String {
    segment.replace('%', "%25")
}

fn unescape(name: &str) -> Option<String> {
    let plain = name.replace("%25", "%");
    // Every '%' in an escaped name starts "%25"; anything else is not one of ours.
    (escape(&plain) == name).then_some(plain)
}

/// The file of `key` under `root`. Each segment becomes a path component; a segment too
/// long for one file name once escaped is split into pieces of at most
/// [`PIECE`] escaped bytes, each but the last a directory named `<piece>%+`.
fn object_path(root: &Path, key: &ObjectKey) -> PathBuf {
    let mut path = root.to_path_buf();
    let segments: Vec<&str> = key.segments().collect();
    for (i, segment) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        let suffix = if last { OBJECT_SUFFIX } else { "" };
        let escaped = escape(segment);
        if escaped.len() + suffix.len() <= MAX_FILE_NAME {
            path.push(escaped + suffix);
            continue;
        }
        let pieces = split_escaped(segment);
        for (j, piece) in pieces.iter().enumerate() {
            if j + 1 < pieces.len() {
                path.push(format!("{piece}{CONTINUED}"));
            } else {
                path.push(format!("{piece}{suffix}"));
            }
        }
    }
    path
}

/// Escaped bytes per piece of a long segment: with `%obj` or `%+` it fits a file name.
const PIECE: usize = 250;
/// Marks a directory that holds the rest of a long segment (an escaped name never
/// contains `%+`, so it never collides with a segment's own directory).
const CONTINUED: &str = "%+";

/// `segment` escaped, in pieces of at most [`PIECE`] bytes, never splitting a character
/// or an escape.
fn split_escaped(segment: &str) -> Vec<String> {
    let mut pieces = vec![String::new()];
    for ch in segment.chars() {
        let mut buf = [0; 4];
        let escaped = if ch == '%' {
            "%25"
        } else {
            ch.encode_utf8(&mut buf)
        };
        if pieces
            .last()
            .is_some_and(|p| p.len() + escaped.len() > PIECE)
        {
            pieces.push(String::new());
        }
        if let Some(p) = pieces.last_mut() {
            p.push_str(escaped);
        }
    }
    pieces
}

/// Creates the directories `target` needs, renames `temp` over it and, when `fsync` is
/// set, fsyncs the target's directory and the parent of every directory created.
fn install(
    fs: &dyn Fs,
    root: &Path,
    temp: &Path,
    target: &Path,
    fsync: Option<(&DirSyncs, Option<&prometheus::Histogram>)>,
    key: &str,
) -> Result<SystemTime, Error> {
    let parent = target.parent().unwrap_or(root);
    let relative = parent.strip_prefix(root).unwrap_or(Path::new(""));
    let mut created = Vec::new();
    let mut dir = root.to_path_buf();
    for component in relative.components() {
        dir.push(component);
        match fs.stat(&dir) {
            Ok(Some(m)) if m.kind == Kind::Dir => {}
            Ok(Some(_)) => {
                return Err(Error::KeyConflict {
                    key: key.to_owned(),
                    reason: "a path component is a file or link that storaged did not create",
                })
            }
            Ok(None) => match fs.create_dir(&dir) {
                Ok(()) => created.push(dir.clone()),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(Error::io("creating a directory", e)),
            },
            Err(e) => return Err(Error::io("inspecting a directory", e)),
        }
    }
    if fs
        .stat(target)
        .is_ok_and(|m| m.is_some_and(|m| m.kind != Kind::File))
    {
        return Err(Error::KeyConflict {
            key: key.to_owned(),
            reason: "the object path is a directory or link that storaged did not create",
        });
    }
    fs.rename(temp, target)
        .map_err(|e| Error::io("renaming into place", e))?;
    if let Some((dirs, histogram)) = fsync {
        dirs.sync(fs, parent, histogram)?;
        for dir in &created {
            if let Some(p) = dir.parent() {
                dirs.sync(fs, p, histogram)?;
            }
        }
    }
    match fs.stat(target) {
        Ok(Some(m)) => Ok(m.modified),
        Ok(None) => Err(Error::io(
            "reading object metadata",
            std::io::ErrorKind::NotFound.into(),
        )),
        Err(e) => Err(Error::io("reading object metadata", e)),
    }
}

/// Removes now-empty directories from `path`'s parent up to (excluding) `root`.
fn remove_empty_parents(fs: &dyn Fs, root: &Path, path: &Path) {
    let mut dir = path.parent();
    while let Some(d) = dir {
        if d == root || !d.starts_with(root) {
            break;
        }
        if fs.remove_dir(d).is_err() {
            break; // not empty (or already gone): stop climbing
        }
        dir = d.parent();
    }
}

/// Prepares the directories, sweeps `tmp/` and indexes every object under `objects/`.
fn scan(
    fs: &dyn Fs,
    objects: &Path,
    tmp: &Path,
) -> Result<(BTreeMap<ObjectKey, Entry>, OpenReport), Error> {
    fs.create_dir_all(objects)
        .map_err(|e| Error::io("creating the objects directory", e))?;
    fs.create_dir_all(tmp)
        .map_err(|e| Error::io("creating the temporary directory", e))?;
    let mut report = OpenReport::default();
    for entry in fs
        .read_dir(tmp)
        .map_err(|e| Error::io("reading the temporary directory", e))?
    {
        let path = tmp.join(&entry.name);
        let removed = if entry.kind == Kind::Dir {
            fs.remove_dir_all(&path)
        } else {
            fs.remove_file(&path)
        };
        removed.map_err(|e| Error::io("sweeping a temporary file", e))?;
        report.swept += 1;
    }
    let mut index = BTreeMap::new();
    let mut stack = vec![(objects.to_path_buf(), String::new())];
    while let Some((dir, prefix)) = stack.pop() {
        for entry in fs
            .read_dir(&dir)
            .map_err(|e| Error::io("reading an object directory", e))?
        {
            let path = dir.join(&entry.name);
            let Some(name) = entry.name.to_str() else {
                tracing::warn!(path = %path.display(), "skipping a file whose name is not utf-8");
                report.skipped += 1;
                continue;
            };
            if entry.kind == Kind::Dir {
                if let Some(piece) = name.strip_suffix(CONTINUED).and_then(unescape) {
                    stack.push((path, format!("{prefix}{piece}")));
                } else if let Some(segment) = unescape(name) {
                    stack.push((path, format!("{prefix}{segment}/")));
                } else {
                    tracing::warn!(path = %path.display(), "skipping a directory storaged did not create");
                    report.skipped += 1;
                }
                continue;
            }
            let parsed = (entry.kind == Kind::File)
                .then(|| name.strip_suffix(OBJECT_SUFFIX))
                .flatten()
                .and_then(unescape)
                .and_then(|segment| ObjectKey::parse(&format!("{prefix}{segment}")).ok());
            let Some(key) = parsed else {
                tracing::warn!(path = %path.display(), "skipping a file or link that is not an object");
                report.skipped += 1;
                continue;
            };
            match read_entry(fs, &path) {
                Ok(entry) => {
                    index.insert(key, entry);
                    report.objects += 1;
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "skipping an object file with a bad header");
                    report.skipped += 1;
                }
            }
        }
    }
    Ok((index, report))
}

fn read_entry(fs: &dyn Fs, path: &Path) -> std::io::Result<Entry> {
    let file = fs.open(path)?;
    let mut raw = [0; HEADER_LEN];
    file.read_exact_at(&mut raw, 0)?;
    let (etag, size) = parse_header(&raw, file.size())
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "bad object header"))?;
    Ok(Entry {
        size,
        etag,
        last_modified: file.modified(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_round_trips_and_keeps_files_and_dirs_apart() {
        for segment in ["a", "%", "%25", "100%obj", "x%oby", "caf\u{e9}"] {
            let escaped = escape(segment);
            assert_eq!(unescape(&escaped).as_deref(), Some(segment));
            assert!(!escaped.contains("%o"), "{escaped}");
        }
        assert_eq!(unescape("%zz"), None);
        assert_eq!(unescape("a%obj"), None);
    }

    #[test]
    fn object_paths() {
        let root = Path::new("/d/objects");
        let key = ObjectKey::parse("a/b%c/d.parquet").unwrap();
        assert_eq!(
            object_path(root, &key),
            PathBuf::from("/d/objects/a/b%25c/d.parquet%obj")
        );
        let fits = ObjectKey::parse(&"x".repeat(251)).unwrap();
        assert_eq!(
            object_path(root, &fits),
            root.join(format!("{}%obj", "x".repeat(251)))
        );
        // Longer segments are split into pieces, each fitting a file name.
        let long = ObjectKey::parse(&format!("{}/{}", "d".repeat(600), "f%".repeat(200))).unwrap();
        let path = object_path(root, &long);
        let names: Vec<String> = path
            .strip_prefix(root)
            .unwrap()
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| n.len() <= MAX_FILE_NAME), "{names:?}");
        // 600 bytes: 250 + 250 + 100; "f%" escapes to 4 bytes: 800 in 62 × 4-byte pieces.
        assert_eq!(names.len(), 3 + 4, "{names:?}");
        assert!(names[0].ends_with(CONTINUED) && names[1].ends_with(CONTINUED));
        assert_eq!(names[2], "d".repeat(100));
        assert!(names[3..6].iter().all(|n| n.ends_with(CONTINUED)));
        assert!(names[6].ends_with(OBJECT_SUFFIX));
        for name in &names[3..] {
            let piece = name
                .strip_suffix(CONTINUED)
                .or_else(|| name.strip_suffix(OBJECT_SUFFIX))
                .unwrap();
            assert!(unescape(piece).is_some(), "{piece} splits an escape");
        }
        let pieces = split_escaped(&"\u{1f600}".repeat(100));
        assert!(pieces.iter().all(|p| p.len() <= PIECE));
        assert_eq!(pieces.concat(), "\u{1f600}".repeat(100));
    }

    #[tokio::test]
    async fn conformance_with_fsync() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = LocalFs::open(dir.path(), true, None).await.unwrap();
        super::super::conformance::run_all(&store).await;
    }

    #[tokio::test]
    async fn conformance_without_fsync() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = LocalFs::open(dir.path(), false, None).await.unwrap();
        super::super::conformance::run_all(&store).await;
    }

    #[tokio::test]
    async fn a_data_directory_has_one_owner_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let (first, _) = LocalFs::open(dir.path(), true, None).await.unwrap();
        let err = LocalFs::open(dir.path(), true, None).await.unwrap_err();
        assert!(
            format!("{err:?}").contains("in use by another storaged"),
            "{err:?}"
        );
        drop(first);
        LocalFs::open(dir.path(), true, None).await.unwrap();
    }

    #[tokio::test]
    async fn reopen_rebuilds_the_index_and_sweeps_temp_files() {
        use crate::backend::conformance::body;
        let dir = tempfile::tempdir().unwrap();
        let key = ObjectKey::parse("x/y").unwrap();
        let etag = {
            let (store, _) = LocalFs::open(dir.path(), true, None).await.unwrap();
            store
                .put(&key, Condition::None, body("hello"))
                .await
                .unwrap()
                .meta
                .etag
        };
        std::fs::write(dir.path().join("tmp/leftover.tmp"), b"partial").unwrap();
        std::fs::write(dir.path().join("objects/stray"), b"not ours").unwrap();
        let (store, report) = LocalFs::open(dir.path(), true, None).await.unwrap();
        assert_eq!(report.objects, 1);
        assert_eq!(report.swept, 1);
        assert_eq!(report.skipped, 1);
        let page = store.list("", None, 10).await.unwrap();
        assert_eq!(page.objects.len(), 1);
        assert_eq!(page.objects[0].etag, etag);
        assert!(std::fs::read_dir(dir.path().join("tmp"))
            .unwrap()
            .next()
            .is_none());
    }
}
