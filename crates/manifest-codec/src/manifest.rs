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
    /// Size in bytes, `0..=i64::MAX`.
    #[serde(deserialize_with = "non_negative")]
    pub size: i64,
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

fn non_negative<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    let value = i64::deserialize(deserializer)?;
    if value < 0 {
        return Err(serde::de::Error::custom(format!(
            "invalid value {value}: must not be negative"
        )));
    }
    Ok(value)
}

fn non_negative_opt<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
    match Option::<i64>::deserialize(deserializer)? {
        Some(value) if value < 0 => Err(serde::de::Error::custom(format!(
            "invalid value {value}: must not be negative"
        ))),
        other => Ok(other),
    }
}

/// The storaged key of `name`'s manifest: `_catalog/manifests/<name>.parquet`.
pub fn manifest_key(name: &DatasetName) -> ObjectKey {
    ObjectKey::parse(&format!("{MANIFEST_PREFIX}{name}{MANIFEST_SUFFIX}"))
        .expect("a dataset name always forms a valid key")
}

/// The prefix under which every manifest is stored.
pub const MANIFEST_PREFIX: &str = "_catalog/manifests/";

/// The suffix of every manifest key.
pub const MANIFEST_SUFFIX: &str = ".parquet";

/// The dataset name a manifest key belongs to, or `None` if the key is not a manifest key.
pub fn name_from_manifest_key(key: &str) -> Option<DatasetName> {
    let name = key
        .strip_prefix(MANIFEST_PREFIX)?
        .strip_suffix(MANIFEST_SUFFIX)?;
    DatasetName::parse(name).ok()
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
    fn manifest_key_round_trips_the_name() {
        let name = DatasetName::parse("sales.orders_2024").unwrap();
        let key = manifest_key(&name);
        assert_eq!(key.as_str(), "_catalog/manifests/sales.orders_2024.parquet");
        assert!(key.is_catalog_reserved());
        assert_eq!(name_from_manifest_key(key.as_str()), Some(name));
        assert_eq!(
            name_from_manifest_key("_catalog/manifests/Bad.parquet"),
            None
        );
        assert_eq!(name_from_manifest_key("data/a.parquet"), None);
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
        assert_eq!(ok.size, 0);
        let err = serde_json::from_str::<ObjectRef>(r#"{"key":"a/b","size":-1}"#).unwrap_err();
        assert!(err.to_string().contains("must not be negative"), "{err}");
        assert!(serde_json::from_str::<ObjectRef>(r#"{"key":"a","size":1,"x":1}"#).is_err());
        assert!(serde_json::from_str::<ObjectRef>(r#"{"key":"/a","size":1}"#).is_err());
        assert!(
            serde_json::from_str::<ObjectRef>(r#"{"key":"a","size":9223372036854775808}"#).is_err()
        );
    }
}
