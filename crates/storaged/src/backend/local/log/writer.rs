//! The writer thread: group commit (ADR 0017).
//!
//! One thread owns the head segment. It takes every request waiting, writes them as one
//! batch and calls `fdatasync` once, then answers them all; requests that arrive during the
//! sync wait for the next batch. After a failed write or sync it answers every request,
//! then and later, with the failure: the kernel may have dropped the unsynced pages, so
//! nothing written since the last good sync can be trusted, and a retried sync proves
//! nothing.
//!
//! The next segment is made by another thread once the head is half full, so that a roll
//! only switches files: zero-filling and syncing a segment (tens of milliseconds for
//! 64 MiB) would otherwise stall every writer at each roll.

use std::path::{Path, PathBuf};
use std::sync::mpsc::Receiver;
use std::sync::Arc;

use super::format::{encode_record, record_len, BatchBuf, MAX_BATCH_PAYLOAD};
use super::{
    segment_path, Append, AppendError, Appended, Committed, Mark, Position, Shared, Unsettled,
};
use crate::backend::fs::{Fs, ReadFile, WriteFile};

/// How much of a new segment's zero fill is written back at a time.
const FILL_SYNC_BYTES: usize = 4 << 20;

/// A segment's handles: for appending, and for the readers.
type SegmentFiles = (Box<dyn WriteFile>, Arc<dyn ReadFile>);

/// The next segment, being made by its own thread (which returns it).
pub(super) struct Spare {
    id: u64,
    thread: std::thread::JoinHandle<std::io::Result<SegmentFiles>>,
}

/// Records to append together, and where to say how it went.
pub(super) struct Request {
    pub(super) records: Vec<Append>,
    pub(super) reply: tokio::sync::oneshot::Sender<Result<Committed, AppendError>>,
}

impl Request {
    fn len(&self) -> usize {
        self.records
            .iter()
            .map(|r| record_len(r.key.len(), r.attrs.len(), r.content.len()))
            .sum()
    }
}

pub(super) struct Writer {
    pub(super) fs: Arc<dyn Fs>,
    pub(super) dir: PathBuf,
    pub(super) segment_size: u64,
    pub(super) sync: bool,
    pub(super) head_id: u64,
    pub(super) head: Box<dyn WriteFile>,
    pub(super) offset: u64,
    pub(super) next_seq: u64,
    pub(super) next_batch: u64,
    pub(super) shared: Arc<Shared>,
    /// The segment after the head, once the head is half full.
    pub(super) spare: Option<Spare>,
}

impl Writer {
    pub(super) fn run(mut self, requests: &Receiver<Request>) {
        let mut carry: Option<Request> = None;
        loop {
            let Some(first) = carry.take().or_else(|| requests.recv().ok()) else {
                break;
            };
            let mut size = first.len();
            let mut batch = vec![first];
            while let Ok(next) = requests.try_recv() {
                let len = next.len();
                if size + len > MAX_BATCH_PAYLOAD {
                    carry = Some(next);
                    break;
                }
                size += len;
                batch.push(next);
            }
            self.commit(batch);
        }
        // A spare still being made finishes before the log is closed, so that a reopened
        // log never races it for the same file name.
        if let Some(spare) = self.spare.take() {
            let _ = spare.thread.join();
        }
    }

    fn commit(&mut self, batch: Vec<Request>) {
        let outcome = self.write(&batch);
        let mut outcome = match outcome {
            Ok(locations) => locations
                .into_iter()
                .map(|at| {
                    let first = at.first().map_or_else(Position::default, |a| Position {
                        segment: a.segment,
                        offset: a.offset,
                    });
                    Ok(Committed {
                        at,
                        _unsettled: Unsettled::new(self.shared.clone(), first),
                    })
                })
                .collect(),
            Err(e) => batch.iter().map(|_| Err(e.clone())).collect::<Vec<_>>(),
        };
        // After the appends count as unsettled: a checkpoint that covers them must not
        // find them settled before they were published.
        *self
            .shared
            .committed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Mark {
            position: Position {
                segment: self.head_id,
                offset: self.offset,
            },
            next_seq: self.next_seq,
            next_batch: self.next_batch,
        };
        for (request, result) in batch.into_iter().zip(outcome.drain(..)) {
            let _ = request.reply.send(result);
        }
    }

    /// Writes and syncs one batch: where each request's records went.
    fn write(&mut self, batch: &[Request]) -> Result<Vec<Vec<Appended>>, AppendError> {
        if let Some(why) = self.shared.failure() {
            return Err(AppendError::Stopped(why));
        }
        let mut buf = BatchBuf::new(self.next_batch);
        let mut seq = self.next_seq;
        let mut placed = Vec::with_capacity(batch.len());
        for request in batch {
            let mut records = Vec::with_capacity(request.records.len());
            for r in &request.records {
                let mut head = r.head.clone();
                if head.seq == 0 {
                    head.seq = seq;
                    seq += 1;
                }
                let at = buf.bytes.len();
                encode_record(&head, &r.key, &r.attrs, &r.content, &mut buf.bytes);
                records.push((at, buf.bytes.len() - at, head.seq));
                buf.count += 1;
            }
            placed.push(records);
        }
        if buf.payload_len() > MAX_BATCH_PAYLOAD {
            return Err(AppendError::TooLarge);
        }
        buf.seal();
        let len = buf.bytes.len() as u64;
        if self.offset + len > self.segment_size {
            self.roll().map_err(AppendError::not_written)?;
        }
        let written = self
            .head
            .write_all_at(&buf.bytes, self.offset)
            .and_then(|()| {
                if !self.sync {
                    return Ok(());
                }
                let started = std::time::Instant::now();
                let synced = self.head.sync_data();
                self.shared.synced_in(started.elapsed());
                synced
            });
        if let Err(e) = written {
            let why = format!(
                "writing the log failed at segment {} offset {}: {e}",
                self.head_id, self.offset
            );
            tracing::error!(segment = self.head_id, offset = self.offset, error = %e, "log write or sync failed; the log takes no more writes until a restart");
            self.shared.fail(why.clone());
            return Err(AppendError::Stopped(why));
        }
        let base = self.offset;
        self.offset += len;
        self.next_seq = seq;
        self.next_batch += 1;
        self.shared.batch_committed(buf.count, len);
        if self.spare.is_none() && self.offset > self.segment_size / 2 {
            self.spare = self.make_spare();
        }
        Ok(placed
            .into_iter()
            .map(|records| {
                records
                    .into_iter()
                    .map(|(at, len, seq)| Appended {
                        segment: self.head_id,
                        offset: base + at as u64,
                        len: u32::try_from(len).unwrap_or(u32::MAX),
                        seq,
                    })
                    .collect()
            })
            .collect())
    }

    /// Moves the head to a new segment (made and durable before it is used): the spare if
    /// it was made, else one made now.
    fn roll(&mut self) -> std::io::Result<()> {
        let id = self.head_id + 1;
        let spare = self.spare.take().filter(|s| s.id == id).and_then(|s| {
            match s.thread.join() {
                Ok(Ok(files)) => Some(files),
                Ok(Err(e)) => {
                    tracing::warn!(segment = id, error = %e, "making the next log segment ahead failed; trying again now");
                    None
                }
                Err(_) => None,
            }
        });
        let (write, read) = match spare {
            Some(files) => files,
            None => open_or_create(&*self.fs, &self.dir, id, self.segment_size)?,
        };
        self.shared.add_segment(id, read);
        self.head = write;
        self.head_id = id;
        self.offset = 0;
        Ok(())
    }

    /// Starts making the segment after the head on a thread of its own; `None` (the roll
    /// makes it) when no thread can be started.
    fn make_spare(&self) -> Option<Spare> {
        let id = self.head_id + 1;
        let (fs, dir, size) = (self.fs.clone(), self.dir.clone(), self.segment_size);
        let thread = std::thread::Builder::new()
            .name("storaged-log-segment".into())
            .spawn(move || open_or_create(&*fs, &dir, id, size))
            .map_err(|e| tracing::warn!(error = %e, "could not start making the next log segment"))
            .ok()?;
        Some(Spare { id, thread })
    }
}

/// Segment `id` for appending: the existing file (an unused spare left by an earlier run)
/// or a new one, zero-filled to `size` under a temporary name, fsynced and renamed in, so
/// an append changes no file metadata.
pub(super) fn open_or_create(
    fs: &dyn Fs,
    dir: &Path,
    id: u64,
    size: u64,
) -> std::io::Result<SegmentFiles> {
    let path = segment_path(dir, id);
    if fs.stat(&path)?.is_some() {
        return Ok((fs.open_write(&path)?, fs.open(&path)?));
    }
    let tmp = path.with_extension("seg.tmp");
    if fs.stat(&tmp)?.is_some() {
        fs.remove_file(&tmp)?;
    }
    let mut file = fs.create_new(&tmp)?;
    let zeros = vec![0; 1 << 20];
    let mut left = size;
    let filled = (|| {
        let mut unsynced = 0;
        while left > 0 {
            let n = usize::try_from(left).unwrap_or(usize::MAX).min(zeros.len());
            file.write_all(&zeros[..n])?;
            left -= n as u64;
            unsynced += n;
            // Written back a few MiB at a time, so that the writers' own syncs never
            // queue behind a whole segment's worth of zeros.
            if unsynced >= FILL_SYNC_BYTES && left > 0 {
                file.sync_data()?;
                unsynced = 0;
            }
        }
        file.sync_all()
    })();
    if let Err(e) = filled {
        // A full disk, say: give back what the attempt took.
        let _ = fs.remove_file(&tmp);
        return Err(e);
    }
    fs.rename(&tmp, &path)?;
    fs.sync_dir(dir)?;
    let read = fs.open(&path)?;
    Ok((file, read))
}
