//! The three shipped protocols, as the registry sees them.
// Test helpers fail loudly by design.
#![cfg(feature = "shipped-protocols")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;

use reconf_manifests::generated::{DEVICE_ENROLLMENT, EPOCH_ROTATION, GUARDIAN_MEMBERSHIP};
use reconf_manifests::{registered_bundles, registered_manifests};

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn each_bundle_exports_and_imports_its_two_interfaces() {
    let bundles = registered_bundles().unwrap();
    let expected = [
        (
            "device_migration",
            "reconf.device_enrollment",
            ["device_migration.request", "device_migration.accept"],
        ),
        (
            "epoch_rotation_transfer",
            "reconf.epoch_rotation",
            ["epoch_rotation.proposal", "epoch_rotation.confirmation"],
        ),
        (
            "guardian_handoff",
            "reconf.guardian_membership",
            ["guardian_handoff.proposal", "guardian_handoff.vote"],
        ),
    ];
    assert_eq!(bundles.len(), expected.len());
    for (bundle, (id, protocol, interfaces)) in bundles.iter().zip(expected) {
        assert_eq!(bundle.id.as_str(), id);
        assert_eq!(bundle.protocol_ids, [protocol]);
        assert_eq!(bundle.exports, set(&interfaces));
        assert_eq!(bundle.imports, set(&interfaces));
        // Each bundle is self-sufficient, so it links with any other.
        assert!(bundle.compatible_with(bundle).is_ok());
    }
}

#[test]
fn the_registry_holds_exactly_the_generated_statics_in_id_order() {
    let manifests = registered_manifests().unwrap();
    assert_eq!(manifests, [&DEVICE_ENROLLMENT, &EPOCH_ROTATION, &GUARDIAN_MEMBERSHIP]);
    for m in manifests {
        assert_eq!(m.roles.len(), 2, "{}", m.protocol_id);
        assert!(m.links.iter().all(|l| m.roles.contains(&l.role)), "{}", m.protocol_id);
    }
}
