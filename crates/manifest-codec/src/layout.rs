//! The catalog's area in storaged (docs/contracts.md, "Manifest storage"): every key
//! catalogd writes is spelled here and nowhere else.
//!
//! ```text
//! _catalog/                         reserved: never user data (a register pointing here is a 400)
//!   manifests/<name>.parquet        the head record of each dataset (docs/adr/0012)
//!   versions/<name>/<version>.parquet  earlier versions' records, version zero-padded to 20 digits
//!   checkpoint/catalog.parquet      every head record with its ETag (a cache, docs/adr/0008)
//!   checkpoint/changes.parquet      the change feed up to the checkpoint (a cache)
//! ```

use crate::{DatasetName, ObjectKey};

/// Prefix reserved for the catalog's own state; never user data.
pub const CATALOG_PREFIX: &str = "_catalog/";

/// The prefix under which every manifest is stored.
pub const MANIFEST_PREFIX: &str = "_catalog/manifests/";

/// The suffix of every manifest key.
pub const MANIFEST_SUFFIX: &str = ".parquet";

/// The key of the catalog's checkpoint.
pub const CHECKPOINT_KEY: &str = "_catalog/checkpoint/catalog.parquet";

/// The key of the change feed's checkpoint.
pub const CHANGES_CHECKPOINT_KEY: &str = "_catalog/checkpoint/changes.parquet";

/// The prefix under which earlier versions are kept.
pub const VERSIONS_PREFIX: &str = "_catalog/versions/";

/// The prefix of `name`'s kept versions: `_catalog/versions/<name>/`.
pub fn versions_prefix(name: &DatasetName) -> String {
    format!("{VERSIONS_PREFIX}{name}/")
}

/// The key of version `version` of `name`: `_catalog/versions/<name>/<version:020>.parquet`,
/// so that listing order is version order.
pub fn version_key(name: &DatasetName, version: i64) -> ObjectKey {
    ObjectKey::parse(&format!(
        "{}{version:020}{MANIFEST_SUFFIX}",
        versions_prefix(name)
    ))
    .expect("a dataset name and a number always form a valid key")
}

/// The version a key under `versions_prefix(name)` holds, or `None` if it is not one.
pub fn version_from_key(name: &DatasetName, key: &str) -> Option<i64> {
    let digits = key
        .strip_prefix(&versions_prefix(name))?
        .strip_suffix(MANIFEST_SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().filter(|v| *v >= 1)
}

/// The storaged key of `name`'s manifest: `_catalog/manifests/<name>.parquet`.
pub fn manifest_key(name: &DatasetName) -> ObjectKey {
    ObjectKey::parse(&format!("{MANIFEST_PREFIX}{name}{MANIFEST_SUFFIX}"))
        .expect("a dataset name always forms a valid key")
}

/// The dataset name a manifest key belongs to, or `None` if the key is not a manifest key.
pub fn name_from_manifest_key(key: &str) -> Option<DatasetName> {
    let name = key
        .strip_prefix(MANIFEST_PREFIX)?
        .strip_suffix(MANIFEST_SUFFIX)?;
    DatasetName::parse(name).ok()
}

/// Whether `key` is `_catalog` or lies under the reserved `_catalog/` prefix.
pub fn is_catalog_reserved(key: &str) -> bool {
    key.split('/').next() == Some(CATALOG_PREFIX.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn version_keys_sort_in_version_order_and_round_trip() {
        let name = DatasetName::parse("orders").unwrap();
        let k9 = version_key(&name, 9);
        let k10 = version_key(&name, 10);
        assert_eq!(
            k9.as_str(),
            "_catalog/versions/orders/00000000000000000009.parquet"
        );
        assert!(k9.as_str() < k10.as_str());
        assert_eq!(version_from_key(&name, k10.as_str()), Some(10));
        assert_eq!(
            version_from_key(&name, version_key(&name, i64::MAX).as_str()),
            Some(i64::MAX)
        );
        let other = DatasetName::parse("orders.x").unwrap();
        assert_eq!(version_from_key(&other, k9.as_str()), None);
        assert_eq!(
            version_from_key(&name, "_catalog/versions/orders/9.parquet"),
            None
        );
        assert!(k9.is_catalog_reserved());
        assert_eq!(name_from_manifest_key(k9.as_str()), None);
    }

    #[test]
    fn the_checkpoint_is_a_reserved_key_and_no_manifest() {
        let key = ObjectKey::parse(CHECKPOINT_KEY).unwrap();
        assert!(key.is_catalog_reserved());
        assert_eq!(name_from_manifest_key(CHECKPOINT_KEY), None);
        assert!(is_catalog_reserved("_catalog"));
        assert!(!is_catalog_reserved("_catalogue/x"));
    }
}
