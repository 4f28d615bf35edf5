//! `verify=true`: before a register is written, every object it lists must exist in
//! storaged with the size the request says.

use futures_util::StreamExt;
use manifest_codec::{ObjectKey, ObjectRef};

use super::{Catalog, CatalogError};
use crate::store::StoreError;

/// How many objects are checked at once.
const CONCURRENCY: usize = 16;

/// At most this many offenders are reported (the count says how many there were).
pub const MAX_OFFENDERS: usize = 100;

/// What is wrong with one listed object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    /// storaged has no object under the key.
    Missing,
    /// storaged's object has another size.
    SizeMismatch,
    /// catalogd's storaged credential may not read the key (its scopes do not cover it),
    /// so the object cannot be checked.
    Unreadable,
}

impl Problem {
    /// As the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::SizeMismatch => "size_mismatch",
            Self::Unreadable => "unreadable",
        }
    }
}

/// One object of a register that storaged does not hold as described.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offender {
    /// The object's key.
    pub key: ObjectKey,
    /// What is wrong.
    pub problem: Problem,
    /// The size the request gave.
    pub expected: i64,
    /// The size storaged has (`None` when missing or unreadable).
    pub actual: Option<u64>,
}

impl Catalog {
    /// Checks that storaged holds every object of `objects` with its size. Nothing is
    /// written either way. A key catalogd's credential may not read is an offender (the
    /// request names an object the catalog cannot check); a failure to ask storaged is
    /// [`CatalogError::Verify`].
    pub async fn verify(&self, objects: &[ObjectRef]) -> Result<(), CatalogError> {
        let store = &self.store;
        let mut checks = futures_util::stream::iter(objects)
            .map(|o| async move { (o, store.object_size(&o.key).await) })
            .buffered(CONCURRENCY);
        let mut offenders = Vec::new();
        let mut count = 0;
        while let Some((object, size)) = checks.next().await {
            let expected = object.size.get();
            let (problem, size) = match size {
                Err(StoreError::Forbidden(_)) => (Problem::Unreadable, None),
                Err(e) => return Err(CatalogError::Verify(e)),
                Ok(None) => (Problem::Missing, None),
                Ok(Some(s)) if i64::try_from(s).ok() != Some(expected) => {
                    (Problem::SizeMismatch, Some(s))
                }
                Ok(Some(_)) => continue,
            };
            count += 1;
            if offenders.len() < MAX_OFFENDERS {
                offenders.push(Offender {
                    key: object.key.clone(),
                    problem,
                    expected,
                    actual: size,
                });
            }
        }
        if count == 0 {
            Ok(())
        } else {
            Err(CatalogError::ObjectsInvalid { offenders, count })
        }
    }
}
