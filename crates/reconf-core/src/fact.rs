//! Facts: the one enum of state changes, as written to the journal.

use serde::{Deserialize, Serialize};

use crate::bundle::ComposedBundle;
use crate::ids::{AuthorityId, BundleId, ContextId, SessionId};
use crate::scope::CapabilityScope;
use crate::upgrade::UpgradeFact;

/// The fact schema version this build writes. Readers accept this version and older ones.
pub const FACT_SCHEMA_VERSION: u16 = 1;

/// One durable state change. Replaying the same facts in order rebuilds the same state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fact {
    /// The schema version the fact was written with.
    pub schema_version: u16,
    /// What changed.
    pub change: Change,
}

impl Fact {
    /// Wraps a change in the current schema version.
    pub fn new(change: Change) -> Self {
        Self { schema_version: FACT_SCHEMA_VERSION, change }
    }

    /// The session this fact touches, if any.
    pub fn session(&self) -> Option<SessionId> {
        match &self.change {
            Change::SessionOpened { session, .. } | Change::SessionClosed { session, .. } => Some(*session),
            Change::SessionDelegated(d) => Some(d.session),
            Change::BundleRegistered { .. } | Change::BundlesLinked { .. } | Change::Upgrade(_) => None,
        }
    }

    /// A stable dotted name for logs and dumps.
    pub fn kind(&self) -> &'static str {
        match &self.change {
            Change::BundleRegistered { .. } => "bundle.registered",
            Change::BundlesLinked { .. } => "bundles.linked",
            Change::SessionOpened { .. } => "session.opened",
            Change::SessionDelegated(_) => "session.delegated",
            Change::SessionClosed { .. } => "session.closed",
            Change::Upgrade(u) => u.kind(),
        }
    }
}

/// The kinds of state change. New kinds are only ever appended, so older journals decode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Change {
    /// A bundle was registered.
    BundleRegistered {
        /// The bundle as registered.
        bundle: ComposedBundle,
    },
    /// Two bundles were linked into a new one.
    BundlesLinked {
        /// The left input.
        left: BundleId,
        /// The right input.
        right: BundleId,
        /// The bundle the link produced.
        linked: ComposedBundle,
    },
    /// An authority opened a native session.
    SessionOpened {
        /// The session.
        session: SessionId,
        /// Its first holder.
        authority: AuthorityId,
        /// The bundle it runs, if named.
        bundle: Option<BundleId>,
        /// The owner generation it starts at (continues a closed session's count).
        generation: u64,
    },
    /// The active holder delegated a session to another authority.
    SessionDelegated(DelegationFact),
    /// The active holder closed a session.
    SessionClosed {
        /// The session.
        session: SessionId,
        /// The holder that closed it.
        authority: AuthorityId,
    },
    /// A staged-upgrade event: membership seeded, a phase recorded, a snapshot restored.
    Upgrade(UpgradeFact),
}

/// The content of a delegation fact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DelegationFact {
    /// The session.
    pub session: SessionId,
    /// The active holder giving it away.
    pub from: AuthorityId,
    /// The authority receiving it.
    pub to: AuthorityId,
    /// The bundle the delegation goes through.
    pub bundle: BundleId,
    /// The delegation context.
    pub context: ContextId,
    /// The scope moved.
    pub scope: CapabilityScope,
    /// The session's owner generation after the delegation.
    pub generation: u64,
    /// Physical time of the delegation, milliseconds since the Unix epoch (passed in: the
    /// core reads no clock).
    pub at_ms: u64,
}
