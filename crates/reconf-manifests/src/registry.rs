//! The registry: every linked manifest, checked and sorted, and grouped into bundles.
//!
//! The pure functions take any slice, so they can be tested with duplicates; the
//! `registered_*` functions apply them to [`COMPOSITION_MANIFESTS`].

use std::collections::BTreeMap;

use reconf_core::{BundleId, ComposedBundle, IdParseError};

use crate::{CompositionManifest, COMPOSITION_MANIFESTS};

/// Why the linked manifests cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// Two manifests declare the same protocol id, e.g. two crates claiming one protocol, or
    /// two versions of one crate in the same binary.
    #[error(
        "protocol id `{protocol_id}` is registered twice (namespaces `{first_namespace}` and \
         `{second_namespace}`); protocol ids must be unique across all linked crates"
    )]
    DuplicateProtocol {
        /// The protocol id.
        protocol_id: String,
        /// The namespace of one of the manifests.
        first_namespace: String,
        /// The namespace of the other.
        second_namespace: String,
    },
    /// A link spec whose bundle id is not a valid [`BundleId`].
    #[error("protocol `{protocol_id}` links role `{role}` to invalid bundle id {bundle_id:?}: {source}")]
    InvalidBundleId {
        /// The protocol id.
        protocol_id: String,
        /// The role of the link spec.
        role: String,
        /// The rejected bundle id.
        bundle_id: String,
        /// Why it was rejected.
        #[source]
        source: IdParseError,
    },
}

/// `manifests` sorted by protocol id, or an error naming a duplicated id.
///
/// Link order is not stable across builds, so anything derived from the registry starts
/// from this order.
///
/// ```
/// use reconf_manifests::{sorted_manifests, CompositionManifest, RegistryError};
/// const fn manifest(protocol_id: &'static str) -> CompositionManifest {
///     CompositionManifest { protocol_id, namespace: "n", roles: &[], links: &[] }
/// }
/// let input = [manifest("b"), manifest("a")];
/// let sorted = sorted_manifests(&input)?;
/// assert_eq!(sorted.iter().map(|m| m.protocol_id).collect::<Vec<_>>(), ["a", "b"]);
/// let dup = sorted_manifests(&[manifest("a"), manifest("b"), manifest("a")]).unwrap_err();
/// assert!(matches!(dup, RegistryError::DuplicateProtocol { protocol_id, .. } if protocol_id == "a"));
/// # Ok::<(), RegistryError>(())
/// ```
pub fn sorted_manifests(
    manifests: &[CompositionManifest],
) -> Result<Vec<&CompositionManifest>, RegistryError> {
    let mut sorted: Vec<&CompositionManifest> = manifests.iter().collect();
    // Namespace as a tie-break only makes the duplicate error's wording deterministic.
    sorted.sort_by_key(|m| (m.protocol_id, m.namespace));
    if let Some(pair) = sorted.windows(2).find(|w| w[0].protocol_id == w[1].protocol_id) {
        return Err(RegistryError::DuplicateProtocol {
            protocol_id: pair[0].protocol_id.to_owned(),
            first_namespace: pair[0].namespace.to_owned(),
            second_namespace: pair[1].namespace.to_owned(),
        });
    }
    Ok(sorted)
}

/// The link specs of `manifests` grouped into one [`ComposedBundle`] per bundle id, sorted by
/// bundle id: each bundle's protocol ids in protocol-id order without duplicates, its
/// exports and imports the union of its link specs'. Rejects duplicate protocol ids and
/// invalid bundle ids.
///
/// ```
/// use reconf_manifests::{group_bundles, CompositionManifest, LinkSpec};
/// static MANIFESTS: [CompositionManifest; 2] = [
///     CompositionManifest {
///         protocol_id: "p2",
///         namespace: "n",
///         roles: &["A", "B"],
///         links: &[
///             LinkSpec { role: "A", bundle_id: "x", exports: &["x.a"], imports: &["x.b"] },
///             LinkSpec { role: "B", bundle_id: "x", exports: &["x.b"], imports: &["x.a"] },
///         ],
///     },
///     CompositionManifest {
///         protocol_id: "p1",
///         namespace: "n",
///         roles: &["A"],
///         links: &[LinkSpec { role: "A", bundle_id: "x", exports: &["x.c"], imports: &[] }],
///     },
/// ];
/// let bundles = group_bundles(&MANIFESTS)?;
/// assert_eq!(bundles.len(), 1);
/// assert_eq!(bundles[0].id.as_str(), "x");
/// assert_eq!(bundles[0].protocol_ids, ["p1", "p2"]);
/// assert_eq!(bundles[0].exports.iter().collect::<Vec<_>>(), ["x.a", "x.b", "x.c"]);
/// # Ok::<(), reconf_manifests::RegistryError>(())
/// ```
pub fn group_bundles(manifests: &[CompositionManifest]) -> Result<Vec<ComposedBundle>, RegistryError> {
    let mut bundles: BTreeMap<&str, ComposedBundle> = BTreeMap::new();
    for manifest in sorted_manifests(manifests)? {
        for link in manifest.links {
            let bundle = match bundles.get_mut(link.bundle_id) {
                Some(bundle) => bundle,
                None => {
                    let id =
                        BundleId::new(link.bundle_id).map_err(|source| RegistryError::InvalidBundleId {
                            protocol_id: manifest.protocol_id.to_owned(),
                            role: link.role.to_owned(),
                            bundle_id: link.bundle_id.to_owned(),
                            source,
                        })?;
                    bundles.entry(link.bundle_id).or_insert(ComposedBundle::new(id))
                }
            };
            if !bundle.protocol_ids.iter().any(|p| p == manifest.protocol_id) {
                bundle.protocol_ids.push(manifest.protocol_id.to_owned());
            }
            bundle.exports.extend(link.exports.iter().map(|e| (*e).to_owned()));
            bundle.imports.extend(link.imports.iter().map(|i| (*i).to_owned()));
        }
    }
    Ok(bundles.into_values().collect())
}

/// Every manifest linked into this binary, sorted by protocol id.
///
/// ```
/// let manifests = reconf_manifests::registered_manifests()?;
/// assert!(manifests.windows(2).all(|w| w[0].protocol_id < w[1].protocol_id));
/// # Ok::<(), reconf_manifests::RegistryError>(())
/// ```
pub fn registered_manifests() -> Result<Vec<&'static CompositionManifest>, RegistryError> {
    sorted_manifests(&COMPOSITION_MANIFESTS)
}

/// The bundles of every manifest linked into this binary, as [`group_bundles`] makes them:
/// what a manager registers when it opens.
///
/// ```
/// let bundles = reconf_manifests::registered_bundles()?;
/// assert!(bundles.windows(2).all(|w| w[0].id < w[1].id));
/// # Ok::<(), reconf_manifests::RegistryError>(())
/// ```
pub fn registered_bundles() -> Result<Vec<ComposedBundle>, RegistryError> {
    group_bundles(&COMPOSITION_MANIFESTS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LinkSpec;

    const fn manifest(protocol_id: &'static str, links: &'static [LinkSpec]) -> CompositionManifest {
        CompositionManifest { protocol_id, namespace: "test", roles: &["A", "B"], links }
    }

    const fn link(
        bundle_id: &'static str,
        exports: &'static [&'static str],
        imports: &'static [&'static str],
    ) -> LinkSpec {
        LinkSpec { role: "A", bundle_id, exports, imports }
    }

    #[test]
    fn manifests_come_out_sorted_whatever_the_input_order() {
        let input = [manifest("c", &[]), manifest("a", &[]), manifest("b", &[])];
        let ids: Vec<_> = sorted_manifests(&input).unwrap().iter().map(|m| m.protocol_id).collect();
        assert_eq!(ids, ["a", "b", "c"]);
    }

    #[test]
    fn a_duplicate_id_is_named_with_both_namespaces() {
        let mut other = manifest("p", &[]);
        other.namespace = "other";
        let err = sorted_manifests(&[manifest("p", &[]), manifest("q", &[]), other]).unwrap_err();
        assert_eq!(
            err,
            RegistryError::DuplicateProtocol {
                protocol_id: "p".into(),
                first_namespace: "other".into(),
                second_namespace: "test".into(),
            }
        );
        assert!(err.to_string().contains("`p` is registered twice"));
        assert!(group_bundles(&[manifest("p", &[]), manifest("p", &[])]).is_err());
    }

    #[test]
    fn bundles_are_grouped_sorted_deduplicated_and_unioned() {
        static LINKS_Q: [LinkSpec; 2] = [link("y", &["y.1"], &[]), link("x", &["x.1"], &["x.2"])];
        static LINKS_P: [LinkSpec; 2] = [link("x", &["x.2"], &["x.1"]), link("x", &["x.3"], &[])];
        let bundles = group_bundles(&[manifest("q", &LINKS_Q), manifest("p", &LINKS_P)]).unwrap();
        let ids: Vec<_> = bundles.iter().map(|b| b.id.as_str()).collect();
        assert_eq!(ids, ["x", "y"]);
        let x = &bundles[0];
        assert_eq!(x.protocol_ids, ["p", "q"]);
        assert_eq!(x.exports.iter().collect::<Vec<_>>(), ["x.1", "x.2", "x.3"]);
        assert_eq!(x.imports.iter().collect::<Vec<_>>(), ["x.1", "x.2"]);
        assert_eq!(bundles[1].protocol_ids, ["q"]);
        assert!(x.sessions.is_empty());
    }

    #[test]
    fn an_invalid_bundle_id_is_rejected_with_its_protocol_and_role() {
        static BAD: [LinkSpec; 1] = [link(" ", &[], &[])];
        let err = group_bundles(&[manifest("p", &BAD)]).unwrap_err();
        assert!(
            matches!(&err, RegistryError::InvalidBundleId { protocol_id, role, .. } if protocol_id == "p" && role == "A")
        );
    }

    #[cfg(feature = "shipped-protocols")]
    #[test]
    fn the_shipped_manifests_are_registered() {
        let ids: Vec<_> = registered_manifests().unwrap().iter().map(|m| m.protocol_id).collect();
        assert_eq!(ids, ["reconf.device_enrollment", "reconf.epoch_rotation", "reconf.guardian_membership"]);
        let bundles: Vec<_> = registered_bundles().unwrap().into_iter().map(|b| b.id.to_string()).collect();
        assert_eq!(bundles, ["device_migration", "epoch_rotation_transfer", "guardian_handoff"]);
    }
}
