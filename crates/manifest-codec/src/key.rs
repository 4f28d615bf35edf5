//! Object keys: the rules storaged applies to every key (docs/contracts.md, "Object keys").
//!
//! They live here so that catalogd validates a dataset's object list with exactly the rules
//! storaged will apply, and rejects a bad key at register time instead of storing a manifest
//! that points at an object nobody can write.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

use crate::error::KeyError;

/// Longest key, in bytes.
pub const MAX_KEY_LEN: usize = 1024;

/// A validated object key.
///
/// 1–[`MAX_KEY_LEN`] bytes of UTF-8 made of `/`-separated segments; no segment is empty,
/// `.` or `..`, except that the key may end with `/` (a directory marker, as S3 tools
/// write them: `lake/orders/`); no control character (NUL included) and no backslash
/// anywhere. Together these
/// mean a key can never name a path outside the directory it is stored under.
/// Unicode is taken as given: NFC and NFD spellings of one word are two different keys.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct ObjectKey(String);

impl ObjectKey {
    /// Parses `input`, returning the first rule it breaks.
    pub fn parse(input: &str) -> Result<Self, KeyError> {
        if input.is_empty() {
            return Err(KeyError::Empty);
        }
        if input.len() > MAX_KEY_LEN {
            return Err(KeyError::TooLong { len: input.len() });
        }
        if input.starts_with('/') {
            return Err(KeyError::LeadingSlash);
        }
        for (at, ch) in input.char_indices() {
            if ch.is_control() {
                return Err(KeyError::ControlChar {
                    code: u32::from(ch),
                    at,
                });
            }
            if ch == '\\' {
                return Err(KeyError::Backslash { at });
            }
        }
        let mut at = 0;
        let body = input.strip_suffix('/').unwrap_or(input);
        for segment in body.split('/') {
            match segment {
                "" => return Err(KeyError::EmptySegment { at }),
                "." | ".." => return Err(KeyError::DotSegment { at }),
                _ => {}
            }
            at += segment.len() + 1;
        }
        Ok(Self(input.to_owned()))
    }

    /// Parses raw bytes (for example a percent-decoded URL path), which must be UTF-8.
    pub fn parse_bytes(input: &[u8]) -> Result<Self, KeyError> {
        let text = std::str::from_utf8(input).map_err(|e| KeyError::NotUtf8 {
            at: e.valid_up_to(),
        })?;
        Self::parse(text)
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key's `/`-separated segments; never empty, `.` or `..`.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }

    /// Whether the key is `_catalog` or lies under the reserved `_catalog/` prefix.
    pub fn is_catalog_reserved(&self) -> bool {
        crate::layout::is_catalog_reserved(&self.0)
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Lets a map keyed by `ObjectKey` be searched and ranged by `&str`; the order is the
/// same as the keys' byte order.
impl std::borrow::Borrow<str> for ObjectKey {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for ObjectKey {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for ObjectKey {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl<'de> Deserialize<'de> for ObjectKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_odd_but_valid_keys() {
        for key in [
            "a",
            "a/b/c.parquet",
            "with space/and emoji \u{1f600}",
            "caf\u{e9}",
            "cafe\u{301}",
            "...",
            ".hidden/..x/x..",
            "%2e%2e/x",
            "a:b?c#d&e",
            "lake/orders/",
            "marker/",
            &"k".repeat(1024),
        ] {
            assert_eq!(ObjectKey::parse(key).unwrap().as_str(), key);
        }
    }

    #[test]
    fn nfc_and_nfd_are_distinct_keys() {
        let nfc = ObjectKey::parse("caf\u{e9}").unwrap();
        let nfd = ObjectKey::parse("cafe\u{301}").unwrap();
        assert_ne!(nfc, nfd);
    }

    #[test]
    fn each_rule_has_its_own_error() {
        let cases: &[(&str, KeyError)] = &[
            ("", KeyError::Empty),
            (&"k".repeat(1025), KeyError::TooLong { len: 1025 }),
            ("/abs", KeyError::LeadingSlash),
            ("a//b", KeyError::EmptySegment { at: 2 }),
            ("a//", KeyError::EmptySegment { at: 2 }),
            ("./", KeyError::DotSegment { at: 0 }),
            ("..", KeyError::DotSegment { at: 0 }),
            ("a/../b", KeyError::DotSegment { at: 2 }),
            ("a/.", KeyError::DotSegment { at: 2 }),
            ("a\\b", KeyError::Backslash { at: 1 }),
            ("a\0b", KeyError::ControlChar { code: 0, at: 1 }),
            ("a\nb", KeyError::ControlChar { code: 10, at: 1 }),
            ("a\u{7f}", KeyError::ControlChar { code: 0x7f, at: 1 }),
            ("a\u{85}", KeyError::ControlChar { code: 0x85, at: 1 }),
        ];
        for (input, expected) in cases {
            assert_eq!(&ObjectKey::parse(input).unwrap_err(), expected, "{input:?}");
        }
    }

    #[test]
    fn bytes_must_be_utf8() {
        // Overlong encoding of '/' and a lone continuation byte.
        assert_eq!(
            ObjectKey::parse_bytes(b"a\xc0\xafb").unwrap_err(),
            KeyError::NotUtf8 { at: 1 }
        );
        assert_eq!(
            ObjectKey::parse_bytes(b"\x80").unwrap_err(),
            KeyError::NotUtf8 { at: 0 }
        );
        assert!(ObjectKey::parse_bytes("ok/\u{e9}".as_bytes()).is_ok());
    }

    #[test]
    fn catalog_prefix_is_recognised() {
        assert!(ObjectKey::parse("_catalog/manifests/a.parquet")
            .unwrap()
            .is_catalog_reserved());
        assert!(!ObjectKey::parse("_catalogue/x")
            .unwrap()
            .is_catalog_reserved());
        assert!(ObjectKey::parse("_catalog").unwrap().is_catalog_reserved());
    }
}
