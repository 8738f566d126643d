//! Commands: requests to change the state, checked before anything is written.

use serde::{Deserialize, Serialize};

use crate::bundle::ComposedBundle;
use crate::ids::{AuthorityId, BundleId, ContextId, SessionId};
use crate::scope::{CapabilityScope, LinkBoundary};

/// A request to change the state. [`State::check`](crate::State::check) turns a command
/// into the [`Fact`](crate::Fact) it would write, or a typed error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Command {
    /// Register a new bundle.
    RegisterBundle(ComposedBundle),
    /// Link two registered bundles into a new one.
    LinkBundles {
        /// Left input.
        left: BundleId,
        /// Right input.
        right: BundleId,
        /// Id of the bundle to create.
        linked: BundleId,
    },
    /// Open a native session.
    OpenSession {
        /// The session.
        session: SessionId,
        /// Its holder.
        authority: AuthorityId,
        /// The bundle it runs, if any (must be registered).
        bundle: Option<BundleId>,
    },
    /// Delegate a session from its active holder (at the time passed to the check).
    Delegate(Delegation),
    /// Close a session held by `authority`.
    CloseSession {
        /// The session.
        session: SessionId,
        /// Its active holder.
        authority: AuthorityId,
    },
}

/// A delegation request: the same type from the runtime's public API down to the core's
/// check. It carries no time: the check is given the time (the core reads no clock), and
/// the fact it yields records it.
///
/// ```
/// use reconf_core::{AuthorityId, BundleId, Delegation, SessionId};
/// let d = Delegation::new(
///     SessionId::from_u128(1),
///     AuthorityId::from_label("a"),
///     AuthorityId::from_label("b"),
///     BundleId::new("device_migration").unwrap(),
/// );
/// assert!(d.context.is_none() && d.boundary.is_none() && d.scope.is_none());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delegation {
    /// The session.
    pub session: SessionId,
    /// Its active holder.
    pub from: AuthorityId,
    /// The receiver.
    pub to: AuthorityId,
    /// The registered bundle the delegation goes through.
    pub bundle: BundleId,
    /// Context; defaults to [`AuthorityId::default_context`] of `from`.
    pub context: Option<ContextId>,
    /// Link boundary; defaults to [`LinkBoundary::for_bundle`].
    pub boundary: Option<LinkBoundary>,
    /// Scope moved; defaults to [`CapabilityScope::for_bundle`].
    pub scope: Option<CapabilityScope>,
}

impl Delegation {
    /// A delegation with default context, boundary and scope.
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

    /// The scope this delegation moves (given or default).
    pub fn effective_scope(&self) -> CapabilityScope {
        self.scope.clone().unwrap_or_else(|| CapabilityScope::for_bundle(&self.bundle))
    }
}
