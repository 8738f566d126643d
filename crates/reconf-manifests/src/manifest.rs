//! The manifest types: plain `&'static` data, so a manifest can be a `static` in the
//! distributed slice.

use serde::Serialize;

/// What one protocol contributes to composition: its id and namespace, its roles, and the
/// bundles its roles link into.
///
/// Every field is `&'static` so a manifest can be built in a `static`. Downstream crates
/// construct it with a struct literal (see the [crate docs](crate#registering-a-manifest-from-another-crate)).
///
/// ```
/// use reconf_manifests::{CompositionManifest, LinkSpec};
/// static HELLO: CompositionManifest = CompositionManifest {
///     protocol_id: "demo.hello",
///     namespace: "demo",
///     roles: &["Client", "Server"],
///     links: &[LinkSpec {
///         role: "Client",
///         bundle_id: "greeting",
///         exports: &["greeting.hello"],
///         imports: &[],
///     }],
/// };
/// assert_eq!(HELLO.bundle_ids().collect::<Vec<_>>(), ["greeting"]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct CompositionManifest {
    /// The protocol id; unique across every linked crate.
    pub protocol_id: &'static str,
    /// The namespace the protocol belongs to.
    pub namespace: &'static str,
    /// The protocol's roles.
    pub roles: &'static [&'static str],
    /// How the protocol's roles link into bundles.
    pub links: &'static [LinkSpec],
}

/// One role's part in one bundle: the interfaces it makes the bundle export and import.
///
/// ```
/// use reconf_manifests::LinkSpec;
/// const SPEC: LinkSpec = LinkSpec {
///     role: "Proposer",
///     bundle_id: "guardian_handoff",
///     exports: &["guardian_handoff.proposal"],
///     imports: &["guardian_handoff.vote"],
/// };
/// assert_eq!(SPEC.bundle_id, "guardian_handoff");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct LinkSpec {
    /// The role.
    pub role: &'static str,
    /// The bundle the role links into.
    pub bundle_id: &'static str,
    /// Interfaces the bundle provides through this role.
    pub exports: &'static [&'static str],
    /// Interfaces the bundle needs through this role.
    pub imports: &'static [&'static str],
}

impl CompositionManifest {
    /// The bundle ids of this manifest's link specs, in order, without duplicates.
    pub fn bundle_ids(&self) -> impl Iterator<Item = &'static str> {
        let links = self.links;
        links
            .iter()
            .enumerate()
            .filter(move |(i, l)| !links.iter().take(*i).any(|e| e.bundle_id == l.bundle_id))
            .map(|(_, l)| l.bundle_id)
    }
}
