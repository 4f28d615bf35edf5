//! The index checkpoint (ADR 0018): every key's current put as of a log position, sorted
//! by key, so that start-up replays only the log after that position and compaction knows
//! which records of an old segment are live.
//!
//! `checkpoint` in the log directory; a new one is written as `checkpoint.tmp`, synced,
//! renamed over it and the directory synced, so there is always one whole checkpoint (or
//! none, before the first). Little-endian.
//!
//! Header (64 bytes):
//!
//! | bytes  | field                                         |
//! |--------|-----------------------------------------------|
//! | 0..4   | magic `SLCK`                                  |
//! | 4..8   | crc32c of bytes 8..64                         |
//! | 8..16  | segment of the position it covers up to       |
//! | 16..24 | offset in that segment                        |
//! | 24..32 | next sequence number                          |
//! | 32..40 | next batch number                             |
//! | 40..48 | entry count                                   |
//! | 48..56 | body length                                   |
//! | 56..60 | crc32c of the body                            |
//! | 60..64 | zero                                          |
//!
//! Entry (82 bytes, then the key): key length (u16), segment, offset, record length (u32),
//! sequence number, size, ETag (16), S3 tag digest (16), S3 tag parts (u32), last-modified
//! (ns, i64).

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::format::{nanos_of, time_of, u32_at, u64_at, Kind, RecordHead};
use super::{Appended, Live, Mark, Position};
use crate::backend::fs::{Fs, ReadFile, WriteFile};
use crate::backend::{ETag, S3Tag};

const MAGIC: &[u8; 4] = b"SLCK";
const HEADER: usize = 64;
const ENTRY: usize = 82;
const CHUNK: usize = 1 << 20;

pub(super) fn path(dir: &Path) -> PathBuf {
    dir.join("checkpoint")
}

fn temp_path(dir: &Path) -> PathBuf {
    dir.join("checkpoint.tmp")
}

/// Why a checkpoint cannot be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CheckpointError {
    #[error("i/o error while reading the log checkpoint: {0}")]
    Io(#[from] io::Error),
    #[error(
        "the write log checkpoint {path} is damaged ({what}); it was written whole and \
         synced, so it has been damaged since: restore the data directory from a backup"
    )]
    Damaged { path: String, what: &'static str },
}

/// A checkpoint being read, entry by entry; the body's checksum is checked at the end.
pub(super) struct Reader {
    file: Arc<dyn ReadFile>,
    path: PathBuf,
    pub(super) mark: Mark,
    count: u64,
    body_len: u64,
    body_crc: u32,
    read: u64,
    crc: u32,
    buf: Vec<u8>,
    at: usize,
}

impl Reader {
    /// The checkpoint in `dir`, if there is one (a leftover `checkpoint.tmp` is removed).
    pub(super) fn open(fs: &dyn Fs, dir: &Path) -> Result<Option<Self>, CheckpointError> {
        let tmp = temp_path(dir);
        if fs.stat(&tmp)?.is_some() {
            fs.remove_file(&tmp)?;
        }
        let path = path(dir);
        if fs.stat(&path)?.is_none() {
            return Ok(None);
        }
        let file = fs.open(&path)?;
        let damaged = |what| CheckpointError::Damaged {
            path: path.display().to_string(),
            what,
        };
        if file.size() < HEADER as u64 {
            return Err(damaged("shorter than its header"));
        }
        let mut h = [0; HEADER];
        file.read_exact_at(&mut h, 0)?;
        if &h[..4] != MAGIC || crc32c::crc32c(&h[8..]) != u32_at(&h, 4) {
            return Err(damaged("bad header"));
        }
        let body_len = u64_at(&h, 48);
        if file.size() != HEADER as u64 + body_len {
            return Err(damaged("its length disagrees with its header"));
        }
        Ok(Some(Self {
            mark: Mark {
                position: Position {
                    segment: u64_at(&h, 8),
                    offset: u64_at(&h, 16),
                },
                next_seq: u64_at(&h, 24),
                next_batch: u64_at(&h, 32),
            },
            count: u64_at(&h, 40),
            body_len,
            body_crc: u32_at(&h, 56),
            read: 0,
            crc: 0,
            buf: Vec::new(),
            at: 0,
            file,
            path,
        }))
    }

    fn damaged(&self, what: &'static str) -> CheckpointError {
        CheckpointError::Damaged {
            path: self.path.display().to_string(),
            what,
        }
    }

    /// Makes at least `n` unread bytes available in `buf[at..]`, if the body has them.
    fn fill(&mut self, n: usize) -> Result<bool, CheckpointError> {
        if self.buf.len() - self.at >= n {
            return Ok(true);
        }
        self.buf.drain(..self.at);
        self.at = 0;
        while self.buf.len() < n && self.read < self.body_len {
            let want = usize::try_from(self.body_len - self.read)
                .unwrap_or(usize::MAX)
                .min(CHUNK.max(n));
            let start = self.buf.len();
            self.buf.resize(start + want, 0);
            self.file
                .read_exact_at(&mut self.buf[start..], HEADER as u64 + self.read)?;
            self.crc = crc32c::crc32c_append(self.crc, &self.buf[start..]);
            self.read += want as u64;
        }
        Ok(self.buf.len() >= n)
    }

    /// The next entry; `None` after the last, once the body's checksum and count held.
    pub(super) fn next_entry(&mut self) -> Result<Option<Live>, CheckpointError> {
        if !self.fill(ENTRY)? {
            let whole = self.at == self.buf.len() && self.read == self.body_len;
            if !whole || self.crc != self.body_crc {
                return Err(self.damaged("its body fails its checksum"));
            }
            return Ok(None);
        }
        let key_len = usize::from(u16::from_le_bytes([
            self.buf[self.at],
            self.buf[self.at + 1],
        ]));
        if !self.fill(ENTRY + key_len)? {
            return Err(self.damaged("an entry runs past its end"));
        }
        let e = &self.buf[self.at..self.at + ENTRY + key_len];
        let mut etag = [0; 16];
        etag.copy_from_slice(&e[38..54]);
        let mut digest = [0; 16];
        digest.copy_from_slice(&e[54..70]);
        let mut nanos = [0; 8];
        nanos.copy_from_slice(&e[74..82]);
        let seq = u64_at(e, 22);
        let live = Live {
            key: e[ENTRY..].to_vec(),
            head: RecordHead {
                kind: Kind::Put,
                seq,
                size: u64_at(e, 30),
                etag: ETag::from_bytes(etag),
                s3_tag: S3Tag {
                    digest,
                    parts: u32_at(e, 70),
                },
                last_modified: time_of(i64::from_le_bytes(nanos)),
            },
            at: Appended {
                segment: u64_at(e, 2),
                offset: u64_at(e, 10),
                len: u32_at(e, 18),
                seq,
            },
        };
        self.at += ENTRY + key_len;
        Ok(Some(live))
    }

    /// Every entry, checked.
    pub(super) fn read_all(mut self) -> Result<(Mark, Vec<Live>), CheckpointError> {
        let mut entries = Vec::with_capacity(usize::try_from(self.count).unwrap_or(0));
        while let Some(e) = self.next_entry()? {
            entries.push(e);
        }
        if entries.len() as u64 != self.count {
            return Err(self.damaged("its entry count disagrees with its header"));
        }
        Ok((self.mark, entries))
    }
}

/// What a written checkpoint holds: entries, and live bytes per segment.
#[derive(Debug, Default)]
pub(super) struct Summary {
    pub(super) entries: u64,
    pub(super) bytes: u64,
    pub(super) live: BTreeMap<u64, u64>,
}

impl Summary {
    pub(super) fn add(&mut self, at: &Appended) {
        self.entries += 1;
        *self.live.entry(at.segment).or_default() += u64::from(at.len);
    }
}

/// A checkpoint being written as `checkpoint.tmp`: entries are pushed in key order, then
/// [`Writer::finish`] makes it durable and renames it in.
pub(super) struct Writer {
    file: Box<dyn WriteFile>,
    buf: Vec<u8>,
    crc: u32,
    len: u64,
    summary: Summary,
}

impl Writer {
    pub(super) fn create(fs: &dyn Fs, dir: &Path) -> io::Result<Self> {
        let tmp = temp_path(dir);
        if fs.stat(&tmp)?.is_some() {
            fs.remove_file(&tmp)?;
        }
        let mut file = fs.create_new(&tmp)?;
        file.write_all(&[0; HEADER])?;
        Ok(Self {
            file,
            buf: Vec::with_capacity(CHUNK + ENTRY + 1024),
            crc: 0,
            len: 0,
            summary: Summary::default(),
        })
    }

    pub(super) fn push(&mut self, e: &Live) -> io::Result<()> {
        encode(e, &mut self.buf);
        self.summary.add(&e.at);
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.crc = crc32c::crc32c_append(self.crc, &self.buf);
        self.len += self.buf.len() as u64;
        let written = self.file.write_all(&self.buf);
        self.buf.clear();
        written
    }

    /// Writes the header for `mark`, syncs, renames the checkpoint in and syncs the
    /// directory.
    pub(super) fn finish(mut self, fs: &dyn Fs, dir: &Path, mark: Mark) -> io::Result<Summary> {
        self.flush()?;
        let mut h = [0; HEADER];
        h[..4].copy_from_slice(MAGIC);
        h[8..16].copy_from_slice(&mark.position.segment.to_le_bytes());
        h[16..24].copy_from_slice(&mark.position.offset.to_le_bytes());
        h[24..32].copy_from_slice(&mark.next_seq.to_le_bytes());
        h[32..40].copy_from_slice(&mark.next_batch.to_le_bytes());
        h[40..48].copy_from_slice(&self.summary.entries.to_le_bytes());
        h[48..56].copy_from_slice(&self.len.to_le_bytes());
        h[56..60].copy_from_slice(&self.crc.to_le_bytes());
        let header_crc = crc32c::crc32c(&h[8..]);
        h[4..8].copy_from_slice(&header_crc.to_le_bytes());
        self.file.write_all_at(&h, 0)?;
        self.file.sync_all()?;
        drop(self.file);
        fs.rename(&temp_path(dir), &path(dir))?;
        fs.sync_dir(dir)?;
        self.summary.bytes = HEADER as u64 + self.len;
        Ok(self.summary)
    }

    /// Removes the unfinished file.
    pub(super) fn abandon(self, fs: &dyn Fs, dir: &Path) {
        drop(self.file);
        let _ = fs.remove_file(&temp_path(dir));
    }
}

fn encode(e: &Live, out: &mut Vec<u8>) {
    let key_len = u16::try_from(e.key.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&key_len.to_le_bytes());
    out.extend_from_slice(&e.at.segment.to_le_bytes());
    out.extend_from_slice(&e.at.offset.to_le_bytes());
    out.extend_from_slice(&e.at.len.to_le_bytes());
    out.extend_from_slice(&e.head.seq.to_le_bytes());
    out.extend_from_slice(&e.head.size.to_le_bytes());
    out.extend_from_slice(e.head.etag.as_bytes());
    out.extend_from_slice(&e.head.s3_tag.digest);
    out.extend_from_slice(&e.head.s3_tag.parts.to_le_bytes());
    out.extend_from_slice(&nanos_of(e.head.last_modified).to_le_bytes());
    out.extend_from_slice(&e.key[..usize::from(key_len)]);
}

/// The latest record per key among records read in log order: a record replaces an
/// earlier one of its key unless that one has a higher sequence number (compaction's
/// copies keep theirs, and a later copy is where the record now is).
pub(super) type Latest = BTreeMap<Vec<u8>, (RecordHead, Appended)>;

pub(super) fn note(latest: &mut Latest, key: Vec<u8>, head: RecordHead, at: Appended) {
    match latest.get(&key) {
        Some((seen, _)) if seen.seq > head.seq => {}
        _ => {
            latest.insert(key, (head, at));
        }
    }
}

/// Merges a checkpoint's entries (sorted by key, from `older`) with the records after its
/// position (`newer`): a newer record with at least the entry's sequence number replaces
/// it, and a newer delete removes the key. Emits the result in key order.
pub(super) fn merge(
    older: &mut dyn FnMut() -> Result<Option<Live>, CheckpointError>,
    newer: Latest,
    emit: &mut dyn FnMut(Live) -> Result<(), CheckpointError>,
) -> Result<(), CheckpointError> {
    use std::cmp::Ordering;
    let mut newer = newer.into_iter().peekable();
    let mut old = older()?;
    loop {
        let side = match (&old, newer.peek()) {
            (None, None) => return Ok(()),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(o), Some((k, _))) => o.key.as_slice().cmp(k.as_slice()),
        };
        let kept = if side == Ordering::Greater {
            None
        } else {
            let kept = old.take();
            old = older()?;
            kept
        };
        let fresh = if side == Ordering::Less {
            None
        } else {
            newer.next()
        };
        match (kept, fresh) {
            (Some(o), Some((_, (head, _)))) if o.head.seq > head.seq => emit(o)?,
            (_, Some((key, (head, at)))) => {
                if head.kind == Kind::Put {
                    emit(Live { key, head, at })?;
                }
            }
            (Some(o), None) => emit(o)?,
            (None, None) => {}
        }
    }
}
