//! The write log for small objects (ADR 0017): checksummed records appended to
//! preallocated segment files, many writers sharing one `fdatasync`.
//!
//! [`Log::open`] replays the segments (`recover`) and starts the writer thread (`writer`);
//! [`Log::append`] returns once the record's batch is durable; [`Log::read`] reads one
//! record back by position and checks it. The log knows records, not objects: which
//! record is a key's current version is the caller's index.

mod checkpoint;
mod compact;
mod format;
mod recover;
mod settle;
mod writer;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use bytes::Bytes;

pub(crate) use compact::MaintenanceError;
pub(crate) use format::{Kind, RecordHead};
pub(crate) use recover::RecoverError;
pub(crate) use settle::Committed;
use settle::Unsettled;

use super::super::fs::{Fs, ReadFile};
use format::Decoded;

/// A place in the log: a segment and an offset in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub(crate) struct Position {
    pub(crate) segment: u64,
    pub(crate) offset: u64,
}

/// The log up to a position: where it ends, and the next sequence and batch numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Mark {
    pub(crate) position: Position,
    pub(crate) next_seq: u64,
    pub(crate) next_batch: u64,
}

/// A key's current put: its record's fields and place.
#[derive(Debug, Clone)]
pub(crate) struct Live {
    pub(crate) key: Vec<u8>,
    pub(crate) head: RecordHead,
    pub(crate) at: Appended,
}

const SEGMENT_EXT: &str = ".seg";

fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}{SEGMENT_EXT}"))
}

/// A record to append. A `head.seq` of 0 takes the next sequence number; a copy keeps its
/// original one.
#[derive(Debug, Clone)]
pub(crate) struct Append {
    pub(crate) head: RecordHead,
    pub(crate) key: String,
    pub(crate) attrs: Vec<u8>,
    pub(crate) content: Bytes,
}

/// Where an appended record is, and its sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Appended {
    pub(crate) segment: u64,
    /// Offset of the record's first byte in the segment.
    pub(crate) offset: u64,
    /// The record's length, header included.
    pub(crate) len: u32,
    pub(crate) seq: u64,
}

/// Why an append failed.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum AppendError {
    /// Nothing was written (a new segment could not be made: the disk is full, say).
    #[error("the write log could not make a new segment: {0}")]
    NotWritten(Arc<std::io::Error>),
    /// A write or `fdatasync` failed, now or earlier: the log takes no more writes until
    /// storaged restarts and replays what is really on disk. The outcome is unknown.
    #[error("the write log stopped taking writes: {0}")]
    Stopped(String),
    /// More than a batch holds.
    #[error("records larger than a log batch")]
    TooLarge,
}

impl AppendError {
    pub(super) fn not_written(e: std::io::Error) -> Self {
        Self::NotWritten(Arc::new(e))
    }
}

/// Where the writer reports what it did (Prometheus counters of the app's registry; the
/// default ones are registered nowhere).
#[derive(Debug, Clone)]
pub struct LogMetrics {
    /// Batches written, each one `fdatasync`.
    pub batches: prometheus::IntCounter,
    /// Records written.
    pub records: prometheus::IntCounter,
    /// Bytes written, batch headers included.
    pub bytes: prometheus::IntCounter,
    /// How long each batch's `fdatasync` took.
    pub sync_seconds: Option<prometheus::Histogram>,
    /// Checkpoints written.
    pub checkpoints: prometheus::IntCounter,
    /// Segments compaction removed.
    pub compacted_segments: prometheus::IntCounter,
    /// Bytes of live records compaction copied forward.
    pub compaction_copied_bytes: prometheus::IntCounter,
    /// Bytes of segment files compaction removed.
    pub compaction_reclaimed_bytes: prometheus::IntCounter,
    /// Bytes of segment files on disk.
    pub segment_bytes: prometheus::IntGauge,
}

impl Default for LogMetrics {
    fn default() -> Self {
        let counter =
            |name: &str| prometheus::IntCounter::new(name, name).expect("a valid metric name");
        Self {
            batches: counter("log_batches"),
            records: counter("log_records"),
            bytes: counter("log_bytes"),
            sync_seconds: None,
            checkpoints: counter("log_checkpoints"),
            compacted_segments: counter("log_compacted_segments"),
            compaction_copied_bytes: counter("log_compaction_copied_bytes"),
            compaction_reclaimed_bytes: counter("log_compaction_reclaimed_bytes"),
            segment_bytes: prometheus::IntGauge::new("log_segment_bytes", "log_segment_bytes")
                .expect("a valid metric name"),
        }
    }
}

/// Counters of the writer, for tests.
#[derive(Debug, Default)]
pub(crate) struct LogStats {
    pub(crate) batches: AtomicU64,
    pub(crate) records: AtomicU64,
    pub(crate) bytes: AtomicU64,
    pub(crate) compacted: AtomicU64,
}

/// The checkpoint on disk: what it covers, and live bytes per segment by its entries.
#[derive(Debug, Default)]
struct CheckpointState {
    mark: Option<Mark>,
    live: BTreeMap<u64, u64>,
}

/// What the writer thread, readers and maintenance share.
#[derive(Debug)]
struct Shared {
    fs: Arc<dyn Fs>,
    dir: PathBuf,
    segment_size: u64,
    files: RwLock<BTreeMap<u64, Arc<dyn ReadFile>>>,
    failure: Mutex<Option<String>>,
    /// The end of the last durable batch.
    committed: Mutex<Mark>,
    /// Positions of durable appends not yet published (see [`Committed`]).
    unsettled: Mutex<BTreeMap<Position, usize>>,
    checkpoint: Mutex<CheckpointState>,
    stats: LogStats,
    metrics: LogMetrics,
}

impl Shared {
    fn failure(&self) -> Option<String> {
        self.failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn fail(&self, why: String) {
        self.failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert(why);
    }

    fn add_segment(&self, id: u64, file: Arc<dyn ReadFile>) {
        let mut files = self.files.write().unwrap_or_else(PoisonError::into_inner);
        files.insert(id, file);
        self.count_segments(&files);
    }

    fn count_segments(&self, files: &BTreeMap<u64, Arc<dyn ReadFile>>) {
        let bytes = files.values().map(|f| f.size()).sum::<u64>();
        self.metrics
            .segment_bytes
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    fn file(&self, segment: u64) -> Option<Arc<dyn ReadFile>> {
        self.files
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&segment)
            .cloned()
    }

    fn committed(&self) -> Mark {
        *self
            .committed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn batch_committed(&self, records: u32, bytes: u64) {
        self.stats.batches.fetch_add(1, Ordering::Relaxed);
        self.stats
            .records
            .fetch_add(u64::from(records), Ordering::Relaxed);
        self.stats.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.metrics.batches.inc();
        self.metrics.records.inc_by(u64::from(records));
        self.metrics.bytes.inc_by(bytes);
    }

    fn synced_in(&self, took: std::time::Duration) {
        if let Some(h) = &self.metrics.sync_seconds {
            h.observe(took.as_secs_f64());
        }
    }
}

/// The write log of one data directory.
#[derive(Debug)]
pub(crate) struct Log {
    shared: Arc<Shared>,
    requests: Mutex<Option<std::sync::mpsc::Sender<writer::Request>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// What [`Log::open`] found: every key's current put, and a torn tail it zeroed.
#[derive(Debug)]
pub(crate) struct Opened {
    pub(crate) log: Log,
    /// Every key's current put, in key order.
    pub(crate) live: Vec<Live>,
    /// Records replayed after the checkpoint (all of them, without one).
    pub(crate) replayed: usize,
    /// Entries of the checkpoint start-up began from.
    pub(crate) checkpoint_entries: Option<u64>,
    /// Segment, offset and length of a torn tail that was zeroed.
    pub(crate) torn: Option<(u64, u64, u64)>,
}

impl Log {
    /// Replays the log under `dir` (made if missing) and starts its writer, which syncs
    /// each batch when `sync` (storaged's `fsync` setting). Blocking.
    pub(crate) fn open(
        fs: Arc<dyn Fs>,
        dir: &Path,
        segment_size: u64,
        sync: bool,
        metrics: LogMetrics,
    ) -> Result<Opened, RecoverError> {
        fs.create_dir_all(dir).map_err(|source| RecoverError::Io {
            op: "creating the log directory",
            source,
        })?;
        let found = recover::recover(&*fs, dir)?;
        let (head_id, offset) = found.head.unwrap_or((1, 0));
        let io = |op| move |source| RecoverError::Io { op, source };
        let (head, read) = writer::open_or_create(&*fs, dir, head_id, segment_size)
            .map_err(io("opening the head segment"))?;
        let mut files = found.files;
        files.insert(head_id, read);
        let checkpoint_entries = found.checkpoint.as_ref().map(|(_, s)| s.entries);
        let checkpoint = found
            .checkpoint
            .map(|(mark, summary)| CheckpointState {
                mark: Some(mark),
                live: summary.live,
            })
            .unwrap_or_default();
        let shared = Arc::new(Shared {
            fs: fs.clone(),
            dir: dir.to_owned(),
            segment_size,
            files: RwLock::new(BTreeMap::new()),
            failure: Mutex::new(None),
            committed: Mutex::new(Mark {
                position: Position {
                    segment: head_id,
                    offset,
                },
                next_seq: found.next_seq,
                next_batch: found.next_batch,
            }),
            unsettled: Mutex::new(BTreeMap::new()),
            checkpoint: Mutex::new(checkpoint),
            stats: LogStats::default(),
            metrics,
        });
        for (id, file) in files {
            shared.add_segment(id, file);
        }
        let writer = writer::Writer {
            fs,
            dir: dir.to_owned(),
            segment_size,
            sync,
            head_id,
            head,
            offset,
            next_seq: found.next_seq,
            next_batch: found.next_batch,
            shared: shared.clone(),
            spare: None,
        };
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("storaged-log".into())
            .spawn(move || writer.run(&rx))
            .map_err(io("starting the log writer"))?;
        Ok(Opened {
            log: Self {
                shared,
                requests: Mutex::new(Some(tx)),
                thread: Mutex::new(Some(thread)),
            },
            live: found.live,
            replayed: found.replayed,
            checkpoint_entries,
            torn: found.torn,
        })
    }

    /// Appends `records` (in one batch) and returns once that batch is durable.
    pub(crate) async fn append(&self, records: Vec<Append>) -> Result<Committed, AppendError> {
        let answer = self.send(records)?;
        answer
            .await
            .unwrap_or_else(|_| Err(AppendError::Stopped("the log writer stopped".into())))
    }

    /// [`Self::append`] from a thread outside the async runtime.
    fn append_blocking(&self, records: Vec<Append>) -> Result<Committed, AppendError> {
        self.send(records)?
            .blocking_recv()
            .unwrap_or_else(|_| Err(AppendError::Stopped("the log writer stopped".into())))
    }

    fn send(
        &self,
        records: Vec<Append>,
    ) -> Result<tokio::sync::oneshot::Receiver<Result<Committed, AppendError>>, AppendError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let sent = self
            .requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|tx| tx.send(writer::Request { records, reply }));
        if !matches!(sent, Some(Ok(()))) {
            return Err(AppendError::not_written(std::io::Error::other(
                "the log is closed",
            )));
        }
        Ok(answer)
    }

    /// Reads the record at `at` and checks it: its head, key, attributes and content.
    /// `InvalidData` when it fails its checksum. Blocking.
    pub(crate) fn read(&self, at: Appended) -> std::io::Result<Record> {
        let file = self.shared.file(at.segment).ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("no log segment {}", at.segment),
            )
        })?;
        let mut raw = vec![0; usize::try_from(at.len).unwrap_or(0)];
        file.read_exact_at(&mut raw, at.offset)?;
        let decoded = format::decode_record(&raw).ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "log record at segment {} offset {} fails its checksum",
                    at.segment, at.offset
                ),
            )
        })?;
        Ok(Record {
            raw: Bytes::from(raw),
            decoded,
        })
    }

    /// Why the log takes no writes, if it does not.
    pub(crate) fn failure(&self) -> Option<String> {
        self.shared.failure()
    }

    #[cfg(test)]
    pub(crate) fn stats(&self) -> &LogStats {
        &self.shared.stats
    }

    /// Stops the writer after the requests already sent.
    pub(crate) fn close(&self) {
        drop(
            self.requests
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
        let thread = self
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

impl Drop for Log {
    fn drop(&mut self) {
        self.close();
    }
}

/// A record read back.
#[derive(Debug, Clone)]
pub(crate) struct Record {
    raw: Bytes,
    decoded: Decoded,
}

impl Record {
    pub(crate) fn head(&self) -> &RecordHead {
        &self.decoded.head
    }

    #[cfg(test)]
    pub(crate) fn key(&self) -> &[u8] {
        &self.raw[self.decoded.key.clone()]
    }

    pub(crate) fn attrs(&self) -> &[u8] {
        &self.raw[self.decoded.attrs.clone()]
    }

    pub(crate) fn content(&self) -> Bytes {
        self.raw.slice(self.decoded.content.clone())
    }
}

#[cfg(test)]
mod tests;
