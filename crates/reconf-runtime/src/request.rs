//! Results of the manager's operations. The requests are the core's own types
//! ([`DelegationRequest`] is [`reconf_core::Delegation`]): the runtime adds only the time.

use reconf_core::{
    CapabilityScope, DelegationReceipt, LinkBoundary, OwnerCapability, OwnerLabel, OwnershipReceipt,
    SessionId,
};
use serde::{Deserialize, Serialize};

/// A delegation request: the core's [`reconf_core::Delegation`]. Context, boundary and
/// scope are optional and default to the `from` authority's context, the bundle's boundary
/// and the `bundle:<id>` fragment; the manager stamps the time when it checks it.
///
/// ```
/// use reconf_runtime::{AuthorityId, BundleId, DelegationRequest, SessionId};
/// let req = DelegationRequest::new(
///     SessionId::from_u128(1),
///     AuthorityId::from_label("a"),
///     AuthorityId::from_label("b"),
///     BundleId::new("device_migration").unwrap(),
/// );
/// assert!(req.scope.is_none());
/// ```
pub type DelegationRequest = reconf_core::Delegation;

/// What a delegation moved, beyond the receipt: the boundary crossed and the fragments.
/// An `Ok` outcome also means the session's coherence was checked after the change was
/// applied (a violation is answered with [`ManagerError::CoherenceViolation`]).
///
/// [`ManagerError::CoherenceViolation`]: crate::ManagerError::CoherenceViolation
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DelegationWitness {
    /// The boundary crossed.
    pub boundary: LinkBoundary,
    /// The scope moved.
    pub scope: CapabilityScope,
}

impl DelegationWitness {
    /// The fragment keys moved ([`CapabilityScope::fragment_keys`]: the scope's fragments,
    /// `*` for the whole session). Derived from the scope when asked, not built for every
    /// delegation: two small allocations per answer were a fifth of the manager's
    /// throughput on the memory journal (the allocator returning and faulting back in the
    /// heap's top around every batch).
    ///
    /// ```
    /// use reconf_runtime::{BundleId, CapabilityScope, DelegationWitness, LinkBoundary};
    /// let bundle = BundleId::new("x").unwrap();
    /// let scope = CapabilityScope::for_bundle(&bundle);
    /// let witness = DelegationWitness { boundary: LinkBoundary { bundle, scope: scope.clone() }, scope };
    /// assert_eq!(witness.moved_fragments(), ["bundle:x"]);
    /// ```
    pub fn moved_fragments(&self) -> Vec<String> {
        self.scope.fragment_keys()
    }
}

/// A persisted delegation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DelegationOutcome {
    /// The core's receipt: session, from, to, bundle, context, sequence, generation, time
    /// and both authorities' footprint summaries before and after.
    pub receipt: DelegationReceipt,
    /// What moved and what was checked.
    pub witness: DelegationWitness,
}

/// The live owner of a session, as handed to the embedding runtime.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnedSession {
    /// Who owns it.
    pub owner: OwnerLabel,
    /// What it presents.
    pub capability: OwnerCapability,
    /// The boundary its traffic crosses.
    pub boundary: LinkBoundary,
}

impl OwnedSession {
    pub(crate) fn of(live: &reconf_core::LiveOwner) -> Self {
        Self {
            owner: live.owner.clone(),
            capability: live.capability.clone(),
            boundary: live.boundary.clone(),
        }
    }

    /// The session.
    pub fn session(&self) -> SessionId {
        self.capability.session
    }
}

/// A committed live handoff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandoffOutcome {
    /// The delegation underneath.
    pub delegation: DelegationOutcome,
    /// The owner change.
    pub ownership: OwnershipReceipt,
    /// The new owner's handle (the old one is now stale).
    pub owned: OwnedSession,
}
