//! The example's manifest is found through the registry, next to the three shipped ones.
// Test helpers fail loudly by design.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;

use reconf_manifests::spec::parse;
use reconf_manifests::{registered_bundles, registered_manifests};

/// The shipped protocols and this crate's, in the registry's (protocol id) order.
const EXPECTED_IDS: [&str; 4] = [
    "example.firmware_update",
    "reconf.device_enrollment",
    "reconf.epoch_rotation",
    "reconf.guardian_membership",
];

#[test]
fn the_anchored_manifest_is_registered_next_to_the_shipped_ones() {
    // The anchor the crate docs describe: a binary in which nothing refers to the crate does
    // not link it, and then only the three shipped manifests are registered.
    custom_protocol::link();
    let manifests = registered_manifests().unwrap();
    let ids: Vec<_> = manifests.iter().map(|m| m.protocol_id).collect();
    assert_eq!(ids, EXPECTED_IDS);
    assert!(std::ptr::eq(manifests[0], &custom_protocol::FIRMWARE_UPDATE));
}

#[test]
fn its_bundle_is_grouped_with_the_shipped_bundles() {
    custom_protocol::link();
    let bundles = registered_bundles().unwrap();
    let ids: Vec<_> = bundles.iter().map(|b| b.id.as_str()).collect();
    assert_eq!(ids, ["device_migration", "epoch_rotation_transfer", "firmware_update", "guardian_handoff"]);
    let firmware = &bundles[2];
    let interfaces: BTreeSet<String> =
        ["firmware_update.ack", "firmware_update.offer"].map(String::from).into_iter().collect();
    assert_eq!(firmware.protocol_ids, ["example.firmware_update"]);
    assert_eq!(firmware.exports, interfaces);
    assert_eq!(firmware.imports, interfaces);
}

#[test]
fn the_hand_written_manifest_matches_its_spec() {
    let spec = parse("protocols/firmware_update.choreo", include_str!("../protocols/firmware_update.choreo"))
        .unwrap_or_else(|e| panic!("{e}"));
    let manifest = &custom_protocol::FIRMWARE_UPDATE;
    assert_eq!(spec.id, manifest.protocol_id);
    assert_eq!(spec.namespace, manifest.namespace);
    assert_eq!(spec.roles, manifest.roles);
    let links = spec.merged_links();
    assert_eq!(links.len(), manifest.links.len());
    for (from_spec, written) in links.iter().zip(manifest.links) {
        assert_eq!(from_spec.role, written.role);
        assert_eq!(from_spec.bundle, written.bundle_id);
        assert!(from_spec.exports.iter().eq(written.exports.iter().copied().collect::<BTreeSet<_>>()));
        assert!(from_spec.imports.iter().eq(written.imports.iter().copied().collect::<BTreeSet<_>>()));
    }
}
