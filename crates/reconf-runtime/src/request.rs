//! Requests and results of the manager's operations.

use reconf_core::{
    AuthorityId, BundleId, CapabilityScope, ContextId, Delegation, DelegationReceipt, LinkBoundary,
    OwnerCapability, OwnerLabel, OwnershipReceipt, SessionId, Violation,
};
use serde::{Deserialize, Serialize};

/// A delegation request. Context, boundary and scope are optional and default to the
/// `from` authority's context, the bundle's boundary and the `bundle:<id>` fragment.
///
/// ```
/// use reconf_core::{AuthorityId, BundleId, SessionId};
/// use reconf_runtime::DelegationRequest;
/// let req = DelegationRequest::new(
///     SessionId::from_u128(1),
///     AuthorityId::from_label("a"),
///     AuthorityId::from_label("b"),
///     BundleId::new("device_migration").unwrap(),
/// );
/// assert!(req.scope.is_none());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DelegationRequest {
    /// The session.
    pub session: SessionId,
    /// Its active holder.
    pub from: AuthorityId,
    /// The receiver.
    pub to: AuthorityId,
    /// The registered bundle the delegation goes through.
    pub bundle: BundleId,
    /// Delegation context (default: derived from `from`).
    pub context: Option<ContextId>,
    /// Link boundary (default: derived from the bundle).
    pub boundary: Option<LinkBoundary>,
    /// Scope moved (default: `bundle:<id>`).
    pub scope: Option<CapabilityScope>,
}

impl DelegationRequest {
    /// A request with every default.
    pub fn new(session: SessionId, from: AuthorityId, to: AuthorityId, bundle: BundleId) -> Self {
        Self { session, from, to, bundle, context: None, boundary: None, scope: None }
    }

    /// Sets the context.
    pub fn with_context(mut self, context: ContextId) -> Self {
        self.context = Some(context);
        self
    }

    /// Sets the link boundary.
    pub fn with_boundary(mut self, boundary: LinkBoundary) -> Self {
        self.boundary = Some(boundary);
        self
    }

    /// Sets the scope.
    pub fn with_scope(mut self, scope: CapabilityScope) -> Self {
        self.scope = Some(scope);
        self
    }

    /// The scope this request moves.
    pub fn effective_scope(&self) -> CapabilityScope {
        self.scope.clone().unwrap_or_else(|| CapabilityScope::for_bundle(&self.bundle))
    }

    pub(crate) fn to_core(&self, at_ms: u64) -> Delegation {
        Delegation {
            session: self.session,
            from: self.from,
            to: self.to,
            bundle: self.bundle.clone(),
            context: self.context,
            boundary: self.boundary.clone(),
            scope: self.scope.clone(),
            at_ms,
        }
    }
}

/// The coherence check actually run for the delegated session after it was applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CheckedCoherence {
    /// The session's record and the footprints it names agree.
    Coherent,
    /// They do not (the change is durable and the violation was reported).
    Violated(Violation),
}

/// What a delegation moved and what was checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DelegationWitness {
    /// The context used.
    pub context: ContextId,
    /// The session.
    pub session: SessionId,
    /// Previous holder.
    pub from: AuthorityId,
    /// New holder.
    pub to: AuthorityId,
    /// Bundle.
    pub bundle: BundleId,
    /// The boundary crossed.
    pub boundary: LinkBoundary,
    /// The scope moved.
    pub scope: CapabilityScope,
    /// The fragments moved (the scope's fragments; `*` for the whole session).
    pub moved_fragments: Vec<String>,
    /// The coherence check that was actually run.
    pub coherence: CheckedCoherence,
    /// Journal sequence of the delegation fact.
    pub sequence: u64,
}

/// A persisted delegation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DelegationOutcome {
    /// The core's receipt.
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
