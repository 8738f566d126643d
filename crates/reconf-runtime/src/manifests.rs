//! The manifest bundles linked into this binary.

use reconf_core::ComposedBundle;

use crate::error::ManagerError;

/// The bundles of every manifest in the link-time registry, grouped by bundle id and
/// sorted, or the registry's error (a duplicate protocol id, an invalid bundle id).
///
/// ```
/// // The manifests generated from the shipped `.choreo` specs are linked in.
/// let bundles = reconf_runtime::linked_bundles().unwrap();
/// assert!(bundles.iter().any(|b| b.id.as_str() == "device_migration"));
/// ```
pub fn linked_bundles() -> Result<Vec<ComposedBundle>, ManagerError> {
    reconf_manifests::registered_bundles().map_err(ManagerError::Manifests)
}
