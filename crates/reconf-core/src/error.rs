//! Typed rejections of commands.

use crate::ids::{AuthorityId, BundleId, SessionId};
use crate::scope::CapabilityScope;

/// Why a command was rejected. Nothing was written and the state is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError {
    /// Registering an id that is already taken.
    #[error("bundle {bundle} is already registered")]
    BundleAlreadyRegistered {
        /// The id.
        bundle: BundleId,
    },
    /// A command named a bundle that is not registered.
    #[error("bundle {bundle} is not registered")]
    UnknownBundle {
        /// The id.
        bundle: BundleId,
    },
    /// Linking into an id that is already taken.
    #[error("cannot link into {linked}: a bundle with that id is already registered")]
    LinkedIdTaken {
        /// The id asked for.
        linked: BundleId,
    },
    /// Linking a bundle with itself.
    #[error("cannot link bundle {bundle} with itself")]
    SelfLink {
        /// The id.
        bundle: BundleId,
    },
    /// Imports left unmet by both sides.
    #[error(
        "bundles {left} and {right} are incompatible: {left} needs {left_missing:?}, {right} needs {right_missing:?}"
    )]
    IncompatibleInterfaces {
        /// Left bundle.
        left: BundleId,
        /// Right bundle.
        right: BundleId,
        /// Left's unmet imports.
        left_missing: Vec<String>,
        /// Right's unmet imports.
        right_missing: Vec<String>,
    },
    /// Both bundles claim the same sessions.
    #[error("bundles {left} and {right} overlap on {} session(s), first {first}", sessions.len())]
    OverlappingSessions {
        /// Left bundle.
        left: BundleId,
        /// Right bundle.
        right: BundleId,
        /// First of the shared sessions (sorted).
        first: SessionId,
        /// All shared sessions, sorted.
        sessions: Vec<SessionId>,
    },
    /// The session is not open.
    #[error("session {session} is not open")]
    UnknownSession {
        /// The session.
        session: SessionId,
    },
    /// Opening a session that someone already holds.
    #[error("session {session} is already held by authority {holder}")]
    SessionAlreadyHeld {
        /// The session.
        session: SessionId,
        /// Its active holder.
        holder: AuthorityId,
    },
    /// Only the active holder may delegate or close a session.
    #[error("authority {authority} is not the active holder of session {session} (held by {holder}{})",
        if *delegated_out { "; it already delegated the session out" } else { "" })]
    NotActiveHolder {
        /// The session.
        session: SessionId,
        /// Who asked.
        authority: AuthorityId,
        /// Who actually holds it.
        holder: AuthorityId,
        /// Whether `authority` is the one that delegated it out.
        delegated_out: bool,
    },
    /// `from` and `to` are the same.
    #[error("authority {authority} cannot delegate session {session} to itself")]
    SelfDelegation {
        /// The session.
        session: SessionId,
        /// The authority.
        authority: AuthorityId,
    },
    /// The boundary names another bundle.
    #[error("link boundary names bundle {boundary} but the delegation goes through {bundle}")]
    BoundaryBundleMismatch {
        /// The delegation's bundle.
        bundle: BundleId,
        /// The boundary's bundle.
        boundary: BundleId,
    },
    /// The boundary carries another scope.
    #[error("link boundary carries scope {boundary} but the delegation moves {scope}")]
    BoundaryScopeMismatch {
        /// The delegation's scope.
        scope: CapabilityScope,
        /// The boundary's scope.
        boundary: CapabilityScope,
    },
    /// The session runs another bundle than the command names.
    #[error("session {session} runs bundle {session_bundle}, not {bundle}")]
    SessionBundleMismatch {
        /// The session.
        session: SessionId,
        /// The bundle it runs.
        session_bundle: BundleId,
        /// The bundle the command named.
        bundle: BundleId,
    },
    /// A delegation scope names another bundle's fragment.
    #[error("a delegation through {bundle} cannot move fragment {fragment} of another bundle")]
    ScopeNamesOtherBundle {
        /// The delegation's bundle.
        bundle: BundleId,
        /// The other bundle's fragment.
        fragment: String,
    },
    /// An empty fragment set moves nothing.
    #[error("a delegation scope must name at least one fragment")]
    EmptyScope,
    /// The session's owner generation reached its limit.
    #[error("session {session} has reached the highest owner generation; open a new session")]
    GenerationExhausted {
        /// The session.
        session: SessionId,
    },
    /// The state cannot intern more authorities.
    #[error("too many authorities: the state holds at most {max}")]
    TooManyAuthorities {
        /// The limit.
        max: u64,
    },
}

impl CommandError {
    /// A stable snake_case name of the error's kind (`"not_active_holder"`, …), for
    /// metrics labels and logs: it never changes for a kind, and never includes ids.
    pub fn kind(&self) -> &'static str {
        match self {
            CommandError::BundleAlreadyRegistered { .. } => "bundle_already_registered",
            CommandError::UnknownBundle { .. } => "unknown_bundle",
            CommandError::LinkedIdTaken { .. } => "linked_id_taken",
            CommandError::SelfLink { .. } => "self_link",
            CommandError::IncompatibleInterfaces { .. } => "incompatible_interfaces",
            CommandError::OverlappingSessions { .. } => "overlapping_sessions",
            CommandError::UnknownSession { .. } => "unknown_session",
            CommandError::SessionAlreadyHeld { .. } => "session_already_held",
            CommandError::NotActiveHolder { .. } => "not_active_holder",
            CommandError::SelfDelegation { .. } => "self_delegation",
            CommandError::BoundaryBundleMismatch { .. } => "boundary_bundle_mismatch",
            CommandError::BoundaryScopeMismatch { .. } => "boundary_scope_mismatch",
            CommandError::EmptyScope => "empty_scope",
            CommandError::SessionBundleMismatch { .. } => "session_bundle_mismatch",
            CommandError::ScopeNamesOtherBundle { .. } => "scope_names_other_bundle",
            CommandError::GenerationExhausted { .. } => "generation_exhausted",
            CommandError::TooManyAuthorities { .. } => "too_many_authorities",
        }
    }
}
