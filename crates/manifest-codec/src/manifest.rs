//! The manifest model and its JSON shape.

use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

use crate::error::FingerprintError;
use crate::{DatasetName, ObjectKey};

/// Longest schema fingerprint, in bytes.
pub const MAX_FINGERPRINT_LEN: usize = 512;

/// An opaque schema fingerprint chosen by the producer: 1–512 bytes, compared byte for byte.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct SchemaFingerprint(String);

impl SchemaFingerprint {
    /// Parses `input`; it must be non-empty and at most [`MAX_FINGERPRINT_LEN`] bytes.
    pub fn parse(input: &str) -> Result<Self, FingerprintError> {
        if input.is_empty() {
            return Err(FingerprintError::Empty);
        }
        if input.len() > MAX_FINGERPRINT_LEN {
            return Err(FingerprintError::TooLong { len: input.len() });
        }
        Ok(Self(input.to_owned()))
    }

    /// The fingerprint as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SchemaFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for SchemaFingerprint {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// A UTC instant with microsecond precision, the resolution manifests store.
///
/// In JSON it is RFC 3339 with exactly six fractional digits and `Z`
/// (`2024-05-01T12:00:00.000001Z`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    /// Microseconds since the Unix epoch, if chrono can represent that instant.
    pub fn from_micros(micros: i64) -> Option<Self> {
        DateTime::<Utc>::from_timestamp_micros(micros).map(|_| Self(micros))
    }

    /// The current time, truncated to microseconds.
    pub fn now() -> Self {
        Self(Utc::now().timestamp_micros())
    }

    /// Microseconds since the Unix epoch.
    pub fn as_micros(self) -> i64 {
        self.0
    }

    fn to_datetime(self) -> DateTime<Utc> {
        // Every constructor checks that the instant is representable.
        DateTime::<Utc>::from_timestamp_micros(self.0).unwrap_or_default()
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            &self
                .to_datetime()
                .to_rfc3339_opts(SecondsFormat::Micros, true),
        )
    }
}

impl std::str::FromStr for Timestamp {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parsed = DateTime::parse_from_rfc3339(s)
            .map_err(|e| format!("invalid RFC 3339 timestamp {s:?}: {e}"))?;
        if parsed.timestamp_subsec_nanos() % 1_000 != 0 {
            return Err(format!("timestamp {s:?} is finer than microseconds"));
        }
        Ok(Self(parsed.timestamp_micros()))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        raw.parse().map_err(serde::de::Error::custom)
    }
}

/// One data object of a dataset: a key in storaged and its size in bytes.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectRef {
    /// Where the object lives in storaged.
    pub key: ObjectKey,
    /// Size in bytes.
    pub size: ObjectSize,
}

/// An object's size in bytes: `0..=i64::MAX` (Parquet stores it as int64), checked once
/// where a value enters, so holders never check it again.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct ObjectSize(i64);

impl ObjectSize {
    /// The size `bytes`, or `None` when it is negative.
    pub const fn new(bytes: i64) -> Option<Self> {
        if bytes < 0 {
            None
        } else {
            Some(Self(bytes))
        }
    }

    /// The size in bytes, as stored (int64).
    pub const fn get(self) -> i64 {
        self.0
    }

    /// The size in bytes, unsigned.
    pub const fn bytes(self) -> u64 {
        self.0.unsigned_abs()
    }
}

impl From<u32> for ObjectSize {
    fn from(bytes: u32) -> Self {
        Self(i64::from(bytes))
    }
}

impl TryFrom<u64> for ObjectSize {
    type Error = std::num::TryFromIntError;

    fn try_from(bytes: u64) -> Result<Self, Self::Error> {
        i64::try_from(bytes).map(Self)
    }
}

impl fmt::Display for ObjectSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<'de> Deserialize<'de> for ObjectSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = i64::deserialize(deserializer)?;
        Self::new(value).ok_or_else(|| {
            serde::de::Error::custom(format!("invalid value {value}: must not be negative"))
        })
    }
}

/// The catalog's record of one dataset; one Parquet file per dataset holds exactly this.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always [`crate::dataset_id`] of `name`.
    pub dataset_id: Uuid,
    /// The dataset's name.
    pub name: DatasetName,
    /// Fixed at creation; a register with another fingerprint is a conflict.
    pub schema_fingerprint: SchemaFingerprint,
    /// 1 at creation, +1 on every register.
    pub version: i64,
    /// The data objects that make up the dataset, in the producer's order.
    pub objects: Vec<ObjectRef>,
    /// Row count, if the producer gave one; `0..=i64::MAX`.
    #[serde(deserialize_with = "non_negative_opt")]
    pub row_count: Option<i64>,
    /// When the dataset was created; kept across registers.
    pub created_at: Timestamp,
    /// When it was last registered; never decreases.
    pub updated_at: Timestamp,
}

fn non_negative_opt<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
    match Option::<i64>::deserialize(deserializer)? {
        Some(value) if value < 0 => Err(serde::de::Error::custom(format!(
            "invalid value {value}: must not be negative"
        ))),
        other => Ok(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_json_has_six_fraction_digits() {
        let ts = Timestamp::from_micros(1_714_564_800_000_001).unwrap();
        assert_eq!(ts.to_string(), "2024-05-01T12:00:00.000001Z");
        assert_eq!(
            "2024-05-01T12:00:00.000001Z".parse::<Timestamp>().unwrap(),
            ts
        );
        assert_eq!(
            Timestamp::from_micros(0).unwrap().to_string(),
            "1970-01-01T00:00:00.000000Z"
        );
        assert!("2024-05-01T12:00:00.0000001Z".parse::<Timestamp>().is_err());
        assert!(Timestamp::from_micros(i64::MAX).is_none());
    }

    #[test]
    fn fingerprint_rules() {
        assert_eq!(SchemaFingerprint::parse(""), Err(FingerprintError::Empty));
        assert_eq!(
            SchemaFingerprint::parse(&"f".repeat(513)),
            Err(FingerprintError::TooLong { len: 513 })
        );
        assert!(SchemaFingerprint::parse(&"f".repeat(512)).is_ok());
    }

    #[test]
    fn object_ref_rejects_negative_size_and_unknown_fields() {
        let ok: ObjectRef = serde_json::from_str(r#"{"key":"a/b","size":0}"#).unwrap();
        assert_eq!(ok.size, ObjectSize::default());
        let err = serde_json::from_str::<ObjectRef>(r#"{"key":"a/b","size":-1}"#).unwrap_err();
        assert!(err.to_string().contains("must not be negative"), "{err}");
        assert!(serde_json::from_str::<ObjectRef>(r#"{"key":"a","size":1,"x":1}"#).is_err());
        assert!(serde_json::from_str::<ObjectRef>(r#"{"key":"/a","size":1}"#).is_err());
        assert!(
            serde_json::from_str::<ObjectRef>(r#"{"key":"a","size":9223372036854775808}"#).is_err()
        );
    }
}
