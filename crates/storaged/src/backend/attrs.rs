//! What is kept with an object besides its bytes: the S3 entity tag (MD5) and the
//! attributes both faces return (Content-Type and friends, user metadata).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Attributes stored with an object and sent back as headers on GET and HEAD (both faces).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attributes {
    /// `Content-Type`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// `Content-Encoding`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_encoding: Option<String>,
    /// `Cache-Control`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<String>,
    /// `Content-Disposition`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_disposition: Option<String>,
    /// `x-amz-meta-<name>`: lowercase names without the prefix.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
}

impl Attributes {
    /// Whether nothing is set.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// The stored form (empty for no attributes).
    pub fn encode(&self) -> Vec<u8> {
        if self.is_empty() {
            return Vec::new();
        }
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// From the stored form.
    pub fn decode(raw: &[u8]) -> Option<Self> {
        if raw.is_empty() {
            return Some(Self::default());
        }
        serde_json::from_slice(raw).ok()
    }
}

/// The entity tag S3 clients expect: the MD5 of the content, or for an object assembled
/// from N parts, the MD5 of the parts' MD5s followed by `-N`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct S3Tag {
    /// The digest.
    pub digest: [u8; 16],
    /// 0 for a single-part object, else the number of parts.
    pub parts: u32,
}

impl S3Tag {
    /// The tag of content with this MD5.
    pub fn single(digest: [u8; 16]) -> Self {
        Self { digest, parts: 0 }
    }

    /// Parses `hex` or `hex-N` (without quotes).
    pub fn parse(text: &str) -> Option<Self> {
        let (hex, parts) = match text.split_once('-') {
            Some((hex, n)) => (hex, n.parse::<u32>().ok().filter(|n| *n > 0)?),
            None => (text, 0),
        };
        if hex.len() != 32 {
            return None;
        }
        let mut digest = [0; 16];
        for (i, byte) in digest.iter_mut().enumerate() {
            *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(Self { digest, parts })
    }
}

impl fmt::Display for S3Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.digest {
            write!(f, "{byte:02x}")?;
        }
        if self.parts > 0 {
            write!(f, "-{}", self.parts)?;
        }
        Ok(())
    }
}

impl fmt::Debug for S3Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "S3Tag({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_print_and_parse() {
        let single = S3Tag::single([0xab; 16]);
        assert_eq!(single.to_string(), "ab".repeat(16));
        assert_eq!(S3Tag::parse(&single.to_string()), Some(single));
        let multi = S3Tag {
            digest: [1; 16],
            parts: 8,
        };
        assert_eq!(multi.to_string(), format!("{}-8", "01".repeat(16)));
        assert_eq!(S3Tag::parse(&multi.to_string()), Some(multi));
        for bad in [
            "",
            "abc",
            &format!("{}-0", "01".repeat(16)),
            &format!("{}-x", "01".repeat(16)),
        ] {
            assert_eq!(S3Tag::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn attributes_round_trip_and_empty_is_nothing() {
        assert!(Attributes::default().encode().is_empty());
        let attrs = Attributes {
            content_type: Some("application/x-parquet".into()),
            metadata: [("owner".to_owned(), "data-eng".to_owned())].into(),
            ..Attributes::default()
        };
        assert_eq!(Attributes::decode(&attrs.encode()), Some(attrs));
        assert_eq!(Attributes::decode(b"{\"bogus\":1}"), None);
    }
}
