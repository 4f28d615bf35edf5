//! The record columns of format 2: `deleted_at`, `purged_at` and `changes`, after the
//! manifest's own columns.
//!
//! `changes` is one JSON array per row (`[{"seq", "type", "version", "at",
//! "idempotency_key"?, "request_sha256"?, "existing"?}]`): a list of structs would cost seven
//! leaf columns, which doubled the time to encode a record (83 against 42 µs for 10
//! objects), and nothing queries these columns. The change feed's own file keeps them typed
//! (`change_columns`), where many rows share them.

use std::sync::Arc;

use arrow_array::{
    Array, ArrayRef, BooleanArray, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow_schema::{DataType, Field, Fields, TimeUnit};

use super::read::{column, invalid, required, timestamp_at};
use super::UTC;
use crate::error::{DecodeError, EncodeError};
use crate::record::{Change, ChangeKind, DatasetState, Record, RequestTag};
use crate::Timestamp;

fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into()))
}

pub(crate) fn change_fields() -> Fields {
    Fields::from(vec![
        Field::new("seq", DataType::Int64, false),
        Field::new("type", DataType::Utf8, false),
        Field::new("version", DataType::Int64, false),
        Field::new("at", timestamp_type(), false),
        Field::new("idempotency_key", DataType::Utf8, true),
        Field::new("request_sha256", DataType::Utf8, true),
        Field::new("existing", DataType::Boolean, true),
    ])
}

/// The columns a record adds to a manifest's.
pub(crate) fn record_fields() -> Vec<Field> {
    vec![
        Field::new("deleted_at", timestamp_type(), true),
        Field::new("purged_at", timestamp_type(), true),
        Field::new("changes", DataType::Utf8, false),
    ]
}

/// One change as a record's `changes` JSON holds it.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredChange<'a> {
    seq: u64,
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
    version: i64,
    at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none", borrow)]
    idempotency_key: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none", borrow)]
    request_sha256: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    existing: Option<bool>,
}

fn changes_json(changes: &[Change]) -> String {
    let stored: Vec<StoredChange<'_>> = changes
        .iter()
        .map(|c| StoredChange {
            seq: c.seq,
            kind: c.kind.as_str().into(),
            version: c.version,
            at: c.at,
            idempotency_key: c
                .request
                .as_ref()
                .map(|r| r.idempotency_key.as_str().into()),
            request_sha256: c.request.as_ref().map(|r| r.request_sha256.as_str().into()),
            existing: c.request.as_ref().map(|r| r.existing),
        })
        .collect();
    serde_json::to_string(&stored).unwrap_or_else(|_| "[]".to_owned())
}

fn changes_from_json(raw: &str) -> Result<Vec<Change>, DecodeError> {
    let stored: Vec<StoredChange<'_>> =
        serde_json::from_str(raw).map_err(|e| invalid("changes", e))?;
    let changes = stored
        .into_iter()
        .map(|c| {
            if i64::try_from(c.seq).is_err() {
                return Err(invalid("changes", format!("seq {} is above int64", c.seq)));
            }
            let kind = ChangeKind::parse(&c.kind)
                .ok_or_else(|| invalid("changes", format!("{:?} is not a change type", c.kind)))?;
            let request =
                match (c.idempotency_key, c.request_sha256, c.existing) {
                    (None, None, None) => None,
                    (Some(key), Some(sha), Some(existing)) => Some(RequestTag {
                        idempotency_key: key.into_owned(),
                        request_sha256: sha.into_owned(),
                        existing,
                    }),
                    _ => return Err(invalid(
                        "changes",
                        "idempotency_key, request_sha256 and existing are all set or all absent",
                    )),
                };
            Ok(Change {
                seq: c.seq,
                kind,
                version: c.version,
                at: c.at,
                request,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if changes.windows(2).any(|w| w[0].seq >= w[1].seq) {
        return Err(invalid("changes", "changes are not in increasing order"));
    }
    Ok(changes)
}

/// Checks what the format cannot store.
pub(crate) fn check_record(record: &Record) -> Result<(), EncodeError> {
    for change in &record.changes {
        if i64::try_from(change.seq).is_err() {
            return Err(EncodeError::OutOfRange {
                field: "changes.seq",
                value: i64::MAX,
                rule: "must fit in int64",
            });
        }
    }
    Ok(())
}

/// The record columns of `records`, in [`record_fields`] order.
pub(crate) fn record_columns(records: &[&Record]) -> Vec<ArrayRef> {
    let state_at = |pick: fn(&DatasetState) -> Option<Timestamp>| {
        Arc::new(
            TimestampMicrosecondArray::from(
                records
                    .iter()
                    .map(|r| pick(&r.state).map(Timestamp::as_micros))
                    .collect::<Vec<_>>(),
            )
            .with_timezone(UTC),
        ) as ArrayRef
    };
    let deleted = state_at(|s| match s {
        DatasetState::Deleted { at } => Some(*at),
        _ => None,
    });
    let purged = state_at(|s| match s {
        DatasetState::Purged { at } => Some(*at),
        _ => None,
    });
    let changes = StringArray::from(
        records
            .iter()
            .map(|r| changes_json(&r.changes))
            .collect::<Vec<_>>(),
    );
    vec![deleted, purged, Arc::new(changes)]
}

/// The columns of `changes`, in [`change_fields`] order.
pub(crate) fn change_columns(all: &[&Change]) -> Vec<ArrayRef> {
    let request = |pick: fn(&RequestTag) -> &str| {
        Arc::new(StringArray::from(
            all.iter()
                .map(|c| c.request.as_ref().map(pick))
                .collect::<Vec<_>>(),
        )) as ArrayRef
    };
    vec![
        Arc::new(Int64Array::from(
            all.iter()
                .map(|c| i64::try_from(c.seq).unwrap_or(i64::MAX))
                .collect::<Vec<_>>(),
        )) as ArrayRef,
        Arc::new(StringArray::from(
            all.iter().map(|c| c.kind.as_str()).collect::<Vec<_>>(),
        )),
        Arc::new(Int64Array::from(
            all.iter().map(|c| c.version).collect::<Vec<_>>(),
        )),
        Arc::new(
            TimestampMicrosecondArray::from(
                all.iter().map(|c| c.at.as_micros()).collect::<Vec<_>>(),
            )
            .with_timezone(UTC),
        ),
        request(|r| &r.idempotency_key),
        request(|r| &r.request_sha256),
        Arc::new(BooleanArray::from(
            all.iter()
                .map(|c| c.request.as_ref().map(|r| r.existing))
                .collect::<Vec<_>>(),
        )),
    ]
}

/// The columns of changes (a record's list items, or the change feed file's columns).
pub(crate) struct ChangeColumns<'a> {
    seqs: &'a Int64Array,
    kinds: &'a StringArray,
    versions: &'a Int64Array,
    ats: &'a TimestampMicrosecondArray,
    keys: &'a StringArray,
    hashes: &'a StringArray,
    existing: &'a BooleanArray,
}

impl<'a> ChangeColumns<'a> {
    /// The change columns `lookup` finds by field name.
    pub(crate) fn of(lookup: impl Fn(&str) -> Option<&'a ArrayRef>) -> Result<Self, DecodeError> {
        fn field<'b, T: Array + 'static>(
            array: Option<&'b ArrayRef>,
            name: &'static str,
            nullable: bool,
        ) -> Result<&'b T, DecodeError> {
            let array = array
                .and_then(|a| a.as_any().downcast_ref::<T>())
                .ok_or(DecodeError::MissingColumn { column: name })?;
            if !nullable && array.null_count() > 0 {
                return Err(DecodeError::Null { column: name });
            }
            Ok(array)
        }
        Ok(Self {
            seqs: field(lookup("seq"), "changes.seq", false)?,
            kinds: field(lookup("type"), "changes.type", false)?,
            versions: field(lookup("version"), "changes.version", false)?,
            ats: field(lookup("at"), "changes.at", false)?,
            keys: field(lookup("idempotency_key"), "changes.idempotency_key", true)?,
            hashes: field(lookup("request_sha256"), "changes.request_sha256", true)?,
            existing: field(lookup("existing"), "changes.existing", true)?,
        })
    }

    /// The change in row `i`.
    pub(crate) fn change(&self, i: usize) -> Result<Change, DecodeError> {
        let seq = u64::try_from(self.seqs.value(i))
            .map_err(|_| invalid("changes.seq", format!("{} is negative", self.seqs.value(i))))?;
        let kind = ChangeKind::parse(self.kinds.value(i)).ok_or_else(|| {
            invalid(
                "changes.type",
                format!("{:?} is not a change type", self.kinds.value(i)),
            )
        })?;
        let request = match (
            self.keys.is_null(i),
            self.hashes.is_null(i),
            self.existing.is_null(i),
        ) {
            (true, true, true) => None,
            (false, false, false) => Some(RequestTag {
                idempotency_key: self.keys.value(i).to_owned(),
                request_sha256: self.hashes.value(i).to_owned(),
                existing: self.existing.value(i),
            }),
            _ => {
                return Err(invalid(
                    "changes.idempotency_key",
                    "idempotency_key, request_sha256 and existing are all set or all null",
                ))
            }
        };
        Ok(Change {
            seq,
            kind,
            version: self.versions.value(i),
            at: timestamp_at(self.ats, i, "changes.at")?,
            request,
        })
    }
}

/// The record columns of one batch, validated in full once.
pub(crate) struct RecordColumns<'a> {
    deleted: &'a TimestampMicrosecondArray,
    purged: &'a TimestampMicrosecondArray,
    changes: &'a StringArray,
}

impl<'a> RecordColumns<'a> {
    pub(crate) fn of(batch: &'a RecordBatch) -> Result<Self, DecodeError> {
        Ok(Self {
            deleted: column(batch, "deleted_at")?,
            purged: column(batch, "purged_at")?,
            changes: column(batch, "changes")?,
        })
    }

    /// The state and changes in `row`.
    pub(crate) fn state_and_changes(
        &self,
        row: usize,
    ) -> Result<(DatasetState, Vec<Change>), DecodeError> {
        let at = |array: &TimestampMicrosecondArray, name| {
            if array.is_null(row) {
                Ok(None)
            } else {
                timestamp_at(array, row, name).map(Some)
            }
        };
        let state = match (
            at(self.deleted, "deleted_at")?,
            at(self.purged, "purged_at")?,
        ) {
            (None, None) => DatasetState::Live,
            (Some(at), None) => DatasetState::Deleted { at },
            (None, Some(at)) => DatasetState::Purged { at },
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "purged_at",
                    "a record is deleted or purged, not both",
                ))
            }
        };
        Ok((state, self.changes(row)?))
    }

    fn changes(&self, row: usize) -> Result<Vec<Change>, DecodeError> {
        required(self.changes, row, "changes")?;
        changes_from_json(self.changes.value(row))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_json_round_trips_and_bad_json_names_the_problem() {
        let at = Timestamp::from_micros(1_700_000_000_000_000).unwrap();
        let changes = vec![
            Change {
                seq: 5,
                kind: ChangeKind::Registered,
                version: 2,
                at,
                request: Some(RequestTag {
                    idempotency_key: "k \"quoted\"".into(),
                    request_sha256: "ab".into(),
                    existing: true,
                }),
            },
            Change {
                seq: 9,
                kind: ChangeKind::Deleted,
                version: 2,
                at,
                request: None,
            },
        ];
        assert_eq!(changes_from_json(&changes_json(&changes)).unwrap(), changes);
        assert_eq!(changes_from_json("[]").unwrap(), []);
        let t = "\"2023-11-14T22:13:20.000000Z\"";
        for (bad, says) in [
            ("", "EOF"),
            ("{}", "expected a sequence"),
            (
                &*format!(r#"[{{"seq":1,"type":"renamed","version":1,"at":{t}}}]"#),
                "not a change type",
            ),
            (
                &*format!(r#"[{{"seq":1,"type":"deleted","version":1,"at":{t},"existing":true}}]"#),
                "all set or all absent",
            ),
            (
                &*format!(
                    r#"[{{"seq":2,"type":"deleted","version":1,"at":{t}}},{{"seq":2,"type":"deleted","version":1,"at":{t}}}]"#
                ),
                "increasing",
            ),
            (
                &*format!(
                    r#"[{{"seq":9223372036854775808,"type":"deleted","version":1,"at":{t}}}]"#
                ),
                "int64",
            ),
            (
                &*format!(r#"[{{"seq":1,"type":"deleted","version":1,"at":{t},"x":1}}]"#),
                "unknown field",
            ),
        ] {
            let e = changes_from_json(bad).unwrap_err().to_string();
            assert!(e.contains("changes") && e.contains(says), "{bad}: {e}");
        }
        // An escaped type string is still read.
        let escaped = format!(r#"[{{"seq":1,"type":"\u0064eleted","version":1,"at":{t}}}]"#);
        assert_eq!(
            changes_from_json(&escaped).unwrap()[0].kind,
            ChangeKind::Deleted
        );
    }
}
