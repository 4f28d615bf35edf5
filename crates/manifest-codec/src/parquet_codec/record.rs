//! The record columns of format 2: `deleted_at`, `purged_at` and `changes`, after the
//! manifest's own columns.

use std::sync::Arc;

use arrow_array::{
    Array, ArrayRef, BooleanArray, Int64Array, ListArray, RecordBatch, StringArray, StructArray,
    TimestampMicrosecondArray,
};
use arrow_buffer::OffsetBuffer;
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
        Field::new(
            "changes",
            DataType::List(Arc::new(Field::new(
                "item",
                DataType::Struct(change_fields()),
                false,
            ))),
            false,
        ),
    ]
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
    let all: Vec<&Change> = records.iter().flat_map(|r| r.changes.iter()).collect();
    let items = StructArray::new(change_fields(), change_columns(&all), None);
    let changes = ListArray::new(
        Arc::new(Field::new("item", DataType::Struct(change_fields()), false)),
        OffsetBuffer::from_lengths(records.iter().map(|r| r.changes.len())),
        Arc::new(items),
        None,
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

    /// How many changes the columns hold.
    pub(crate) fn len(&self) -> usize {
        self.seqs.len()
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
    changes: &'a ListArray,
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
        let items = self.changes.value(row);
        let items = items
            .as_any()
            .downcast_ref::<StructArray>()
            .ok_or_else(|| invalid("changes", "list items are not structs"))?;
        if items.null_count() > 0 {
            return Err(DecodeError::Null { column: "changes" });
        }
        let columns = ChangeColumns::of(|name| items.column_by_name(name))?;
        let changes = (0..columns.len())
            .map(|i| columns.change(i))
            .collect::<Result<Vec<_>, _>>()?;
        if changes.windows(2).any(|w| w[0].seq >= w[1].seq) {
            return Err(invalid(
                "changes.seq",
                "changes are not in increasing order",
            ));
        }
        Ok(changes)
    }
}
