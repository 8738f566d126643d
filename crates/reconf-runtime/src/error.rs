//! The manager's typed errors: each names the operation and what failed.

use reconf_core::{BundleId, CapabilityScope, CommandError, OwnershipError, SessionId, Violation};
use reconf_effects::capability::CapabilityError;
use reconf_effects::time::TimeError;
use reconf_effects::JournalError;

/// Why a link boundary was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BoundaryError {
    /// The boundary names another bundle than the delegation.
    #[error("boundary names bundle {boundary}, the delegation goes through {bundle}")]
    BundleMismatch {
        /// The delegation's bundle.
        bundle: BundleId,
        /// The boundary's bundle.
        boundary: BundleId,
    },
    /// The boundary carries another scope than the delegation.
    #[error("boundary carries scope {boundary}, the delegation moves {scope}")]
    ScopeMismatch {
        /// The delegation's scope.
        scope: CapabilityScope,
        /// The boundary's scope.
        boundary: CapabilityScope,
    },
}

/// Everything a manager operation can fail with. Whatever the error, no acknowledged change
/// is undone and a failed batch leaves the state untouched.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ManagerError {
    /// A required runtime surface is not admitted; nothing was attempted.
    #[error("{operation} requires capability surfaces {required:?}: {source}")]
    MissingCapability {
        /// The operation refused.
        operation: &'static str,
        /// Every surface it requires.
        required: Vec<String>,
        /// The admission error (names the first missing surface).
        source: CapabilityError,
    },
    /// Registering a bundle failed.
    #[error("register bundle: {0}")]
    RegisterBundle(#[source] CommandError),
    /// Linking bundles failed.
    #[error("link bundles: {0}")]
    LinkBundles(#[source] CommandError),
    /// Opening a session failed.
    #[error("open session: {0}")]
    OpenSession(#[source] CommandError),
    /// Closing a session failed.
    #[error("close session: {0}")]
    CloseSession(#[source] CommandError),
    /// The clock could not timestamp the delegation.
    #[error("delegation timestamp: {0}")]
    DelegationTimestamp(#[source] TimeError),
    /// The delegation names a bundle that is not registered.
    #[error("bundle {bundle} is not registered")]
    BundleNotRegistered {
        /// The bundle.
        bundle: BundleId,
    },
    /// The link boundary disagrees with the delegation.
    #[error("invalid link boundary: {0}")]
    InvalidLinkBoundary(#[source] BoundaryError),
    /// The core refused the delegation.
    #[error("delegate session: {0}")]
    DelegateSession(#[source] CommandError),
    /// The journal refused or failed the write; nothing of the batch was applied.
    #[error("persist {operation}: {source}")]
    Persist {
        /// What was being persisted.
        operation: &'static str,
        /// The journal's error.
        source: JournalError,
    },
    /// A coherence check failed after a durable change (the change stays; the violation is
    /// reported).
    #[error("coherence violation: {0}")]
    CoherenceViolation(#[source] Violation),
    /// A live handoff named a different session than its owner handle.
    #[error("live handoff session mismatch: handle is for {handle}, request for {request}")]
    SessionMismatch {
        /// The handle's session.
        handle: SessionId,
        /// The request's session.
        request: SessionId,
    },
    /// The live owner could not be staged, attached or changed.
    #[error("owner transfer: {0}")]
    OwnerTransfer(#[source] OwnershipError),
    /// The delegation behind a live handoff failed; the previous owner is unchanged.
    #[error("reconfiguration failed, previous owner kept: {0}")]
    Reconfiguration(#[source] Box<ManagerError>),
    /// Undoing a staged handoff failed.
    #[error("rollback failed for session {session}: {source}")]
    RollbackFailed {
        /// The session.
        session: SessionId,
        /// Why.
        source: OwnershipError,
    },
    /// Rebuilding the state from the journal failed.
    #[error("recovery: {0}")]
    Recovery(#[source] RecoveryError),
    /// The journal could not be opened (missing, locked, corrupt, newer format).
    #[error("opening the journal at {}: {source}", path.display())]
    OpenJournal {
        /// Where.
        path: std::path::PathBuf,
        /// Why.
        source: JournalError,
    },
    /// The journal could not be read.
    #[error("journal read: {0}")]
    Journal(#[source] JournalError),
    /// An upgrade was refused before it started, or its plan was invalid (then its staged
    /// and failed phases are journaled).
    #[cfg(feature = "upgrade-executor")]
    #[error("upgrade: {0}")]
    Upgrade(#[source] reconf_core::upgrade::UpgradeError),
    /// An upgrade ran and did not commit.
    #[cfg(feature = "upgrade-executor")]
    #[error("upgrade {upgrade} of bundle {bundle} ended {phase}: {reason}")]
    UpgradeNotCommitted {
        /// The bundle.
        bundle: BundleId,
        /// The upgrade id.
        upgrade: String,
        /// The final phase.
        phase: String,
        /// The recorded reason.
        reason: String,
    },
    /// The link-time manifest registry is inconsistent.
    #[error("manifest registry: {0}")]
    Manifests(#[source] reconf_manifests::RegistryError),
    /// The manager's actor has stopped.
    #[error("the reconfiguration manager has stopped")]
    Stopped,
    /// The builder was misconfigured.
    #[error("invalid manager configuration: {0}")]
    Config(String),
}

/// Why recovery could not rebuild the state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecoveryError {
    /// The newest snapshot does not equal the state replayed from the journal at its
    /// sequence.
    #[error("snapshot at sequence {sequence} differs from the journal replayed to that point")]
    SnapshotMismatch {
        /// The snapshot's sequence.
        sequence: u64,
    },
    /// The snapshot's bytes do not decode into a state.
    #[error("snapshot at sequence {sequence} cannot be decoded: {reason}")]
    SnapshotUndecodable {
        /// The snapshot's sequence.
        sequence: u64,
        /// The decoder's message.
        reason: String,
    },
    /// Replay stopped before the journal's head.
    #[error("replay ended at sequence {ended} but the journal head is {head}")]
    ShortReplay {
        /// Last sequence replayed.
        ended: u64,
        /// The journal's head.
        head: u64,
    },
    /// The journal skipped a sequence while replaying.
    #[error("journal replay expected sequence {expected}, found {found}")]
    Gap {
        /// Expected.
        expected: u64,
        /// Found.
        found: u64,
    },
}
