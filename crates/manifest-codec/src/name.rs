//! Dataset names: exactly one spelling per dataset (docs/contracts.md §2).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

use crate::error::NameError;

/// Longest name, in bytes.
pub const MAX_NAME_LEN: usize = 255;

/// A validated dataset name.
///
/// One or more segments joined by `.`; a segment is lowercase ASCII letters, digits, `_` and
/// `-` and starts with a letter or digit; at most [`MAX_NAME_LEN`] bytes in all.
///
/// Deliberately strict: the dataset id is derived from the name's bytes, so `Orders` and
/// `orders` would be two datasets. Nothing is lowercased or trimmed on the caller's behalf;
/// a name that breaks a rule is rejected with the rule it broke. A valid name never needs
/// escaping in a URL path or an object key.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct DatasetName(String);

impl DatasetName {
    /// Parses `input`, returning the first rule it breaks.
    pub fn parse(input: &str) -> Result<Self, NameError> {
        if input.is_empty() {
            return Err(NameError::Empty);
        }
        if input.len() > MAX_NAME_LEN {
            return Err(NameError::TooLong { len: input.len() });
        }
        let mut segment_start = true;
        for (at, ch) in input.char_indices() {
            match ch {
                '.' if segment_start => return Err(NameError::EmptySegment { at }),
                '.' => segment_start = true,
                'a'..='z' | '0'..='9' => segment_start = false,
                '_' | '-' if segment_start => {
                    return Err(NameError::BadSegmentStart { ch, at });
                }
                '_' | '-' => {}
                'A'..='Z' => return Err(NameError::Uppercase { ch, at }),
                _ => return Err(NameError::InvalidChar { ch, at }),
            }
        }
        if segment_start {
            // The name ends with '.', so its last segment is empty.
            return Err(NameError::EmptySegment { at: input.len() });
        }
        Ok(Self(input.to_owned()))
    }

    /// The name as text; its UTF-8 bytes are what the dataset id is derived from.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DatasetName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Names order as their text, so a sorted map of names can be searched by `&str`.
impl std::borrow::Borrow<str> for DatasetName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for DatasetName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for DatasetName {
    type Err = NameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl<'de> Deserialize<'de> for DatasetName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_valid_names() {
        for name in [
            "a",
            "orders",
            "sales.orders_2024",
            "0",
            "a-b_c.d-e.f9",
            "x.y.z",
            &"a".repeat(255),
        ] {
            assert_eq!(DatasetName::parse(name).unwrap().as_str(), name);
        }
    }

    #[test]
    fn each_rule_has_its_own_error() {
        let cases: &[(&str, NameError)] = &[
            ("", NameError::Empty),
            (&"a".repeat(256), NameError::TooLong { len: 256 }),
            ("Orders", NameError::Uppercase { ch: 'O', at: 0 }),
            ("ordErs", NameError::Uppercase { ch: 'E', at: 3 }),
            (".a", NameError::EmptySegment { at: 0 }),
            ("a..b", NameError::EmptySegment { at: 2 }),
            ("a.", NameError::EmptySegment { at: 2 }),
            ("_a", NameError::BadSegmentStart { ch: '_', at: 0 }),
            ("a.-b", NameError::BadSegmentStart { ch: '-', at: 2 }),
            ("a b", NameError::InvalidChar { ch: ' ', at: 1 }),
            ("a/b", NameError::InvalidChar { ch: '/', at: 1 }),
            (
                "caf\u{e9}",
                NameError::InvalidChar {
                    ch: '\u{e9}',
                    at: 3,
                },
            ),
            ("a\0", NameError::InvalidChar { ch: '\0', at: 1 }),
        ];
        for (input, expected) in cases {
            assert_eq!(
                &DatasetName::parse(input).unwrap_err(),
                expected,
                "{input:?}"
            );
        }
    }

    #[test]
    fn messages_name_the_rule() {
        let msg = DatasetName::parse("Orders").unwrap_err().to_string();
        assert_eq!(msg, "uppercase letter 'O' at byte 0: names are lowercase");
        let msg = DatasetName::parse("a..b").unwrap_err().to_string();
        assert!(msg.contains("empty segment"), "{msg}");
        let msg = DatasetName::parse(&"a".repeat(300))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("longer than 255 bytes"), "{msg}");
    }

    #[test]
    fn length_counts_bytes_not_chars() {
        // 128 two-byte chars: 256 bytes, rejected on length before the char rule.
        let input = "\u{e9}".repeat(128);
        assert_eq!(
            DatasetName::parse(&input).unwrap_err(),
            NameError::TooLong { len: 256 }
        );
    }

    #[test]
    fn deserialize_validates() {
        let ok: DatasetName = serde_json_like("orders").unwrap();
        assert_eq!(ok.as_str(), "orders");
        assert!(serde_json_like("Orders").is_err());
    }

    fn serde_json_like(s: &str) -> Result<DatasetName, serde::de::value::Error> {
        use serde::de::IntoDeserializer;
        DatasetName::deserialize(s.into_deserializer())
    }
}
