//! Strong entity tags.

use std::fmt;

/// A strong entity tag: 128 bits of the BLAKE3 hash of the content, as 32 hex digits.
///
/// Deterministic, so it survives restarts; two different contents never share one.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ETag([u8; 16]);

impl ETag {
    /// The tag of `content`.
    pub fn of(content: &[u8]) -> Self {
        let mut hasher = blake3::Hasher::new();
        hasher.update(content);
        Self::from_hasher(&hasher)
    }

    /// The tag of everything fed to `hasher`.
    pub fn from_hasher(hasher: &blake3::Hasher) -> Self {
        let mut raw = [0; 16];
        raw.copy_from_slice(&hasher.finalize().as_bytes()[..16]);
        Self(raw)
    }

    /// The raw 16 bytes.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// From raw bytes, as stored on disk.
    pub fn from_bytes(raw: [u8; 16]) -> Self {
        Self(raw)
    }

    /// Parses the 32 hex digits (without quotes).
    pub fn parse_hex(hex: &str) -> Option<Self> {
        if hex.len() != 32 {
            return None;
        }
        let mut raw = [0; 16];
        for (i, byte) in raw.iter_mut().enumerate() {
            *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(Self(raw))
    }
}

impl fmt::Display for ETag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for ETag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ETag({self})")
    }
}
