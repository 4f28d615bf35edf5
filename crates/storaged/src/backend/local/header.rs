//! The object-file header. Every object file starts with 64 bytes, so an object's tags are
//! read from the very file that is served, and a file whose length disagrees with its
//! header is never taken for an object (ADR 0015 describes format 2):
//!
//! | bytes  | format 1 (`STGOBJ01`)      | format 2 (`STGOBJ02`)                  |
//! |--------|----------------------------|----------------------------------------|
//! | 0..8   | magic                      | magic                                  |
//! | 8..24  | ETag (BLAKE3-128)          | ETag (BLAKE3-128)                      |
//! | 24..32 | content length (LE)        | content length (LE)                    |
//! | 32..48 | zero                       | S3 tag digest (MD5, or MD5 of MD5s)    |
//! | 48..52 | zero                       | S3 tag part count (LE; 0 = single)     |
//! | 52..56 | zero                       | attributes length A (LE)               |
//! | 56..60 | zero                       | segment count N (LE; 0 = plain object) |
//! | 60..64 | zero                       | zero                                   |
//!
//! Format 2 follows the header with A bytes of attributes (JSON), then the content; format
//! 1 with the content. Files of format 1 are read as they are (no S3 tag, no attributes).
//! An assembled object (N > 0, `assemble`) holds no content: after the attributes come its
//! segment directory's generation (u64 LE) and the N segment sizes (u64 LE each); the
//! content is in the segment files `segments/<generation>/<i>`.

use crate::backend::fs::{Fs, ReadFile};
use crate::backend::{ETag, S3Tag};

pub(super) const HEADER_LEN: usize = 64;
const MAGIC_V1: &[u8; 8] = b"STGOBJ01";
const MAGIC_V2: &[u8; 8] = b"STGOBJ02";
/// Largest attributes block accepted.
pub(super) const MAX_ATTRS: usize = 64 * 1024;
/// Most segments of an assembled object (S3's part limit).
pub(super) const MAX_SEGMENTS: u32 = 10_000;

/// What an object file's header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Header {
    pub(super) etag: ETag,
    pub(super) size: u64,
    /// `None` for a format-1 file.
    pub(super) s3_tag: Option<S3Tag>,
    pub(super) attrs_len: u32,
    /// Segments of an assembled object (0: the content follows the attributes).
    pub(super) segments: u32,
}

impl Header {
    /// Where the content (or an assembled object's segment table) starts.
    pub(super) fn content_offset(&self) -> u64 {
        HEADER_LEN as u64 + u64::from(self.attrs_len)
    }

    /// The length of the file that holds this header.
    fn file_len(&self) -> Option<u64> {
        if self.segments == 0 {
            self.content_offset().checked_add(self.size)
        } else {
            Some(self.content_offset() + 8 + 8 * u64::from(self.segments))
        }
    }

    /// The 64 header bytes (format 2).
    pub(super) fn encode(&self) -> [u8; HEADER_LEN] {
        let mut raw = [0; HEADER_LEN];
        raw[..8].copy_from_slice(MAGIC_V2);
        raw[8..24].copy_from_slice(self.etag.as_bytes());
        raw[24..32].copy_from_slice(&self.size.to_le_bytes());
        let tag = self.s3_tag.unwrap_or(S3Tag::single([0; 16]));
        raw[32..48].copy_from_slice(&tag.digest);
        raw[48..52].copy_from_slice(&tag.parts.to_le_bytes());
        raw[52..56].copy_from_slice(&self.attrs_len.to_le_bytes());
        raw[56..60].copy_from_slice(&self.segments.to_le_bytes());
        raw
    }

    /// The header of `raw`, if intact and agreeing with the file's length.
    fn parse(raw: &[u8; HEADER_LEN], file_len: u64) -> Option<Self> {
        let word = |at: usize| u32::from_le_bytes([raw[at], raw[at + 1], raw[at + 2], raw[at + 3]]);
        let mut etag = [0; 16];
        etag.copy_from_slice(&raw[8..24]);
        let mut size = [0; 8];
        size.copy_from_slice(&raw[24..32]);
        let size = u64::from_le_bytes(size);
        let header = match &raw[..8] {
            m if m == MAGIC_V1 => Self {
                etag: ETag::from_bytes(etag),
                size,
                s3_tag: None,
                attrs_len: 0,
                segments: 0,
            },
            m if m == MAGIC_V2 => {
                let mut digest = [0; 16];
                digest.copy_from_slice(&raw[32..48]);
                Self {
                    etag: ETag::from_bytes(etag),
                    size,
                    s3_tag: Some(S3Tag {
                        digest,
                        parts: word(48),
                    }),
                    attrs_len: word(52),
                    segments: word(56),
                }
            }
            _ => return None,
        };
        (usize::try_from(header.attrs_len).is_ok_and(|a| a <= MAX_ATTRS)
            && header.segments <= MAX_SEGMENTS
            && header.file_len() == Some(file_len))
        .then_some(header)
    }
}

/// Opens the object file at `path` and reads its header. `InvalidData` when the header is
/// not intact.
pub(super) fn open_checked(
    fs: &dyn Fs,
    path: &std::path::Path,
) -> std::io::Result<(std::sync::Arc<dyn ReadFile>, Header)> {
    let file = fs.open(path)?;
    let mut raw = [0; HEADER_LEN];
    file.read_exact_at(&mut raw, 0)?;
    let header = Header::parse(&raw, file.size()).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("bad object header in {}", path.display()),
        )
    })?;
    Ok((file, header))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_round_trips_and_must_agree_with_the_file_length() {
        let header = Header {
            etag: ETag::of(b"abc"),
            size: 3,
            s3_tag: Some(S3Tag {
                digest: [7; 16],
                parts: 2,
            }),
            attrs_len: 10,
            segments: 0,
        };
        let raw = header.encode();
        assert_eq!(Header::parse(&raw, 77), Some(header));
        assert_eq!(Header::parse(&raw, 76), None, "truncated");
        assert_eq!(Header::parse(&raw, 3), None, "shorter than a header");
        let mut bad = raw;
        bad[0] = b'X';
        assert_eq!(Header::parse(&bad, 77), None, "wrong magic");
    }

    #[test]
    fn an_assembled_object_file_holds_its_segment_table_not_its_content() {
        let header = Header {
            etag: ETag::of(b"abc"),
            size: 1 << 30,
            s3_tag: Some(S3Tag {
                digest: [7; 16],
                parts: 3,
            }),
            attrs_len: 5,
            segments: 3,
        };
        let raw = header.encode();
        assert_eq!(Header::parse(&raw, 64 + 5 + 8 + 24), Some(header));
        assert_eq!(Header::parse(&raw, 64 + 5 + (1 << 30)), None);
    }

    #[test]
    fn format_1_files_still_read() {
        let mut raw = [0; HEADER_LEN];
        raw[..8].copy_from_slice(b"STGOBJ01");
        raw[8..24].copy_from_slice(ETag::of(b"abc").as_bytes());
        raw[24..32].copy_from_slice(&3_u64.to_le_bytes());
        let header = Header::parse(&raw, 67).unwrap();
        assert_eq!(
            (header.size, header.s3_tag, header.content_offset()),
            (3, None, 64)
        );
    }
}
