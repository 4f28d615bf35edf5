//! Dataset identity (docs/contracts.md §1).

use uuid::Uuid;

use crate::DatasetName;

/// The UUIDv5 namespace of every dataset id.
///
/// Every id ever issued depends on these bytes, so this is a constant and never
/// configuration: the same name yields the same id on any machine, and a catalog rebuilt
/// after losing its disk converges to the same identities.
pub const DATASET_NAMESPACE: Uuid = uuid::uuid!("a8f3c1d2-4e5b-5a6c-9d8e-7f0a1b2c3d4e");

/// The dataset id of `name`: UUIDv5 of the name's UTF-8 bytes in [`DATASET_NAMESPACE`].
pub fn dataset_id(name: &DatasetName) -> Uuid {
    Uuid::new_v5(&DATASET_NAMESPACE, name.as_str().as_bytes())
}
