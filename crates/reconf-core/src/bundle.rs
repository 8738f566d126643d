//! Composed bundles and the interface-compatibility rule used when linking them.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::ids::{BundleId, SessionId};

/// The schema version of [`ComposedBundle`] written by this build.
pub const BUNDLE_SCHEMA_VERSION: u16 = 1;

/// A linkable unit: protocols, the interfaces it exports and imports, and the sessions it
/// spans.
///
/// ```
/// use reconf_core::{BundleId, ComposedBundle};
/// let a = ComposedBundle::new(BundleId::new("a").unwrap())
///     .with_protocol("proto.a")
///     .with_export("x")
///     .with_import("y");
/// let b = ComposedBundle::new(BundleId::new("b").unwrap())
///     .with_export("y")
///     .with_import("x");
/// assert!(a.compatible_with(&b).is_ok());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComposedBundle {
    /// The bundle's id, unique within a state.
    pub id: BundleId,
    /// Protocol ids in link order, without duplicates.
    pub protocol_ids: Vec<String>,
    /// Interfaces this bundle provides.
    pub exports: BTreeSet<String>,
    /// Interfaces this bundle needs.
    pub imports: BTreeSet<String>,
    /// Sessions that belong to this bundle.
    pub sessions: BTreeSet<SessionId>,
    /// Schema version of this record.
    pub schema_version: u16,
}

/// The interfaces a side imports, does not export itself, and the other side does not
/// export either.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incompatibility {
    /// Unmet imports of the left bundle.
    pub left_missing: Vec<String>,
    /// Unmet imports of the right bundle.
    pub right_missing: Vec<String>,
}

impl ComposedBundle {
    /// An empty bundle with the given id.
    pub fn new(id: BundleId) -> Self {
        Self {
            id,
            protocol_ids: Vec::new(),
            exports: BTreeSet::new(),
            imports: BTreeSet::new(),
            sessions: BTreeSet::new(),
            schema_version: BUNDLE_SCHEMA_VERSION,
        }
    }

    /// Adds a protocol id (ignored if already present, so link order is kept).
    pub fn with_protocol(mut self, protocol: impl Into<String>) -> Self {
        let p = protocol.into();
        if !self.protocol_ids.contains(&p) {
            self.protocol_ids.push(p);
        }
        self
    }

    /// Adds an exported interface.
    pub fn with_export(mut self, interface: impl Into<String>) -> Self {
        self.exports.insert(interface.into());
        self
    }

    /// Adds an imported interface.
    pub fn with_import(mut self, interface: impl Into<String>) -> Self {
        self.imports.insert(interface.into());
        self
    }

    /// Adds a session to the bundle's footprint.
    pub fn with_session(mut self, session: SessionId) -> Self {
        self.sessions.insert(session);
        self
    }

    fn unmet_imports(&self, other: &Self) -> Vec<String> {
        self.imports
            .iter()
            .filter(|i| !self.exports.contains(*i) && !other.exports.contains(*i))
            .cloned()
            .collect()
    }

    /// Each side's imports that it does not export itself must be exported by the other.
    pub fn compatible_with(&self, other: &Self) -> Result<(), Incompatibility> {
        let left_missing = self.unmet_imports(other);
        let right_missing = other.unmet_imports(self);
        if left_missing.is_empty() && right_missing.is_empty() {
            Ok(())
        } else {
            Err(Incompatibility { left_missing, right_missing })
        }
    }

    /// Sessions both bundles claim, in order.
    pub fn overlapping_sessions(&self, other: &Self) -> Vec<SessionId> {
        self.sessions.intersection(&other.sessions).copied().collect()
    }

    /// The bundle made by linking `self` and `other` under `id`: protocol ids of both in
    /// order without duplicates, exports, imports and sessions unioned. Call only after
    /// [`compatible_with`](Self::compatible_with) and an overlap check.
    pub fn linked(&self, other: &Self, id: BundleId) -> Self {
        let mut out = Self::new(id);
        for p in self.protocol_ids.iter().chain(&other.protocol_ids) {
            if !out.protocol_ids.contains(p) {
                out.protocol_ids.push(p.clone());
            }
        }
        out.exports = self.exports.union(&other.exports).cloned().collect();
        out.imports = self.imports.union(&other.imports).cloned().collect();
        out.sessions = self.sessions.union(&other.sessions).copied().collect();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(id: &str) -> ComposedBundle {
        ComposedBundle::new(BundleId::new(id).unwrap())
    }

    #[test]
    fn self_exported_imports_need_nothing_from_the_other_side() {
        let a = b("a").with_export("x").with_import("x");
        assert!(a.compatible_with(&b("b")).is_ok());
    }

    #[test]
    fn unmet_imports_are_listed_per_side() {
        let a = b("a").with_import("x").with_import("z");
        let c = b("c").with_export("x").with_import("q");
        let err = a.compatible_with(&c).unwrap_err();
        assert_eq!(err.left_missing, vec!["z".to_owned()]);
        assert_eq!(err.right_missing, vec!["q".to_owned()]);
    }

    #[test]
    fn linking_deduplicates_protocols_in_order() {
        let a = b("a").with_protocol("p1").with_protocol("p2");
        let c = b("c").with_protocol("p2").with_protocol("p3");
        let l = a.linked(&c, BundleId::new("l").unwrap());
        assert_eq!(l.protocol_ids, vec!["p1", "p2", "p3"]);
    }
}
