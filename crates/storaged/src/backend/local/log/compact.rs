//! Maintenance (ADR 0018): checkpoints and compaction, run in turn by one thread.
//!
//! A checkpoint reads the records written since the last one, merges them into its
//! entries and writes the result. Compaction takes a segment before the checkpoint's
//! position whose live records (by the checkpoint) fill at most half of it, appends copies
//! of those records (keeping their sequence numbers) through the writer, points the index
//! at the copies, and only then removes the segment. Start-up stays right whatever
//! compaction did: the copies come after the checkpoint's position, so the replay sees
//! them and a copy wins over the entry it copies (equal sequence numbers, later place),
//! while anything newer still wins over the copy; a dead record was superseded by
//! something the checkpoint already holds. Compaction never touches the checkpoint, and
//! runs on the thread that writes checkpoints, so the checkpoint cannot move past a copy
//! while the copy is being decided.

use std::io;
use std::sync::atomic::Ordering;
use std::sync::PoisonError;
use std::time::{Duration, Instant};

use super::checkpoint::{self, CheckpointError, Latest, Reader};
use super::recover::{read_batch, Batch, RecoverError};
use super::{segment_path, Append, AppendError, Appended, Live, Log};

/// Why a checkpoint or a compaction did not finish. The log itself is unharmed: a
/// checkpoint is renamed in only when whole, and a segment is removed only after its live
/// records were copied.
#[derive(Debug, thiserror::Error)]
pub(crate) enum MaintenanceError {
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error(transparent)]
    Replay(#[from] RecoverError),
    #[error("copying live records: {0}")]
    Append(#[from] AppendError),
    #[error("i/o error while {op}: {source}")]
    Io {
        op: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("write log segment {segment} is damaged at offset {offset} before the head")]
    Damaged { segment: u64, offset: u64 },
}

fn io_err(op: &'static str) -> impl FnOnce(io::Error) -> MaintenanceError {
    move |source| MaintenanceError::Io { op, source }
}

/// What one compaction did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Compacted {
    pub(crate) segment: u64,
    pub(crate) copied_records: u64,
    pub(crate) copied_bytes: u64,
    pub(crate) reclaimed_bytes: u64,
}

/// Copies go out in appends of about this many bytes.
const COPY_CHUNK: u64 = 1 << 20;

impl Log {
    /// Bytes written since the checkpoint's position (the whole log without one).
    pub(crate) fn since_checkpoint(&self) -> u64 {
        let to = self.shared.committed().position;
        let from = self
            .checkpoint_mark()
            .map(|m| m.position)
            .unwrap_or_default();
        let segments = to.segment.saturating_sub(from.segment.max(1));
        (segments * self.shared.segment_size + to.offset).saturating_sub(from.offset)
    }

    fn checkpoint_mark(&self) -> Option<super::Mark> {
        self.shared
            .checkpoint
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .mark
    }

    /// Writes a checkpoint covering every durable batch; the number of entries, or `None`
    /// when nothing was written since the last one. Blocking.
    pub(crate) fn checkpoint(&self) -> Result<Option<u64>, MaintenanceError> {
        let to = self.shared.committed();
        let previous = self.checkpoint_mark();
        if previous.map(|m| m.position) == Some(to.position) {
            return Ok(None);
        }
        let from = previous.map(|m| m.position).unwrap_or_default();
        let fs = &*self.shared.fs;
        let dir = &self.shared.dir;
        let mut latest = Latest::new();
        let ids: Vec<u64> = self
            .shared
            .files
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .range(from.segment..=to.position.segment)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            let Some(file) = self.shared.file(id) else {
                continue;
            };
            let mut offset = if id == from.segment { from.offset } else { 0 };
            loop {
                if id == to.position.segment && offset >= to.position.offset {
                    break;
                }
                match read_batch(&*file, offset)? {
                    Batch::End => break,
                    Batch::Damaged => {
                        return Err(MaintenanceError::Damaged {
                            segment: id,
                            offset,
                        })
                    }
                    Batch::Intact(len, _, payload, records) => {
                        for (at, decoded) in records {
                            let key =
                                payload[at + decoded.key.start..at + decoded.key.end].to_vec();
                            let place = Appended {
                                segment: id,
                                offset: offset + (super::format::BATCH_HEADER + at) as u64,
                                len: u32::try_from(decoded.content.end).unwrap_or(u32::MAX),
                                seq: decoded.head.seq,
                            };
                            checkpoint::note(&mut latest, key, decoded.head, place);
                        }
                        offset += len;
                    }
                }
            }
        }
        let mut reader = match previous {
            Some(_) => Reader::open(fs, dir)?,
            None => None,
        };
        let mut writer =
            checkpoint::Writer::create(fs, dir).map_err(io_err("creating a checkpoint"))?;
        let merged = checkpoint::merge(
            &mut || reader.as_mut().map_or(Ok(None), Reader::next_entry),
            latest,
            &mut |e| writer.push(&e).map_err(CheckpointError::Io),
        );
        if let Err(e) = merged {
            writer.abandon(fs, dir);
            return Err(e.into());
        }
        let summary = writer
            .finish(fs, dir, to)
            .map_err(io_err("writing a checkpoint"))?;
        let entries = summary.entries;
        {
            let mut state = self
                .shared
                .checkpoint
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            state.mark = Some(to);
            state.live = summary.live;
        }
        self.shared.metrics.checkpoints.inc();
        tracing::info!(
            entries,
            bytes = summary.bytes,
            segment = to.position.segment,
            offset = to.position.offset,
            "write log checkpoint written"
        );
        Ok(Some(entries))
    }

    /// The segment compaction would take next: before the checkpoint's position, live
    /// records filling at most half of it; the emptiest first.
    fn compaction_candidate(&self) -> Option<(super::Mark, u64, u64)> {
        let state = self
            .shared
            .checkpoint
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mark = state.mark?;
        let files = self
            .shared
            .files
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        files
            .range(..mark.position.segment)
            .map(|(id, _)| (*id, state.live.get(id).copied().unwrap_or(0)))
            .filter(|(_, live)| live * 2 <= self.shared.segment_size)
            .min_by_key(|(_, live)| *live)
            .map(|(id, live)| (mark, id, live))
    }

    /// Compacts one segment, if one qualifies: copies its live records forward, lets
    /// `relocate(key, from, to)` point the index at each copy, then removes the segment.
    /// Works in chunks, sleeping so that it is busy at most `share` of the time; returns
    /// `None` early when `stop()` says so. Blocking.
    pub(crate) fn compact(
        &self,
        relocate: &dyn Fn(&[u8], Appended, Appended),
        stop: &dyn Fn() -> bool,
        share: f64,
    ) -> Result<Option<Compacted>, MaintenanceError> {
        let Some((mark, segment, live)) = self.compaction_candidate() else {
            return Ok(None);
        };
        if !self.wait_for_publication(mark.position, stop) {
            return Ok(None);
        }
        let mut entries = Vec::new();
        if live > 0 {
            let mut reader =
                Reader::open(&*self.shared.fs, &self.shared.dir)?.ok_or_else(|| {
                    MaintenanceError::Io {
                        op: "reading the checkpoint",
                        source: io::Error::new(io::ErrorKind::NotFound, "the checkpoint is gone"),
                    }
                })?;
            while let Some(e) = reader.next_entry()? {
                if e.at.segment == segment {
                    entries.push(e);
                }
            }
            entries.sort_by_key(|e| e.at.offset);
        }
        let mut done = Compacted {
            segment,
            copied_records: 0,
            copied_bytes: 0,
            reclaimed_bytes: 0,
        };
        let mut rest = entries.as_slice();
        while !rest.is_empty() {
            if stop() {
                return Ok(None);
            }
            let started = Instant::now();
            let mut bytes = 0;
            let n = rest
                .iter()
                .take_while(|e| {
                    let fits = bytes < COPY_CHUNK;
                    bytes += u64::from(e.at.len);
                    fits
                })
                .count();
            let (chunk, later) = rest.split_at(n);
            rest = later;
            let appends = chunk
                .iter()
                .map(|e| self.copy_of(e))
                .collect::<Result<Vec<_>, _>>()?;
            let committed = self.append_blocking(appends)?;
            let mut copied = 0;
            for (e, to) in chunk.iter().zip(committed.iter()) {
                relocate(&e.key, e.at, *to);
                copied += u64::from(to.len);
            }
            drop(committed);
            done.copied_records += chunk.len() as u64;
            done.copied_bytes += copied;
            self.shared.metrics.compaction_copied_bytes.inc_by(copied);
            let busy = started.elapsed();
            std::thread::sleep(busy.mul_f64((1.0 / share.clamp(0.01, 1.0)) - 1.0));
        }
        done.reclaimed_bytes = self.remove_segment(segment)?;
        self.shared
            .checkpoint
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .live
            .remove(&segment);
        let metrics = &self.shared.metrics;
        metrics.compacted_segments.inc();
        metrics
            .compaction_reclaimed_bytes
            .inc_by(done.reclaimed_bytes);
        self.shared.stats.compacted.fetch_add(1, Ordering::Relaxed);
        Ok(Some(done))
    }

    /// Waits until every append before `position` is published; `false` when stopped.
    fn wait_for_publication(&self, position: super::Position, stop: &dyn Fn() -> bool) -> bool {
        loop {
            let first = self
                .shared
                .unsettled
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .keys()
                .next()
                .copied();
            if first.is_none_or(|p| p >= position) {
                return true;
            }
            if stop() {
                return false;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Forgets segment `id` and removes its file durably; the bytes it took.
    fn remove_segment(&self, id: u64) -> Result<u64, MaintenanceError> {
        let removed = {
            let mut files = self
                .shared
                .files
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            let removed = files.remove(&id);
            self.shared.count_segments(&files);
            removed
        };
        let path = segment_path(&self.shared.dir, id);
        self.shared
            .fs
            .remove_file(&path)
            .and_then(|()| self.shared.fs.sync_dir(&self.shared.dir))
            .map_err(io_err("removing a compacted segment"))?;
        Ok(removed.map_or(0, |f| f.size()))
    }

    /// A copy of the live record `e`, read back and checked.
    fn copy_of(&self, e: &Live) -> Result<Append, MaintenanceError> {
        let record = self.read(e.at).map_err(io_err("reading a live record"))?;
        let mismatch = record.head().seq != e.head.seq;
        let key = String::from_utf8(e.key.clone()).ok().filter(|_| !mismatch);
        let Some(key) = key else {
            return Err(MaintenanceError::Damaged {
                segment: e.at.segment,
                offset: e.at.offset,
            });
        };
        Ok(Append {
            head: record.head().clone(),
            key,
            attrs: record.attrs().to_vec(),
            content: record.content(),
        })
    }
}
