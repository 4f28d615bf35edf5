//! The catalog's area in storaged (docs/contracts.md, "Manifest storage"): every key
//! catalogd writes is spelled here and nowhere else.
//!
//! ```text
//! _catalog/                         reserved: never user data (a register pointing here is a 400)
//!   manifests/<name>.parquet        one manifest per dataset
//!   checkpoint/catalog.parquet      every manifest with its ETag (a cache, docs/adr/0008)
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
    fn the_checkpoint_is_a_reserved_key_and_no_manifest() {
        let key = ObjectKey::parse(CHECKPOINT_KEY).unwrap();
        assert!(key.is_catalog_reserved());
        assert_eq!(name_from_manifest_key(CHECKPOINT_KEY), None);
        assert!(is_catalog_reserved("_catalog"));
        assert!(!is_catalog_reserved("_catalogue/x"));
    }
}
