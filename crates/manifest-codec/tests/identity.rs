//! Dataset identity (docs/contracts.md §1): reference vectors and properties of the derivation.

use std::collections::HashMap;

use manifest_codec::{dataset_id, DatasetName, DATASET_NAMESPACE};
use proptest::prelude::*;
use proptest::strategy::ValueTree;

#[test]
fn reference_vectors_from_python_uuid5() {
    assert_eq!(
        DATASET_NAMESPACE.to_string(),
        "a8f3c1d2-4e5b-5a6c-9d8e-7f0a1b2c3d4e"
    );
    for (name, expected) in [
        ("orders", "1f2906ae-f562-564c-aa86-f487c2afa750"),
        ("sales.orders_2024", "c9b2103c-6ed4-5bd7-b380-c14a74b3d011"),
        ("a", "e407b3cd-f733-5b16-8857-e7238483c721"),
    ] {
        let id = dataset_id(&DatasetName::parse(name).unwrap());
        assert_eq!(id.to_string(), expected, "{name}");
        assert_eq!(id.get_version_num(), 5);
    }
}

fn name_strategy() -> impl Strategy<Value = String> {
    "[a-z0-9][a-z0-9_-]{0,20}(\\.[a-z0-9][a-z0-9_-]{0,20}){0,3}"
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn derivation_is_deterministic(name in name_strategy()) {
        let parsed = DatasetName::parse(&name).unwrap();
        let again = DatasetName::parse(&name).unwrap();
        prop_assert_eq!(dataset_id(&parsed), dataset_id(&again));
        prop_assert_eq!(dataset_id(&parsed).get_version_num(), 5);
    }

    #[test]
    fn generated_names_always_parse(name in name_strategy()) {
        let parsed = DatasetName::parse(&name).unwrap();
        prop_assert_eq!(parsed.as_str(), name.as_str());
    }

    #[test]
    fn parse_never_panics_and_never_normalises(input in "\\PC{0,40}") {
        if let Ok(name) = DatasetName::parse(&input) {
            prop_assert_eq!(name.as_str(), input.as_str());
        }
    }
}

#[test]
fn distinct_names_give_distinct_ids_over_a_large_sample() {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = name_strategy();
    let mut seen: HashMap<uuid::Uuid, String> = HashMap::new();
    for _ in 0..100_000 {
        let name = strategy.new_tree(&mut runner).unwrap().current();
        let id = dataset_id(&DatasetName::parse(&name).unwrap());
        if let Some(previous) = seen.insert(id, name.clone()) {
            assert_eq!(previous, name, "two names share id {id}");
        }
    }
    assert!(seen.len() > 90_000, "sample too small: {}", seen.len());
}
