//! The log's bytes (ADR 0017): batches of records, little-endian.
//!
//! Batch header (32 bytes), what one `fdatasync` covers:
//!
//! | bytes  | field                                  |
//! |--------|----------------------------------------|
//! | 0..4   | magic `SLB1`                           |
//! | 4..8   | crc32c of bytes 8..32                  |
//! | 8..12  | payload length (records, ≤ 4 MiB)      |
//! | 12..16 | record count                           |
//! | 16..24 | batch number (one more than the last)  |
//! | 24..28 | crc32c of the payload                  |
//! | 28..32 | zero                                   |
//!
//! Record header (80 bytes), followed by key, attributes and content:
//!
//! | bytes  | field                                          |
//! |--------|------------------------------------------------|
//! | 0..4   | crc32c of bytes 4..end of record               |
//! | 4..8   | record length, header included                 |
//! | 8      | kind: 1 put, 2 delete                          |
//! | 9      | zero                                           |
//! | 10..12 | key length                                     |
//! | 12..16 | attributes length                              |
//! | 16..24 | sequence number                                |
//! | 24..32 | content length                                 |
//! | 32..48 | ETag (BLAKE3-128)                              |
//! | 48..64 | S3 tag digest                                  |
//! | 64..68 | S3 tag part count (0: single)                  |
//! | 68..76 | last-modified, ns since the Unix epoch (i64)   |
//! | 76..80 | zero                                           |

use std::ops::Range;
use std::time::{Duration, SystemTime};

use crate::backend::{ETag, S3Tag};

pub(crate) const BATCH_MAGIC: &[u8; 4] = b"SLB1";
pub(crate) const BATCH_HEADER: usize = 32;
pub(crate) const RECORD_HEADER: usize = 80;
/// Largest payload of one batch; a record never exceeds it (objects in the log are at most
/// a few hundred KiB, attributes at most 64 KiB, keys 1 KiB).
pub(crate) const MAX_BATCH_PAYLOAD: usize = 4 << 20;

/// What a record does to its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Put = 1,
    Delete = 2,
}

/// A record's fields, as written and as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RecordHead {
    pub(crate) kind: Kind,
    pub(crate) seq: u64,
    pub(crate) size: u64,
    pub(crate) etag: ETag,
    pub(crate) s3_tag: S3Tag,
    pub(crate) last_modified: SystemTime,
}

/// Where a decoded record's parts lie within the record's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Decoded {
    pub(crate) head: RecordHead,
    pub(crate) key: Range<usize>,
    pub(crate) attrs: Range<usize>,
    pub(crate) content: Range<usize>,
}

/// The length of a record with these parts.
pub(crate) fn record_len(key: usize, attrs: usize, content: usize) -> usize {
    RECORD_HEADER + key + attrs + content
}

/// Appends one record to `out`.
pub(crate) fn encode_record(
    head: &RecordHead,
    key: &str,
    attrs: &[u8],
    content: &[u8],
    out: &mut Vec<u8>,
) {
    let start = out.len();
    let len = record_len(key.len(), attrs.len(), content.len());
    out.resize(start + RECORD_HEADER, 0);
    let h = &mut out[start..start + RECORD_HEADER];
    h[4..8].copy_from_slice(&u32_of(len).to_le_bytes());
    h[8] = head.kind as u8;
    h[10..12].copy_from_slice(&u16::try_from(key.len()).unwrap_or(u16::MAX).to_le_bytes());
    h[12..16].copy_from_slice(&u32_of(attrs.len()).to_le_bytes());
    h[16..24].copy_from_slice(&head.seq.to_le_bytes());
    h[24..32].copy_from_slice(&head.size.to_le_bytes());
    h[32..48].copy_from_slice(head.etag.as_bytes());
    h[48..64].copy_from_slice(&head.s3_tag.digest);
    h[64..68].copy_from_slice(&head.s3_tag.parts.to_le_bytes());
    h[68..76].copy_from_slice(&nanos_of(head.last_modified).to_le_bytes());
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(attrs);
    out.extend_from_slice(content);
    let crc = crc32c::crc32c(&out[start + 4..]);
    out[start..start + 4].copy_from_slice(&crc.to_le_bytes());
}

/// Decodes the record at the start of `raw` (which may run on past it): `None` when it is
/// not intact (short, bad crc, bad kind or lengths).
pub(crate) fn decode_record(raw: &[u8]) -> Option<Decoded> {
    let h = raw.get(..RECORD_HEADER)?;
    let len = usize::try_from(u32_at(h, 4)).ok()?;
    let record = raw.get(..len)?;
    if len < RECORD_HEADER || crc32c::crc32c(&record[4..]) != u32_at(h, 0) {
        return None;
    }
    let kind = match h[8] {
        1 => Kind::Put,
        2 => Kind::Delete,
        _ => return None,
    };
    let key_len = usize::from(u16::from_le_bytes([h[10], h[11]]));
    let attrs_len = usize::try_from(u32_at(h, 12)).ok()?;
    let size = u64_at(h, 24);
    let key = RECORD_HEADER..RECORD_HEADER + key_len;
    let attrs = key.end..key.end.checked_add(attrs_len)?;
    let content = attrs.end..attrs.end.checked_add(usize::try_from(size).ok()?)?;
    if content.end != len {
        return None;
    }
    let mut etag = [0; 16];
    etag.copy_from_slice(&h[32..48]);
    let mut digest = [0; 16];
    digest.copy_from_slice(&h[48..64]);
    let nanos = i64::from_le_bytes(h[68..76].try_into().ok()?);
    Some(Decoded {
        head: RecordHead {
            kind,
            seq: u64_at(h, 16),
            size,
            etag: ETag::from_bytes(etag),
            s3_tag: S3Tag {
                digest,
                parts: u32_at(h, 64),
            },
            last_modified: time_of(nanos),
        },
        key,
        attrs,
        content,
    })
}

/// A batch being built: header space, then records.
#[derive(Debug)]
pub(crate) struct BatchBuf {
    pub(crate) bytes: Vec<u8>,
    pub(crate) count: u32,
    pub(crate) number: u64,
}

impl BatchBuf {
    pub(crate) fn new(number: u64) -> Self {
        Self {
            bytes: vec![0; BATCH_HEADER],
            count: 0,
            number,
        }
    }

    pub(crate) fn payload_len(&self) -> usize {
        self.bytes.len() - BATCH_HEADER
    }

    /// Fills in the header; the bytes are then ready to write.
    pub(crate) fn seal(&mut self) {
        let payload_crc = crc32c::crc32c(&self.bytes[BATCH_HEADER..]);
        let payload_len = u32_of(self.payload_len());
        let h = &mut self.bytes[..BATCH_HEADER];
        h[..4].copy_from_slice(BATCH_MAGIC);
        h[8..12].copy_from_slice(&payload_len.to_le_bytes());
        h[12..16].copy_from_slice(&self.count.to_le_bytes());
        h[16..24].copy_from_slice(&self.number.to_le_bytes());
        h[24..28].copy_from_slice(&payload_crc.to_le_bytes());
        let crc = crc32c::crc32c(&h[8..BATCH_HEADER]);
        h[4..8].copy_from_slice(&crc.to_le_bytes());
    }
}

/// An intact batch header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BatchHeader {
    pub(crate) payload_len: usize,
    pub(crate) count: u32,
    pub(crate) number: u64,
    payload_crc: u32,
}

impl BatchHeader {
    /// The header in `raw`, if its magic and crc hold and its length is possible.
    pub(crate) fn parse(raw: &[u8]) -> Option<Self> {
        let h = raw.get(..BATCH_HEADER)?;
        if &h[..4] != BATCH_MAGIC || crc32c::crc32c(&h[8..]) != u32_at(h, 4) {
            return None;
        }
        let payload_len = usize::try_from(u32_at(h, 8)).ok()?;
        (payload_len <= MAX_BATCH_PAYLOAD).then_some(Self {
            payload_len,
            count: u32_at(h, 12),
            number: u64_at(h, 16),
            payload_crc: u32_at(h, 24),
        })
    }

    /// The whole batch's length on disk.
    pub(crate) fn len(&self) -> usize {
        BATCH_HEADER + self.payload_len
    }

    /// The records of `payload`, with their offsets in it, if the payload is intact: its
    /// crc holds and it is exactly `count` intact records.
    pub(crate) fn records(&self, payload: &[u8]) -> Option<Vec<(usize, Decoded)>> {
        if payload.len() != self.payload_len || crc32c::crc32c(payload) != self.payload_crc {
            return None;
        }
        let mut records = Vec::with_capacity(usize::try_from(self.count).ok()?);
        let mut at = 0;
        while at < payload.len() {
            let decoded = decode_record(&payload[at..])?;
            let len = decoded.content.end;
            records.push((at, decoded));
            at += len;
        }
        (records.len() == usize::try_from(self.count).ok()?).then_some(records)
    }
}

fn u32_of(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

pub(crate) fn u32_at(raw: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([raw[at], raw[at + 1], raw[at + 2], raw[at + 3]])
}

pub(crate) fn u64_at(raw: &[u8], at: usize) -> u64 {
    let mut b = [0; 8];
    b.copy_from_slice(&raw[at..at + 8]);
    u64::from_le_bytes(b)
}

pub(crate) fn nanos_of(t: SystemTime) -> i64 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_nanos()).map_or(i64::MIN, |n| -n),
    }
}

pub(crate) fn time_of(nanos: i64) -> SystemTime {
    let magnitude = Duration::from_nanos(nanos.unsigned_abs());
    if nanos >= 0 {
        SystemTime::UNIX_EPOCH + magnitude
    } else {
        SystemTime::UNIX_EPOCH - magnitude
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(kind: Kind, seq: u64, content: &[u8]) -> RecordHead {
        RecordHead {
            kind,
            seq,
            size: content.len() as u64,
            etag: ETag::of(content),
            s3_tag: S3Tag {
                digest: [7; 16],
                parts: 0,
            },
            last_modified: SystemTime::UNIX_EPOCH + Duration::from_nanos(1_764_000_000_123_456_789),
        }
    }

    fn batch(records: &[(RecordHead, &str, &[u8], &[u8])]) -> Vec<u8> {
        let mut b = BatchBuf::new(9);
        for (h, key, attrs, content) in records {
            encode_record(h, key, attrs, content, &mut b.bytes);
            b.count += 1;
        }
        b.seal();
        b.bytes
    }

    #[test]
    fn batches_and_records_round_trip() {
        let put = head(Kind::Put, 41, b"hello");
        let del = head(Kind::Delete, 42, b"");
        let raw = batch(&[
            (put.clone(), "a/b.parquet", b"{\"k\":1}", b"hello"),
            (del.clone(), "a/c", b"", b""),
        ]);
        let header = BatchHeader::parse(&raw).unwrap();
        assert_eq!((header.count, header.number), (2, 9));
        assert_eq!(header.len(), raw.len());
        let records = header.records(&raw[BATCH_HEADER..]).unwrap();
        assert_eq!(records.len(), 2);
        let (at, first) = &records[0];
        let payload = &raw[BATCH_HEADER..];
        assert_eq!(*at, 0);
        assert_eq!(first.head, put);
        assert_eq!(&payload[first.key.clone()], b"a/b.parquet");
        assert_eq!(&payload[first.attrs.clone()], b"{\"k\":1}");
        assert_eq!(&payload[first.content.clone()], b"hello");
        let (at, second) = &records[1];
        assert_eq!(*at, record_len(11, 7, 5));
        assert_eq!(second.head, del);
        assert_eq!(&payload[at + second.key.start..at + second.key.end], b"a/c");
    }

    #[test]
    fn any_flipped_byte_is_caught() {
        let raw = batch(&[(head(Kind::Put, 1, b"xyz"), "k", b"", b"xyz")]);
        for i in 0..raw.len() {
            let mut bad = raw.clone();
            bad[i] ^= 0x10;
            let intact =
                BatchHeader::parse(&bad).and_then(|h| h.records(bad.get(BATCH_HEADER..h.len())?));
            assert!(intact.is_none(), "flipping byte {i} went unnoticed");
        }
    }

    #[test]
    fn a_short_or_zeroed_batch_is_not_intact() {
        let raw = batch(&[(head(Kind::Put, 1, b"xyz"), "k", b"", b"xyz")]);
        let header = BatchHeader::parse(&raw).unwrap();
        assert!(header.records(&raw[BATCH_HEADER..raw.len() - 1]).is_none());
        assert!(BatchHeader::parse(&[0; BATCH_HEADER]).is_none());
        assert!(BatchHeader::parse(&raw[..10]).is_none());
        assert!(decode_record(&[0; RECORD_HEADER]).is_none());
    }

    #[test]
    fn times_before_the_epoch_survive() {
        for nanos in [0, 1, -1, i64::MAX, -5_000_000_000] {
            assert_eq!(nanos_of(time_of(nanos)), nanos);
        }
    }
}
