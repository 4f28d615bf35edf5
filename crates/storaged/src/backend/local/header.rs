//! The object-file header: every object file starts with 64 bytes (magic, ETag, content
//! length), so an object's tag is read from the very file that is served, and a file
//! whose length disagrees with its header is never taken for an object.

use crate::backend::fs::{Fs, ReadFile};
use crate::backend::ETag;

pub(super) const HEADER_LEN: usize = 64;
const MAGIC: &[u8; 8] = b"STGOBJ01";

/// The header of an object of `size` bytes with tag `etag`.
pub(super) fn header(etag: ETag, size: u64) -> [u8; HEADER_LEN] {
    let mut raw = [0; HEADER_LEN];
    raw[..8].copy_from_slice(MAGIC);
    raw[8..24].copy_from_slice(etag.as_bytes());
    raw[24..32].copy_from_slice(&size.to_le_bytes());
    raw
}

/// The ETag and content length of an object file, if its header is intact and agrees with
/// the file's length.
fn parse_header(raw: &[u8; HEADER_LEN], file_len: u64) -> Option<(ETag, u64)> {
    if &raw[..8] != MAGIC {
        return None;
    }
    let mut etag = [0; 16];
    etag.copy_from_slice(&raw[8..24]);
    let mut size = [0; 8];
    size.copy_from_slice(&raw[24..32]);
    let size = u64::from_le_bytes(size);
    (file_len.checked_sub(HEADER_LEN as u64) == Some(size))
        .then_some((ETag::from_bytes(etag), size))
}

/// Opens the object file at `path` and reads its header: the open file, its ETag and its
/// content length. `InvalidData` when the header is not intact.
pub(super) fn open_checked(
    fs: &dyn Fs,
    path: &std::path::Path,
) -> std::io::Result<(std::sync::Arc<dyn ReadFile>, ETag, u64)> {
    let file = fs.open(path)?;
    let mut raw = [0; HEADER_LEN];
    file.read_exact_at(&mut raw, 0)?;
    let (etag, size) = parse_header(&raw, file.size()).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("bad object header in {}", path.display()),
        )
    })?;
    Ok((file, etag, size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_round_trips_and_must_agree_with_the_file_length() {
        let etag = ETag::of(b"abc");
        let raw = header(etag, 3);
        assert_eq!(parse_header(&raw, 67), Some((etag, 3)));
        assert_eq!(parse_header(&raw, 66), None, "truncated");
        assert_eq!(parse_header(&raw, 3), None, "shorter than a header");
        let mut bad = raw;
        bad[0] = b'X';
        assert_eq!(parse_header(&bad, 67), None, "wrong magic");
    }
}
