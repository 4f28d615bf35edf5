//! `verify=true`: before a register is written, every object it lists must exist in
//! storaged with the size the request says.

use futures_util::StreamExt;
use manifest_codec::{ObjectKey, ObjectRef};

use super::{Catalog, CatalogError};

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
}

impl Problem {
    /// As the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::SizeMismatch => "size_mismatch",
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
    /// The size storaged has (`None` when missing).
    pub actual: Option<u64>,
}

impl Catalog {
    /// Checks that storaged holds every object of `objects` with its size. Nothing is
    /// written either way; a failure to ask storaged is [`CatalogError::Verify`].
    pub async fn verify(&self, objects: &[ObjectRef]) -> Result<(), CatalogError> {
        let store = &self.store;
        let mut checks = futures_util::stream::iter(objects)
            .map(|o| async move { (o, store.object_size(&o.key).await) })
            .buffered(CONCURRENCY);
        let mut offenders = Vec::new();
        let mut count = 0;
        while let Some((object, size)) = checks.next().await {
            let size = size.map_err(CatalogError::Verify)?;
            let expected = object.size.get();
            let problem = match size {
                None => Problem::Missing,
                Some(s) if i64::try_from(s).ok() != Some(expected) => Problem::SizeMismatch,
                Some(_) => continue,
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
