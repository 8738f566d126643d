//! Capability scopes and link boundaries: what part of a session a delegation moves.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::ids::BundleId;

/// What an owner capability covers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CapabilityScope {
    /// Every fragment of the session.
    WholeSession,
    /// Only the named fragments (such as `bundle:<id>`). Shared, because the same scope
    /// travels in the command, the fact, the journal copy, the boundary and the witness.
    Fragments(Arc<BTreeSet<String>>),
}

/// How a bundle's own fragment starts: `bundle:<id>` (see
/// [`CapabilityScope::bundle_fragment`]).
pub const BUNDLE_FRAGMENT_PREFIX: &str = "bundle:";

/// The fragment key that stands for a whole-session scope in fragment registries.
pub const WHOLE_SESSION_FRAGMENT: &str = "*";

impl CapabilityScope {
    /// The fragment keys this scope is tracked under: its fragments, or
    /// [`WHOLE_SESSION_FRAGMENT`] alone for the whole session.
    ///
    /// ```
    /// use reconf_core::CapabilityScope;
    /// assert_eq!(CapabilityScope::WholeSession.fragment_keys(), ["*"]);
    /// assert_eq!(CapabilityScope::fragments(["b", "a"]).fragment_keys(), ["a", "b"]);
    /// ```
    pub fn fragment_keys(&self) -> Vec<String> {
        match self {
            Self::WholeSession => vec![WHOLE_SESSION_FRAGMENT.to_owned()],
            Self::Fragments(f) => f.iter().cloned().collect(),
        }
    }

    /// The default scope of a delegation through `bundle`: the single fragment
    /// `bundle:<id>`.
    ///
    /// ```
    /// use reconf_core::{BundleId, CapabilityScope};
    /// let scope = CapabilityScope::for_bundle(&BundleId::new("epoch_rotation").unwrap());
    /// assert!(scope.allows("bundle:epoch_rotation"));
    /// assert!(!scope.allows("bundle:other"));
    /// ```
    pub fn for_bundle(bundle: &BundleId) -> Self {
        Self::Fragments(Arc::new(BTreeSet::from([Self::bundle_fragment(bundle)])))
    }

    /// The fragment key of a bundle.
    pub fn bundle_fragment(bundle: &BundleId) -> String {
        format!("{BUNDLE_FRAGMENT_PREFIX}{bundle}")
    }

    /// A scope of the given fragments.
    pub fn fragments<I, S>(items: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::Fragments(Arc::new(items.into_iter().map(Into::into).collect()))
    }

    /// Whether a fragment key is inside this scope.
    pub fn allows(&self, fragment: &str) -> bool {
        match self {
            Self::WholeSession => true,
            Self::Fragments(f) => f.contains(fragment),
        }
    }

    /// Whether every fragment of `other` is inside this scope.
    pub fn covers(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::WholeSession, _) => true,
            (Self::Fragments(_), Self::WholeSession) => false,
            (Self::Fragments(mine), Self::Fragments(theirs)) => theirs.is_subset(mine),
        }
    }
}

impl fmt::Display for CapabilityScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::WholeSession => f.write_str("whole session"),
            Self::Fragments(frags) => {
                f.write_str("fragments [")?;
                for (i, x) in frags.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    f.write_str(x)?;
                }
                f.write_str("]")
            }
        }
    }
}

/// The routing boundary a delegation crosses: the bundle it goes through and the scope it
/// carries. It must agree with the delegation's own bundle and scope.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LinkBoundary {
    /// The bundle the boundary belongs to.
    pub bundle: BundleId,
    /// The scope routed across it.
    pub scope: CapabilityScope,
}

impl LinkBoundary {
    /// The boundary derived from a bundle: that bundle with its default scope.
    pub fn for_bundle(bundle: &BundleId) -> Self {
        Self { bundle: bundle.clone(), scope: CapabilityScope::for_bundle(bundle) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_session_covers_everything_fragments_only_subsets() {
        let ab = CapabilityScope::fragments(["a", "b"]);
        let a = CapabilityScope::fragments(["a"]);
        assert!(CapabilityScope::WholeSession.covers(&ab));
        assert!(ab.covers(&a));
        assert!(!a.covers(&ab));
        assert!(!ab.covers(&CapabilityScope::WholeSession));
    }
}
