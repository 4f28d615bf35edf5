//! Small objects in the write log (ADR 0017): the put, get and delete of a log-resident
//! object, and how start-up merges the log's view with the object files'.
//!
//! The index says where each key's current version is. A small write over a file-resident
//! key appends its record, then removes the file; a large write over a log-resident key
//! renames its file in, then appends a delete record (`supersede`). Both publish only after
//! the second step, so a crash between the two leaves an unacknowledged write that nobody
//! saw; start-up then keeps the log's version and removes the file.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use manifest_codec::ObjectKey;

use super::header::Header;
use super::log::{Append, AppendError, Appended, Kind, Log, LogMetrics, RecordHead, Replayed};
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
}

impl LogConfig {
    /// Every object a file, as before the log.
    pub const OFF: Self = Self {
        max_object_size: 0,
        segment_size: 64 << 20,
    };
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            max_object_size: 256 << 10,
            segment_size: 64 << 20,
        }
    }
}

/// The log of a store, and which objects go to it.
#[derive(Debug)]
pub(super) struct Logged {
    pub(super) log: Arc<Log>,
    pub(super) max_object_size: u64,
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

/// Opens the log under `dir` and merges what it holds into `index` (built from the object
/// files): for each key the record with the highest sequence number decides; a put wins
/// over a file, whose key and entry are returned for removal. Blocking.
pub(super) fn open_log(
    fs: Arc<dyn Fs>,
    dir: &std::path::Path,
    config: LogConfig,
    sync: bool,
    metrics: LogMetrics,
    index: &mut BTreeMap<ObjectKey, Entry>,
) -> Result<(Logged, Vec<(ObjectKey, Entry)>), StorageError> {
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
    let replayed = opened.records.len();
    let mut latest: HashMap<Vec<u8>, Replayed> = HashMap::new();
    for record in opened.records {
        match latest.get(&record.key) {
            Some(seen) if seen.decoded.head.seq > record.decoded.head.seq => {}
            _ => {
                latest.insert(record.key.clone(), record);
            }
        }
    }
    let mut superseded_files = Vec::new();
    for (raw, record) in latest {
        let key = std::str::from_utf8(&raw)
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
        let head = &record.decoded.head;
        if head.kind != Kind::Put {
            continue;
        }
        let entry = Entry {
            size: head.size,
            etag: head.etag,
            s3_tag: Some(head.s3_tag),
            last_modified: head.last_modified,
            segments: None,
            log: Some(record.at),
        };
        if let Some(file) = index.insert(key.clone(), entry) {
            superseded_files.push((key, file));
        }
    }
    tracing::info!(
        records = replayed,
        superseded_files = superseded_files.len(),
        "write log replayed"
    );
    Ok((
        Logged {
            log: Arc::new(opened.log),
            max_object_size: config.max_object_size,
        },
        superseded_files,
    ))
}

impl LocalFs {
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
        let at = log
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
            .await?[0];
        if previous.is_some_and(|p| p.log.is_none()) {
            self.remove_file_of(key).await?;
        }
        let entry = Entry {
            size: header.size,
            etag: header.etag,
            s3_tag: Some(s3_tag),
            last_modified,
            segments: None,
            log: Some(at),
        };
        Ok(self.publish(key, entry, previous).await)
    }

    /// After a file was installed over a log-resident version of `key` (under its lock):
    /// a delete record, so that the log's put no longer wins at start-up.
    pub(super) async fn supersede(&self, key: &ObjectKey) -> Result<(), StorageError> {
        let Some(logged) = &self.log else {
            return Ok(());
        };
        logged.log.append(vec![tombstone(key)]).await?;
        Ok(())
    }

    /// Under the key's lock, for a log-resident `key`: a delete record, and the removal of
    /// a file left at its path by an interrupted write, if any.
    pub(super) async fn remove_logged(&self, key: &ObjectKey) -> Result<(), StorageError> {
        if let Some(logged) = &self.log {
            logged.log.append(vec![tombstone(key)]).await?;
        }
        self.remove_file_of(key).await
    }

    /// Removes `key`'s object file, if there is one, and makes that durable.
    pub(super) async fn remove_file_of(&self, key: &ObjectKey) -> Result<(), StorageError> {
        let path = self.object_path(key);
        let fs = self.fs.clone();
        let fsync = self.fsync.clone();
        tokio::task::spawn_blocking(move || -> Result<(), StorageError> {
            match fs.remove_file(&path) {
                Ok(()) => match path.parent() {
                    Some(parent) => fsync.dir(fs.as_ref(), parent),
                    None => Ok(()),
                },
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(StorageError::io("removing a superseded object file", e)),
            }
        })
        .await
        .map_err(|e| StorageError::task("removing a superseded object file", e))?
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
