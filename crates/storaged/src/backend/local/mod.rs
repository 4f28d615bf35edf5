//! The durable local-disk backend.
//!
//! Layout under the data directory:
//! - `objects/`: one file per object (key → path in `paths`), each a 64-byte header
//!   (`header`) followed by the content.
//! - `tmp/`: uploads in progress; swept at start-up (`scan`), never listed.
//! - `LOCK`: held exclusively for the life of the store.
//!
//! A put streams into `tmp/`, fsyncs, then, under the key's lock, checks the condition,
//! creates missing directories, renames over the target and fsyncs the parent and every
//! directory it created (`write`). Only then does it return. The sorted in-memory index
//! (rebuilt from disk at start-up) answers existence, conditions and listings. Reads
//! (`read`) stream from the opened file with a bounded read-ahead.

mod assemble;
mod delete;
mod dirsync;
mod fsync;
mod header;
mod log;
mod logged;
mod paths;
mod read;
mod scan;
mod write;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use async_trait::async_trait;
use manifest_codec::ObjectKey;

use super::fs::{Fs, Kind, RealFs};
use super::{
    page_of, Backend, Body, Condition, ETag, ListPage, NewObject, ObjectMeta, ObjectReader,
    PutOutcome, S3Tag, StorageError,
};
use keylock::KeyLocks;

pub use fsync::FsyncPolicy;
pub use log::LogMetrics;
pub use logged::LogConfig;
pub use scan::OpenReport;

/// Objects up to this size are written and read in a single blocking task.
const SMALL_OBJECT: usize = 256 * 1024;

#[derive(Debug, Clone, Copy)]
struct Entry {
    size: u64,
    etag: ETag,
    s3_tag: Option<S3Tag>,
    last_modified: SystemTime,
    /// The segment directory of an assembled object.
    segments: Option<u64>,
    /// Where the record is, for an object in the write log.
    log: Option<log::Appended>,
}

impl Entry {
    fn tags(&self) -> (ETag, Option<S3Tag>) {
        (self.etag, self.s3_tag)
    }
}

/// Objects on a local filesystem, written durably.
#[derive(Debug)]
pub struct LocalFs {
    fs: Arc<dyn Fs>,
    objects: PathBuf,
    tmp: PathBuf,
    /// Segment directories of assembled objects (`assemble`).
    segments: PathBuf,
    fsync: FsyncPolicy,
    index: Arc<RwLock<BTreeMap<ObjectKey, Entry>>>,
    locks: KeyLocks<ObjectKey>,
    /// Puts hold it shared from creating directories to the rename; deletes hold it
    /// exclusively while removing empty directories, so a delete never removes a
    /// directory a put is about to rename into.
    dirs: tokio::sync::RwLock<()>,
    tmp_counter: AtomicU64,
    /// Read-ahead memory of all downloads, one permit per MiB.
    read_budget: Arc<tokio::sync::Semaphore>,
    /// The write log for small objects, when on.
    log: Option<logged::Logged>,
    /// The exclusive lock on `<data_dir>/LOCK`, held for the life of the store.
    _owner: Box<dyn std::fmt::Debug + Send + Sync>,
}

impl LocalFs {
    /// Opens (creating if needed) the store in `data_dir`: sweeps leftover temporary files
    /// and rebuilds the index from the object files.
    pub async fn open(
        data_dir: &Path,
        fsync: FsyncPolicy,
    ) -> Result<(Self, OpenReport), StorageError> {
        Self::open_on(Arc::new(RealFs), data_dir, fsync).await
    }

    /// [`Self::open`] with small objects in the write log as `log` says (ADR 0017).
    pub async fn open_with_log(
        data_dir: &Path,
        fsync: FsyncPolicy,
        log: LogConfig,
        metrics: LogMetrics,
    ) -> Result<(Self, OpenReport), StorageError> {
        Self::open_with(Arc::new(RealFs), data_dir, fsync, log, metrics).await
    }

    /// [`Self::open`] on the file system `fs`.
    pub(crate) async fn open_on(
        fs: Arc<dyn Fs>,
        data_dir: &Path,
        fsync: FsyncPolicy,
    ) -> Result<(Self, OpenReport), StorageError> {
        Self::open_with(fs, data_dir, fsync, LogConfig::OFF, LogMetrics::default()).await
    }

    /// [`Self::open_with_log`] on the file system `fs`.
    pub(crate) async fn open_with(
        fs: Arc<dyn Fs>,
        data_dir: &Path,
        fsync: FsyncPolicy,
        log_config: LogConfig,
        log_metrics: LogMetrics,
    ) -> Result<(Self, OpenReport), StorageError> {
        let objects = data_dir.join("objects");
        let tmp = data_dir.join("tmp");
        let segments = data_dir.join("segments");
        let created = scan::missing_dirs(fs.as_ref(), data_dir);
        let owner = scan::lock_data_dir(fs.as_ref(), data_dir)?;
        let (index, report, log, superseded) = {
            let (fs, objects, tmp) = (fs.clone(), objects.clone(), tmp.clone());
            let segments = segments.clone();
            let data_dir = data_dir.to_path_buf();
            let fsync = fsync.clone();
            tokio::task::spawn_blocking(move || {
                let (mut index, report) = scan::scan(fs.as_ref(), &objects, &tmp, &segments)?;
                let (log, superseded) = if log_config.max_object_size > 0 {
                    let (log, superseded) = logged::open_log(
                        fs.clone(),
                        &data_dir.join("log"),
                        log_config,
                        fsync.enabled(),
                        log_metrics,
                        &mut index,
                    )?;
                    (Some(log), superseded)
                } else {
                    (None, Vec::new())
                };
                // The first acknowledged write needs `objects/` (and every directory
                // created above it) to survive a power loss too.
                let parents = created.iter().filter_map(|d| d.parent());
                for dir in std::iter::once(data_dir.as_path()).chain(parents) {
                    fsync.dir_now(fs.as_ref(), dir)?;
                }
                Ok::<_, StorageError>((index, report, log, superseded))
            })
            .await
            .map_err(|e| StorageError::task("scanning the data directory", e))??
        };
        let index = Arc::new(RwLock::new(index));
        let log = match log {
            Some(log) => Some(logged::Logged {
                _maintenance: Some(
                    logged::Maintenance::start(log.clone(), index.clone(), log_config)
                        .map_err(|e| StorageError::io("starting log maintenance", e))?,
                ),
                log,
                max_object_size: log_config.max_object_size,
            }),
            None => None,
        };
        let store = Self {
            fs,
            objects,
            tmp,
            segments,
            fsync,
            index,
            _owner: owner,
            locks: KeyLocks::default(),
            dirs: tokio::sync::RwLock::new(()),
            tmp_counter: AtomicU64::new(0),
            read_budget: Arc::new(tokio::sync::Semaphore::new(read::READ_BUDGET_MIB)),
            log,
        };
        // Files whose writes were superseded by a log record (a crash fell between the
        // record and the file's removal).
        for (key, file) in superseded {
            store.remove_file_of(&key).await?;
            if let Some(generation) = file.segments {
                store.drop_segments(generation).await;
            }
        }
        Ok((store, report))
    }

    fn object_path(&self, key: &ObjectKey) -> PathBuf {
        paths::object_path(&self.objects, key)
    }

    fn current(&self, key: &ObjectKey) -> Option<Entry> {
        self.index
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(key)
            .copied()
    }

    /// Makes `entry` the current version of `key` (which was `previous`), under the key's
    /// lock once the write is durable, and lets go of a replaced assembly's segments.
    async fn publish(&self, key: &ObjectKey, entry: Entry, previous: Option<Entry>) -> PutOutcome {
        self.index
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(key.clone(), entry);
        if let Some(replaced) = previous.and_then(|p| p.segments) {
            self.drop_segments(replaced).await;
        }
        PutOutcome {
            meta: meta(key.clone(), entry),
            created: previous.is_none(),
        }
    }

    /// Opens `key`'s object file.
    async fn open_file(&self, key: &ObjectKey) -> std::io::Result<ObjectReader> {
        let path = self.object_path(key);
        let fs = self.fs.clone();
        let budget = self.read_budget.clone();
        let segments = self.segments.clone();
        let opened = tokio::task::spawn_blocking(move || {
            read::open_object(fs.as_ref(), &path, &segments, &budget)
        })
        .await
        .map_err(std::io::Error::other)??;
        Ok(ObjectReader {
            meta: ObjectMeta {
                key: key.clone(),
                size: opened.header.size,
                etag: opened.header.etag,
                s3_tag: opened.header.s3_tag,
                last_modified: opened.last_modified,
            },
            attrs: opened.attrs,
            content: opened.content,
        })
    }

    fn temp_path(&self) -> PathBuf {
        let n = self.tmp_counter.fetch_add(1, Ordering::Relaxed);
        self.tmp.join(format!("{}-{n}.tmp", std::process::id()))
    }
}

#[async_trait]
impl Backend for LocalFs {
    async fn write(
        &self,
        key: &ObjectKey,
        new: NewObject,
        body: Body,
    ) -> Result<PutOutcome, StorageError> {
        let target = self.object_path(key);
        // Fail fast before reading the body; checked again under the key's lock.
        super::check_condition(key, new.condition, self.current(key).map(|e| e.tags()))?;
        let temp = self.temp_path();
        let result = match self.write_temp(&temp, &new, body).await {
            Ok(staged) => {
                self.commit(key, new.condition, temp.clone(), target, staged)
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

    async fn get(&self, key: &ObjectKey) -> Result<ObjectReader, StorageError> {
        let not_found = || StorageError::NotFound {
            key: key.to_string(),
        };
        let mut entry = self.current(key).ok_or_else(not_found)?;
        let mut retries = 0;
        loop {
            if let Some(at) = entry.log {
                match self.get_logged(key, at).await {
                    // Compaction moved the record and removed its segment in between.
                    Err(_)
                        if retries < 3 && self.current(key).is_some_and(|e| e.log != Some(at)) =>
                    {
                        retries += 1;
                        entry = self.current(key).ok_or_else(not_found)?;
                        continue;
                    }
                    other => return other,
                }
            }
            match self.open_file(key).await {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && retries < 3 => {
                    // The file went away under a writer that holds the key's lock and has
                    // not changed the index yet (a delete, or a small write moving the key
                    // into the log): wait for it, then look again.
                    drop(self.locks.lock(key).await);
                    retries += 1;
                    entry = self.current(key).ok_or_else(not_found)?;
                }
                Ok(reader) if reader.meta.etag != entry.etag && retries < 3 => {
                    // A writer renamed its file in and has not published it yet: the index
                    // (and so listings) still say the old version. Wait for it.
                    drop(self.locks.lock(key).await);
                    retries += 1;
                    entry = self.current(key).ok_or_else(not_found)?;
                }
                Err(e) => return Err(StorageError::io("opening an object", e)),
                Ok(reader) => return Ok(reader),
            }
        }
    }

    async fn assemble(
        &self,
        key: &ObjectKey,
        new: NewObject,
        parts: Vec<ObjectKey>,
    ) -> Result<PutOutcome, StorageError> {
        self.assemble_parts(key, new, parts).await
    }

    async fn delete(&self, key: &ObjectKey, condition: Condition) -> Result<(), StorageError> {
        self.remove(key, condition).await
    }

    async fn list(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<ListPage, StorageError> {
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
        let log_ok = self.log.as_ref().is_none_or(|l| l.log.failure().is_none());
        dir_ok(&self.objects) && dir_ok(&self.tmp) && log_ok
    }
}

fn meta(key: ObjectKey, entry: Entry) -> ObjectMeta {
    ObjectMeta {
        key,
        size: entry.size,
        etag: entry.etag,
        s3_tag: entry.s3_tag,
        last_modified: entry.last_modified,
    }
}

/// Runs `f` on the blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn conformance_with_fsync() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = LocalFs::open(dir.path(), FsyncPolicy::on(None))
            .await
            .unwrap();
        crate::backend::conformance::run_all(&store).await;
    }

    #[tokio::test]
    async fn conformance_without_fsync() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = LocalFs::open(dir.path(), FsyncPolicy::off()).await.unwrap();
        crate::backend::conformance::run_all(&store).await;
    }

    #[tokio::test]
    async fn a_data_directory_has_one_owner_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let open = || LocalFs::open(dir.path(), FsyncPolicy::on(None));
        let (first, _) = open().await.unwrap();
        let err = open().await.unwrap_err();
        assert!(
            service_kit::ErrorChain(&err)
                .to_string()
                .contains("in use by another storaged"),
            "{err:?}"
        );
        drop(first);
        open().await.unwrap();
    }

    #[tokio::test]
    async fn format_1_objects_read_with_a_legacy_s3_tag_and_take_s3_conditions() {
        use crate::backend::conformance::{body, read};
        use crate::backend::Condition;
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("objects/old")).unwrap();
        let etag = ETag::of(b"legacy");
        let mut file = b"STGOBJ01".to_vec();
        file.extend_from_slice(etag.as_bytes());
        file.extend_from_slice(&6_u64.to_le_bytes());
        file.resize(64, 0);
        file.extend_from_slice(b"legacy");
        std::fs::write(dir.path().join("objects/old/file%obj"), file).unwrap();
        let (store, report) = LocalFs::open(dir.path(), FsyncPolicy::off()).await.unwrap();
        assert_eq!(report.objects, 1);
        let key = ObjectKey::parse("old/file").unwrap();
        let got = store.get(&key).await.unwrap();
        assert_eq!((got.meta.etag, got.meta.s3_tag), (etag, None));
        let legacy = got.meta.s3_tag_or_legacy();
        assert_eq!(legacy.to_string(), format!("{etag}-1"));
        assert_eq!(read(&store, "old/file").await.unwrap(), b"legacy");
        let fresh = store
            .put(&key, Condition::MatchesS3(legacy), body("new"))
            .await
            .unwrap();
        assert!(
            fresh.meta.s3_tag.is_some(),
            "a rewrite is format 2, with an MD5"
        );
    }

    #[tokio::test]
    async fn reopen_rebuilds_the_index_and_sweeps_temp_files() {
        use crate::backend::conformance::body;
        let dir = tempfile::tempdir().unwrap();
        let key = ObjectKey::parse("x/y").unwrap();
        let open = || LocalFs::open(dir.path(), FsyncPolicy::on(None));
        let etag = {
            let (store, _) = open().await.unwrap();
            store
                .put(&key, Condition::None, body("hello"))
                .await
                .unwrap()
                .meta
                .etag
        };
        std::fs::write(dir.path().join("tmp/leftover.tmp"), b"partial").unwrap();
        std::fs::write(dir.path().join("objects/stray"), b"not ours").unwrap();
        let (store, report) = open().await.unwrap();
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
