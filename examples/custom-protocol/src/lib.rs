//! # custom-protocol
//!
//! An example of a crate outside `reconf-manifests` that declares its own protocol: it adds a
//! [`CompositionManifest`] to [`static@COMPOSITION_MANIFESTS`] through the same `linkme`
//! slice the generated manifests use, so the registry (and a runtime that registers its
//! bundles) sees it next to the shipped ones without any hand-written list.
//!
//! It only declares data; it must not do I/O or depend on the runtime. The manifest mirrors
//! `protocols/firmware_update.choreo`, which its tests check with the same spec parser.
//!
//! ```
//! custom_protocol::link();
//! let ids: Vec<_> = reconf_manifests::registered_manifests()?.iter().map(|m| m.protocol_id).collect();
//! assert!(ids.contains(&"example.firmware_update"));
//! # Ok::<(), reconf_manifests::RegistryError>(())
//! ```
#![forbid(unsafe_code)]

use reconf_manifests::linkme::distributed_slice;
use reconf_manifests::{CompositionManifest, LinkSpec, COMPOSITION_MANIFESTS};

/// The firmware update protocol: bundle `firmware_update`, exporting and importing
/// `firmware_update.offer` and `firmware_update.ack`.
///
/// ```
/// assert_eq!(custom_protocol::FIRMWARE_UPDATE.bundle_ids().collect::<Vec<_>>(), ["firmware_update"]);
/// ```
// No `#[allow(unsafe_code)]` is needed here, unlike in reconf-manifests: the lint does not
// look inside the expansion of a slice declared in another crate.
#[distributed_slice(COMPOSITION_MANIFESTS)]
#[linkme(crate = reconf_manifests::linkme)]
pub static FIRMWARE_UPDATE: CompositionManifest = CompositionManifest {
    protocol_id: "example.firmware_update",
    namespace: "example.devices",
    roles: &["Vendor", "Device"],
    links: &[
        LinkSpec {
            role: "Vendor",
            bundle_id: "firmware_update",
            exports: &["firmware_update.offer"],
            imports: &["firmware_update.ack"],
        },
        LinkSpec {
            role: "Device",
            bundle_id: "firmware_update",
            exports: &["firmware_update.ack"],
            imports: &["firmware_update.offer"],
        },
    ],
};

/// The link anchor: a binary or test that wants this crate's manifest calls it once, so the
/// crate is linked and the linker keeps [`FIRMWARE_UPDATE`]. A crate listed in `Cargo.toml`
/// but never referred to from code is not linked, and its manifests are silently absent.
///
/// ```
/// custom_protocol::link();
/// ```
pub fn link() {}
