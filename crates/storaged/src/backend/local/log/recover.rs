//! Start-up: replaying the segments (ADR 0017).
//!
//! Segments are read in id order, batch by batch, until a header that is all zeros (the
//! unused, zero-filled rest of a segment). A batch that fails its checks is a torn tail
//! when nothing valid follows it — its `fdatasync` never returned, so none of its records
//! was acknowledged — and its bytes are zeroed. A damaged batch followed by a valid one
//! (in its segment or a later one) was synced and has since been damaged: that is
//! corruption, and start-up stops naming the segment and offset.
//!
//! With a checkpoint (`checkpoint`), the replay starts at the position it covers up to,
//! and the checkpoint's entries are merged with the records after it.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use std::sync::Arc;

use super::checkpoint::{self, CheckpointError, Latest, Reader, Summary};
use super::format::{BatchHeader, Decoded, BATCH_HEADER, BATCH_MAGIC, MAX_BATCH_PAYLOAD};
use super::{Appended, Live, Mark, SEGMENT_EXT};
use crate::backend::fs::{Fs, Kind, ReadFile};

/// What the replay found.
#[derive(Debug)]
pub(super) struct Recovered {
    /// Every key's current put, in key order.
    pub(super) live: Vec<Live>,
    /// How many records after the checkpoint were replayed.
    pub(super) replayed: usize,
    /// The checkpoint start-up began from, and what it holds.
    pub(super) checkpoint: Option<(Mark, Summary)>,
    pub(super) files: BTreeMap<u64, Arc<dyn ReadFile>>,
    /// The last segment and the offset after its last intact batch; `None`: no segments.
    pub(super) head: Option<(u64, u64)>,
    pub(super) next_seq: u64,
    pub(super) next_batch: u64,
    /// A torn tail that was zeroed: segment, offset, bytes.
    pub(super) torn: Option<(u64, u64, u64)>,
}

/// Why the log cannot be opened.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RecoverError {
    #[error("i/o error while {op}: {source}")]
    Io {
        op: &'static str,
        #[source]
        source: io::Error,
    },
    #[error(
        "write log segment {segment} is corrupt at offset {offset}: a damaged batch is \
         followed by intact ones, so it was acknowledged and has since been damaged; \
         restore the data directory from a backup"
    )]
    Corrupt { segment: String, offset: u64 },
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error(
        "the write log names a record in segment {segment}, which is missing; restore the \
         data directory from a backup"
    )]
    MissingSegment { segment: u64 },
    #[error(
        "the write log's checkpoint is missing, but compaction has removed segments that \
         only it summarizes; restore the data directory from a backup"
    )]
    MissingCheckpoint,
}

fn io_err(op: &'static str) -> impl FnOnce(io::Error) -> RecoverError {
    move |source| RecoverError::Io { op, source }
}

/// Replays every segment under `dir`, zeroing a torn tail.
pub(super) fn recover(fs: &dyn Fs, dir: &Path) -> Result<Recovered, RecoverError> {
    let ids = segment_ids(fs, dir)?;
    let mut files = BTreeMap::new();
    for &id in &ids {
        let file = fs
            .open(&super::segment_path(dir, id))
            .map_err(io_err("opening a log segment"))?;
        files.insert(id, file);
    }

    let (mark, entries) = read_checkpoint(fs, dir, &ids)?;
    let from = mark.map(|m| m.position).unwrap_or_default();
    let mut latest = Latest::new();
    let mut replayed = 0;
    let mut next_seq = mark.map_or(1, |m| m.next_seq);
    let mut next_batch = mark.map_or(1, |m| m.next_batch);
    let mut head = None;
    let mut torn = None;
    for (i, &id) in ids.iter().enumerate() {
        if id < from.segment {
            continue;
        }
        let file = &files[&id];
        let mut offset = if id == from.segment { from.offset } else { 0 };
        let damaged = loop {
            match read_batch(&**file, offset)? {
                Batch::End => break None,
                Batch::Damaged => break Some(offset),
                Batch::Intact(len, number, payload, batch) => {
                    next_batch = next_batch.max(number + 1);
                    for (at, decoded) in batch {
                        next_seq = next_seq.max(decoded.head.seq + 1);
                        replayed += 1;
                        checkpoint::note(
                            &mut latest,
                            payload[at + decoded.key.start..at + decoded.key.end].to_vec(),
                            decoded.head.clone(),
                            Appended {
                                segment: id,
                                offset: offset + (BATCH_HEADER + at) as u64,
                                len: u32::try_from(decoded.content.end).unwrap_or(u32::MAX),
                                seq: decoded.head.seq,
                            },
                        );
                    }
                    offset += len;
                }
            }
        };
        head = Some((id, offset));
        if let Some(at) = damaged {
            let later = valid_batch_after(&**file, at, next_batch)?
                || ids[i + 1..].iter().try_fold(false, |found, later| {
                    Ok::<_, RecoverError>(
                        found || matches!(read_batch(&*files[later], 0)?, Batch::Intact(..)),
                    )
                })?;
            if later {
                return Err(RecoverError::Corrupt {
                    segment: super::segment_path(dir, id).display().to_string(),
                    offset: at,
                });
            }
            let len =
                ((BATCH_HEADER + MAX_BATCH_PAYLOAD) as u64).min(file.size().saturating_sub(at));
            let mut w = fs
                .open_write(&super::segment_path(dir, id))
                .map_err(io_err("opening a segment to zero its torn tail"))?;
            w.write_all_at(&vec![0; usize::try_from(len).unwrap_or(0)], at)
                .and_then(|()| w.sync_data())
                .map_err(io_err("zeroing a torn tail"))?;
            torn = Some((id, at, len));
            tracing::warn!(
                segment = id,
                offset = at,
                "write log: torn tail of an unacknowledged batch zeroed"
            );
        }
    }
    if head.is_none() {
        head = ids
            .last()
            .map(|&id| (id, if id == from.segment { from.offset } else { 0 }));
    }
    let (live, summary) = merge_with_checkpoint(entries, latest, &files)?;
    Ok(Recovered {
        live,
        replayed,
        checkpoint: mark.map(|m| (m, summary)),
        files,
        head,
        next_seq,
        next_batch,
        torn,
    })
}

/// The checkpoint's entries merged with the replayed records, each pointing at a segment
/// that exists; and what the checkpoint holds per segment.
fn merge_with_checkpoint(
    entries: Vec<Live>,
    latest: Latest,
    files: &BTreeMap<u64, Arc<dyn ReadFile>>,
) -> Result<(Vec<Live>, Summary), RecoverError> {
    let mut summary = Summary::default();
    let mut live = Vec::with_capacity(entries.len() + latest.len());
    let mut older = entries.into_iter();
    checkpoint::merge(
        &mut || Ok(older.next().inspect(|e| summary.add(&e.at))),
        latest,
        &mut |e| {
            live.push(e);
            Ok(())
        },
    )?;
    if let Some(gone) = live.iter().find(|e| !files.contains_key(&e.at.segment)) {
        return Err(RecoverError::MissingSegment {
            segment: gone.at.segment,
        });
    }
    Ok((live, summary))
}

pub(super) enum Batch {
    /// An all-zero header, or the end of the file: nothing more in this segment.
    End,
    Damaged,
    /// Its length, number, payload and records (offsets in the payload).
    Intact(u64, u64, Vec<u8>, Vec<(usize, Decoded)>),
}

pub(super) fn read_batch(file: &dyn ReadFile, offset: u64) -> Result<Batch, RecoverError> {
    if offset + BATCH_HEADER as u64 > file.size() {
        return Ok(Batch::End);
    }
    let mut raw = [0; BATCH_HEADER];
    file.read_exact_at(&mut raw, offset)
        .map_err(io_err("reading a batch header"))?;
    if raw.iter().all(|b| *b == 0) {
        return Ok(Batch::End);
    }
    let Some(header) = BatchHeader::parse(&raw) else {
        return Ok(Batch::Damaged);
    };
    let len = header.len() as u64;
    if offset + len > file.size() {
        return Ok(Batch::Damaged);
    }
    let mut payload = vec![0; header.payload_len];
    file.read_exact_at(&mut payload, offset + BATCH_HEADER as u64)
        .map_err(io_err("reading a batch"))?;
    Ok(match header.records(&payload) {
        Some(records) => Batch::Intact(len, header.number, payload, records),
        None => Batch::Damaged,
    })
}

/// Whether an intact batch numbered `min_number` or later starts anywhere after `damaged`
/// in `file` (the number rules out a batch-like run of bytes inside a torn batch's content).
fn valid_batch_after(
    file: &dyn ReadFile,
    damaged: u64,
    min_number: u64,
) -> Result<bool, RecoverError> {
    let size = file.size();
    let chunk = 1 << 20;
    let mut at = damaged + 1;
    while at + BATCH_HEADER as u64 <= size {
        let n = usize::try_from((size - at).min(chunk + BATCH_HEADER as u64)).unwrap_or(0);
        let mut buf = vec![0; n];
        file.read_exact_at(&mut buf, at)
            .map_err(io_err("scanning past a damaged batch"))?;
        for i in 0..n
            .saturating_sub(BATCH_HEADER - 1)
            .min(usize::try_from(chunk).unwrap_or(0))
        {
            if &buf[i..i + 4] != BATCH_MAGIC {
                continue;
            }
            if let Batch::Intact(_, number, ..) = read_batch(file, at + i as u64)? {
                if number >= min_number {
                    return Ok(true);
                }
            }
        }
        at += chunk;
    }
    Ok(false)
}

/// The checkpoint and its entries, if there is one; without one, the segments must be
/// all there ever were.
fn read_checkpoint(
    fs: &dyn Fs,
    dir: &Path,
    ids: &[u64],
) -> Result<(Option<Mark>, Vec<Live>), RecoverError> {
    let (mark, entries) = match Reader::open(fs, dir)? {
        Some(reader) => {
            let (mark, entries) = reader.read_all()?;
            (Some(mark), entries)
        }
        None => (None, Vec::new()),
    };
    if mark.is_none() && ids.iter().enumerate().any(|(i, id)| *id != i as u64 + 1) {
        // Segments are removed only by compaction, which needs a checkpoint.
        return Err(RecoverError::MissingCheckpoint);
    }
    Ok((mark, entries))
}

/// Every segment's id, in order; an unfinished segment (`.seg.tmp`) is removed.
fn segment_ids(fs: &dyn Fs, dir: &Path) -> Result<Vec<u64>, RecoverError> {
    let mut ids = Vec::new();
    for entry in fs.read_dir(dir).map_err(io_err("listing the log"))? {
        let name = entry.name.to_string_lossy();
        if entry.kind != Kind::File {
            continue;
        }
        if name.ends_with(".seg.tmp") {
            // A segment that was being zero-filled: never used.
            fs.remove_file(&dir.join(&*name))
                .map_err(io_err("removing an unfinished segment"))?;
        } else if let Some(id) = name
            .strip_suffix(SEGMENT_EXT)
            .and_then(|s| s.parse::<u64>().ok())
        {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    Ok(ids)
}
