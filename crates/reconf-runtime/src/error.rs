//! The manager's typed errors, by cause: the same cause is the same variant whichever
//! operation met it (an unregistered bundle is [`ManagerError::Rejected`] with
//! [`CommandError::UnknownBundle`] from `open_session`, `delegate_session` or
//! `attach_owner` alike).

use reconf_core::{CommandError, LiveError, OwnershipError, SessionId, Violation};
use reconf_effects::capability::CapabilityError;
use reconf_effects::time::TimeError;
use reconf_effects::JournalError;

/// Everything a manager operation can fail with. Whatever the error, no acknowledged change
/// is undone, and nothing is applied that is not durable.
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
    /// The core's rules refused the command (unknown bundle or session, not the active
    /// holder, self-delegation, a boundary that disagrees, …); nothing was written.
    #[error(transparent)]
    Rejected(#[from] CommandError),
    /// The live-ownership rules refused (no live owner, already live, a stale or foreign
    /// capability, scope widening, a handoff already staged).
    #[error(transparent)]
    Ownership(#[from] OwnershipError),
    /// A live handoff named a different session than its owner handle.
    #[error("live handoff session mismatch: handle is for {handle}, request for {request}")]
    SessionMismatch {
        /// The handle's session.
        handle: SessionId,
        /// The request's session.
        request: SessionId,
    },
    /// The clock could not be read to timestamp a delegation; nothing was written.
    #[error("clock: {0}")]
    Clock(#[source] TimeError),
    /// The journal did not confirm the commit of the caller's change, which is not
    /// acknowledged.
    ///
    /// Before answering, the manager read the journal back: a write whose outcome was
    /// unknown ([`JournalError::outcome_unknown`]: `Ambiguous`, or `StorageFull` when the
    /// disk filled up) and that did land is answered `Ok`, not with
    /// this error, and anything else the journal holds is applied. So after this error the
    /// manager's state is the journal's, as far as it could be read; the change is in it
    /// only if the journal holds it and could not be read back (then a later read of the
    /// journal, or the next command's catch-up, shows it). Nothing is ever applied that is
    /// not durable.
    #[error("persist {operation}: {source}")]
    Persist {
        /// What was being persisted.
        operation: &'static str,
        /// The journal's error.
        source: JournalError,
    },
    /// The coherence check of a session failed after its change became durable (the change
    /// stays; the violation is reported).
    #[error("coherence violation: {0}")]
    CoherenceViolation(#[source] Violation),
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
    /// A networked journal could not be connected to (unreachable, newer format, corrupt).
    #[error("connecting to the journal at {target}: {source}")]
    ConnectJournal {
        /// Where (endpoints and key prefix).
        target: String,
        /// Why.
        source: JournalError,
    },
    /// The journal could not be read.
    #[error("journal read: {0}")]
    Journal(#[source] JournalError),
    /// An upgrade was refused before it started, or its plan was invalid (then its staged
    /// and failed phases are journaled).
    #[cfg(feature = "upgrade-executor")]
    #[cfg_attr(docsrs, doc(cfg(feature = "upgrade-executor")))]
    #[error("upgrade: {0}")]
    Upgrade(#[source] reconf_core::upgrade::UpgradeError),
    /// An upgrade ran and did not commit.
    #[cfg(feature = "upgrade-executor")]
    #[cfg_attr(docsrs, doc(cfg(feature = "upgrade-executor")))]
    #[error("upgrade {upgrade} of bundle {bundle} ended {}: {reason}", phase.map_or_else(|| "in flight".to_owned(), |p| p.to_string()))]
    UpgradeNotCommitted {
        /// The bundle.
        bundle: reconf_core::BundleId,
        /// The upgrade.
        upgrade: reconf_core::upgrade::UpgradeId,
        /// The final phase (`None`: still in flight).
        phase: Option<reconf_core::upgrade::UpgradePhase>,
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

impl From<LiveError> for ManagerError {
    fn from(e: LiveError) -> Self {
        match e {
            LiveError::SessionMismatch { handle, request } => {
                ManagerError::SessionMismatch { handle, request }
            }
            LiveError::Ownership(e) => ManagerError::Ownership(e),
            // The delegation underneath failed: the previous owner stays.
            LiveError::Rejected(e) => ManagerError::Reconfiguration(Box::new(ManagerError::Rejected(e))),
        }
    }
}

impl ManagerError {
    /// A stable snake_case name of what went wrong, by cause: the core's and the ownership
    /// rules' kinds pass through (`"not_active_holder"`, `"stale_owner"`, …), and a failed
    /// live handoff reports the kind of the failure underneath. Used as the `error` label
    /// of the rejection metrics; it never includes ids.
    pub fn kind(&self) -> &'static str {
        match self {
            ManagerError::MissingCapability { .. } => "missing_capability",
            ManagerError::Rejected(e) => e.kind(),
            ManagerError::Ownership(e) => e.kind(),
            ManagerError::SessionMismatch { .. } => "session_mismatch",
            ManagerError::Clock(_) => "clock",
            ManagerError::Persist { .. } => "persist",
            ManagerError::CoherenceViolation(_) => "coherence_violation",
            ManagerError::Reconfiguration(inner) => inner.kind(),
            ManagerError::RollbackFailed { .. } => "rollback_failed",
            ManagerError::Recovery(_) => "recovery",
            ManagerError::OpenJournal { .. } | ManagerError::ConnectJournal { .. } => "open_journal",
            ManagerError::Journal(_) => "journal",
            #[cfg(feature = "upgrade-executor")]
            ManagerError::Upgrade(_) => "upgrade",
            #[cfg(feature = "upgrade-executor")]
            ManagerError::UpgradeNotCommitted { .. } => "upgrade_not_committed",
            ManagerError::Manifests(_) => "manifests",
            ManagerError::Stopped => "stopped",
            ManagerError::Config(_) => "config",
        }
    }
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
