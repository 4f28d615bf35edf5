//! Small objects in the write log (ADR 0017): the put, get and delete of a log-resident
//! object, and how start-up merges the log's view with the object files'.
//!
//! The index says where each key's current version is. A small write over a file-resident
//! key appends its record, then removes the file; a large write over a log-resident key
//! renames its file in, then appends a delete record (`supersede`). Both publish only after
//! the second step, so a crash between the two leaves an unacknowledged write that nobody
//! saw; start-up then keeps the log's version and removes the file.

use std::collections::btree_map::Entry as Slot;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use manifest_codec::ObjectKey;

use super::header::Header;
use super::log::{
    Append, AppendError, Appended, Committed, Kind, Log, LogMetrics, MaintenanceError, RecordHead,
};
use super::{blocking, Entry, LocalFs};
use crate::backend::fs::Fs;
use crate::backend::{
    check_condition, Attributes, Condition, InMemory, ObjectMeta, ObjectReader, PutOutcome, S3Tag,
    StorageError,
};

/// Where small objects go: the log, for objects of at most `max_object_size` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogConfig {
    /// Objects up to this size are log records; 0 keeps every object a file.
    pub max_object_size: u64,
    /// The size of each preallocated segment file.
    pub segment_size: u64,
    /// A checkpoint of the index is written after this many bytes of log (ADR 0018).
    pub checkpoint_every: u64,
}

impl LogConfig {
    /// Every object a file, as before the log.
    pub const OFF: Self = Self {
        max_object_size: 0,
        segment_size: 64 << 20,
        checkpoint_every: 256 << 20,
    };

    /// Small objects up to `max_object_size` in segments of `segment_size`, with a
    /// checkpoint every four segments' worth of log.
    pub fn new(max_object_size: u64, segment_size: u64) -> Self {
        Self {
            max_object_size,
            segment_size,
            checkpoint_every: segment_size * 4,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self::new(256 << 10, 64 << 20)
    }
}

/// Compaction sleeps so that it is busy at most this share of the time.
const COMPACTION_SHARE: f64 = 0.25;
/// How often maintenance looks whether a checkpoint or a compaction is due.
const MAINTENANCE_TICK: Duration = Duration::from_millis(200);

/// The log of a store, and which objects go to it.
#[derive(Debug)]
pub(super) struct Logged {
    /// First, so that dropping the store stops maintenance before the log closes.
    pub(super) _maintenance: Option<Maintenance>,
    pub(super) log: Arc<Log>,
    pub(super) max_object_size: u64,
}

type Index = Arc<RwLock<BTreeMap<ObjectKey, Entry>>>;

/// Object files whose keys' current versions are log records, to remove.
pub(super) type Superseded = Vec<(ObjectKey, Entry)>;

/// The thread that writes checkpoints and compacts segments (ADR 0018), stopped and
/// joined when dropped.
#[derive(Debug)]
pub(super) struct Maintenance {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Maintenance {
    pub(super) fn start(log: Arc<Log>, index: Index, config: LogConfig) -> std::io::Result<Self> {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let signal = stop.clone();
        let thread = std::thread::Builder::new()
            .name("storaged-log-maintenance".into())
            .spawn(move || maintain(&log, &index, config, &signal))?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Maintenance {
    fn drop(&mut self) {
        *self.stop.0.lock().unwrap_or_else(PoisonError::into_inner) = true;
        self.stop.1.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Points `key` at the copy `to` of its record, if its current version is still the
/// record at `from`.
fn relocate(index: &Index, key: &[u8], from: Appended, to: Appended) {
    let Ok(key) = std::str::from_utf8(key) else {
        return;
    };
    let mut index = index.write().unwrap_or_else(PoisonError::into_inner);
    if let Some(entry) = index.get_mut(key) {
        if entry
            .log
            .is_some_and(|at| (at.segment, at.offset) == (from.segment, from.offset))
        {
            entry.log = Some(to);
        }
    }
}

fn maintain(log: &Log, index: &Index, config: LogConfig, stop: &(Mutex<bool>, Condvar)) {
    let stopped = || *stop.0.lock().unwrap_or_else(PoisonError::into_inner);
    let relocate = |key: &[u8], from: Appended, to: Appended| relocate(index, key, from, to);
    let mut pause = MAINTENANCE_TICK;
    loop {
        {
            let guard = stop.0.lock().unwrap_or_else(PoisonError::into_inner);
            let (guard, _) = stop
                .1
                .wait_timeout_while(guard, pause, |stop| !*stop)
                .unwrap_or_else(PoisonError::into_inner);
            if *guard {
                return;
            }
        }
        pause = MAINTENANCE_TICK;
        if log.failure().is_some() {
            continue;
        }
        let round = || -> Result<(), MaintenanceError> {
            if log.since_checkpoint() >= config.checkpoint_every {
                log.checkpoint()?;
            }
            while let Some(done) = log.compact(&relocate, &stopped, COMPACTION_SHARE)? {
                tracing::info!(
                    segment = done.segment,
                    copied_records = done.copied_records,
                    copied_bytes = done.copied_bytes,
                    reclaimed_bytes = done.reclaimed_bytes,
                    "write log segment compacted"
                );
            }
            Ok(())
        };
        if let Err(e) = round() {
            tracing::error!(
                error = %service_kit::ErrorChain(&e),
                "write log maintenance failed; the log is unharmed, retrying in 30 s"
            );
            pause = Duration::from_secs(30);
        }
    }
}

impl From<AppendError> for StorageError {
    fn from(e: AppendError) -> Self {
        match e {
            AppendError::NotWritten(io) => StorageError::io(
                "making a new log segment",
                std::io::Error::new(io.kind(), io.to_string()),
            ),
            AppendError::Stopped(why) => StorageError::Unknown {
                op: "writing to the log",
                source: std::io::Error::other(why),
            },
            AppendError::TooLarge => StorageError::io(
                "writing to the log",
                std::io::Error::other("records larger than a log batch"),
            ),
        }
    }
}

/// Opens the log under `dir` and merges every key's current put into `index` (built from
/// the object files): a put wins over a file, whose key and entry are returned for removal.
/// Blocking.
pub(super) fn open_log(
    fs: Arc<dyn Fs>,
    dir: &std::path::Path,
    config: LogConfig,
    sync: bool,
    metrics: LogMetrics,
    index: &mut BTreeMap<ObjectKey, Entry>,
) -> Result<(Arc<Log>, Superseded), StorageError> {
    let opened = Log::open(fs, dir, config.segment_size, sync, metrics)
        .map_err(|e| StorageError::io("opening the write log", std::io::Error::other(e)))?;
    if let Some((segment, offset, bytes)) = opened.torn {
        tracing::warn!(
            segment,
            offset,
            bytes,
            "write log: zeroed the torn tail of a batch that was never acknowledged"
        );
    }
    let live = opened.live.len();
    let mut superseded_files = Vec::new();
    for record in opened.live {
        let key = std::str::from_utf8(&record.key)
            .ok()
            .and_then(|k| ObjectKey::parse(k).ok())
            .ok_or_else(|| {
                StorageError::io(
                    "replaying the write log",
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!(
                            "a record at segment {} offset {} names no valid key",
                            record.at.segment, record.at.offset
                        ),
                    ),
                )
            })?;
        let head = &record.head;
        let entry = Entry {
            size: head.size,
            etag: head.etag,
            s3_tag: Some(head.s3_tag),
            last_modified: head.last_modified,
            segments: None,
            log: Some(record.at),
        };
        match index.entry(key) {
            Slot::Vacant(slot) => {
                slot.insert(entry);
            }
            Slot::Occupied(mut slot) => {
                let file = slot.insert(entry);
                superseded_files.push((slot.key().clone(), file));
            }
        }
    }
    tracing::info!(
        checkpoint_entries = opened.checkpoint_entries,
        replayed_records = opened.replayed,
        live_objects = live,
        superseded_files = superseded_files.len(),
        "write log opened"
    );
    Ok((Arc::new(opened.log), superseded_files))
}

impl LocalFs {
    /// Writes a checkpoint and compacts every segment that qualifies, now, at full speed
    /// (what the maintenance thread does in the background).
    #[cfg(test)]
    pub(crate) async fn maintain_log_now(&self) {
        let log = self.log.as_ref().expect("the log is on").log.clone();
        let index = self.index.clone();
        tokio::task::spawn_blocking(move || {
            log.checkpoint().expect("a checkpoint");
            let relocate = |key: &[u8], from, to| relocate(&index, key, from, to);
            while log
                .compact(&relocate, &|| false, 1.0)
                .expect("a compaction")
                .is_some()
            {}
        })
        .await
        .expect("maintenance ran");
    }

    /// Segments compaction has removed since the store opened.
    #[cfg(test)]
    pub(crate) fn log_compactions(&self) -> u64 {
        self.log.as_ref().map_or(0, |l| {
            l.log
                .stats()
                .compacted
                .load(std::sync::atomic::Ordering::Relaxed)
        })
    }

    /// The log, when `size` bytes belong in it.
    pub(super) fn log_for(&self, size: u64) -> Option<&Arc<Log>> {
        self.log
            .as_ref()
            .filter(|l| size <= l.max_object_size)
            .map(|l| &l.log)
    }

    /// Under the key's lock: checks the condition, appends the object's record, and when
    /// the key's version was a file, removes that file. Then publishes.
    pub(super) async fn commit_to_log(
        &self,
        log: &Arc<Log>,
        key: &ObjectKey,
        condition: Condition,
        header: Header,
        attrs: Vec<u8>,
        content: bytes::Bytes,
    ) -> Result<PutOutcome, StorageError> {
        let _key = self.locks.lock(key).await;
        let previous = self.current(key);
        check_condition(key, condition, previous.map(|e| e.tags()))?;
        let last_modified = SystemTime::now();
        let s3_tag = header.s3_tag.unwrap_or(S3Tag::single([0; 16]));
        let committed = log
            .append(vec![Append {
                head: RecordHead {
                    kind: Kind::Put,
                    seq: 0,
                    size: header.size,
                    etag: header.etag,
                    s3_tag,
                    last_modified,
                },
                key: key.to_string(),
                attrs,
                content,
            }])
            .await?;
        // The record is durable and is the key's version from here on, also after a
        // restart (a log put wins over a file at start-up): the put succeeded even if
        // removing the replaced file fails. A reader that finds the file gone before the
        // publish waits for the key's lock and looks again.
        if previous.is_some_and(|p| p.log.is_none()) {
            if let Err(e) = self.remove_file_of(key).await {
                tracing::warn!(%key, error = %service_kit::ErrorChain(&e), "cannot remove a file replaced by a log record; start-up removes it");
            }
        }
        let entry = Entry {
            size: header.size,
            etag: header.etag,
            s3_tag: Some(s3_tag),
            last_modified,
            segments: None,
            log: Some(committed[0]),
        };
        let outcome = self.publish(key, entry, previous).await;
        drop(committed);
        Ok(outcome)
    }

    /// After a file was installed over a log-resident version of `key` (under its lock):
    /// a delete record, so that the log's put no longer wins at start-up. The caller
    /// holds the returned record until it has published the file.
    pub(super) async fn supersede(
        &self,
        key: &ObjectKey,
    ) -> Result<Option<Committed>, StorageError> {
        let Some(logged) = &self.log else {
            return Ok(None);
        };
        Ok(Some(logged.log.append(vec![tombstone(key)]).await?))
    }

    /// Under the key's lock, for a log-resident `key`: a delete record, the key out of the
    /// index, and the removal of a file left at its path by an interrupted write, if any.
    pub(super) async fn remove_logged(&self, key: &ObjectKey) -> Result<(), StorageError> {
        let committed = match &self.log {
            Some(logged) => Some(logged.log.append(vec![tombstone(key)]).await?),
            None => None,
        };
        self.index
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
        drop(committed);
        // A file left at the key's path would bring the key back at start-up: if it
        // cannot be removed (durably), the delete's outcome is unknown.
        self.remove_file_of(key).await.map_err(|e| match e {
            StorageError::Io { op, source } => StorageError::NotDurable { op, source },
            e => e,
        })
    }

    /// Removes `key`'s object file, if there is one, and makes that durable.
    pub(super) async fn remove_file_of(&self, key: &ObjectKey) -> Result<(), StorageError> {
        self.unlink(&self.object_path(key)).await
    }

    /// Opens the log-resident version of `key` recorded at `at`.
    pub(super) async fn get_logged(
        &self,
        key: &ObjectKey,
        at: Appended,
    ) -> Result<ObjectReader, StorageError> {
        let record = self.read_record(at).await?;
        let attrs = Attributes::decode(record.attrs()).ok_or_else(|| {
            StorageError::io(
                "reading an object's attributes",
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("bad attributes in the log record of {key}"),
                ),
            )
        })?;
        let head = record.head();
        Ok(ObjectReader {
            meta: ObjectMeta {
                key: key.clone(),
                size: head.size,
                etag: head.etag,
                s3_tag: Some(head.s3_tag),
                last_modified: head.last_modified,
            },
            attrs,
            content: Box::new(InMemory(record.content())),
        })
    }

    async fn read_record(&self, at: Appended) -> Result<super::log::Record, StorageError> {
        let log =
            self.log.as_ref().map(|l| l.log.clone()).ok_or_else(|| {
                StorageError::io("reading the log", std::io::Error::other("no log"))
            })?;
        blocking(move || log.read(at))
            .await
            .map_err(|e| StorageError::io("reading an object from the log", e))
    }

    /// A log-resident part as an object file in `tmp/`, for an assembly to link.
    pub(super) async fn materialize(&self, at: Appended) -> Result<PathBuf, StorageError> {
        let record = self.read_record(at).await?;
        let head = record.head().clone();
        let header = Header {
            etag: head.etag,
            size: head.size,
            s3_tag: Some(head.s3_tag),
            attrs_len: u32::try_from(record.attrs().len()).unwrap_or(u32::MAX),
            segments: 0,
        };
        let path = self.temp_path();
        let (fs, fsync, at_path) = (self.fs.clone(), self.fsync.clone(), path.clone());
        tokio::task::spawn_blocking(move || {
            super::write::write_small(
                fs.as_ref(),
                &at_path,
                &header.encode(),
                record.attrs(),
                &record.content(),
                &fsync,
            )
        })
        .await
        .map_err(|e| StorageError::task("copying a part out of the log", e))??;
        Ok(path)
    }
}

#[cfg(test)]
#[path = "logged_tests.rs"]
mod tests;

fn tombstone(key: &ObjectKey) -> Append {
    Append {
        head: RecordHead {
            kind: Kind::Delete,
            seq: 0,
            size: 0,
            etag: crate::backend::ETag::from_bytes([0; 16]),
            s3_tag: S3Tag::single([0; 16]),
            last_modified: SystemTime::now(),
        },
        key: key.to_string(),
        attrs: Vec::new(),
        content: bytes::Bytes::new(),
    }
}
