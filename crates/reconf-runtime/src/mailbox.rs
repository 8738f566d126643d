//! What the handles send the actor. Each message carries its own typed responder, so an
//! answer can only be of the type its caller waits for: there is no reply enum to match
//! back, and no "unexpected reply".
//!
//! This is a leaf module: the handle, the actor and the upgrade code import it, and it
//! imports none of them.

use reconf_core::{AuthorityId, BundleId, ComposedBundle, Delegation, LinkBoundary, OwnerLabel, SessionId};
use tokio::sync::oneshot;

use crate::error::ManagerError;
use crate::request::{DelegationOutcome, HandoffOutcome, OwnedSession};

/// Where the actor sends one caller's answer.
pub(crate) type Responder<T> = oneshot::Sender<Result<T, ManagerError>>;

/// Answers a caller; one that gave up waiting is no reason to stop.
pub(crate) fn answer<T>(respond: Responder<T>, result: Result<T, ManagerError>) {
    let _ = respond.send(result);
}

/// One message to the actor.
// Commands are nearly every message and move once, into the channel's slot and out: boxing
// them to shrink the rare small variants would cost an allocation per command.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Message {
    /// A command that changes the state: checked with the rest of its batch, journaled in
    /// the batch's one commit, applied, then answered.
    Command(Command),
    /// Attach a live owner (changes no journaled state; answered in the check pass).
    Attach { session: SessionId, owner: OwnerLabel, boundary: LinkBoundary, respond: Responder<OwnedSession> },
    /// Detach a live owner by its own handle.
    Detach { handle: OwnedSession, respond: Responder<()> },
    /// One step of a staged upgrade (each phase is its own commit).
    #[cfg(feature = "upgrade-executor")]
    Upgrade { command: reconf_core::upgrade::UpgradeCommand, respond: Responder<UpgradeReply> },
    /// Catch up with the journal's current head (everything committed by any writer before
    /// the request), after this manager's own pending commits; answers the applied head.
    Sync { respond: Responder<u64> },
    /// Stop after the messages already queued, closing the journal first.
    Shutdown { respond: oneshot::Sender<()> },
}

/// A batched command, before it is checked.
pub(crate) enum Command {
    Register {
        bundle: ComposedBundle,
        respond: Responder<ComposedBundle>,
    },
    Link {
        left: BundleId,
        right: BundleId,
        linked: BundleId,
        respond: Responder<ComposedBundle>,
    },
    Open {
        session: SessionId,
        authority: AuthorityId,
        bundle: Option<BundleId>,
        respond: Responder<u64>,
    },
    Close {
        session: SessionId,
        authority: AuthorityId,
        respond: Responder<()>,
    },
    CloseOwned {
        handle: OwnedSession,
        respond: Responder<()>,
    },
    Delegate {
        request: Delegation,
        respond: Responder<DelegationOutcome>,
    },
    Handoff {
        request: Delegation,
        handle: OwnedSession,
        to_owner: OwnerLabel,
        respond: Responder<HandoffOutcome>,
    },
}

impl Message {
    /// The public operation's name: the `command` label of the latency metric.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Message::Command(c) => c.name(),
            Message::Attach { .. } => "attach_owner",
            Message::Detach { .. } => "detach_owner",
            #[cfg(feature = "upgrade-executor")]
            Message::Upgrade { .. } => "upgrade",
            Message::Sync { .. } => "sync",
            Message::Shutdown { .. } => "shutdown",
        }
    }
}

impl Command {
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Command::Register { .. } => "register_bundle",
            Command::Link { .. } => "link_bundles",
            Command::Open { .. } => "open_session",
            Command::Close { .. } => "close_session",
            Command::CloseOwned { .. } => "close_owned_session",
            Command::Delegate { .. } => "delegate_session",
            Command::Handoff { .. } => "delegate_active_session",
        }
    }

    /// Whether checking it needs the time (a delegation records when it happened).
    pub(crate) fn needs_time(&self) -> bool {
        matches!(self, Command::Delegate { .. } | Command::Handoff { .. })
    }

    /// The session whose record checking it reads, if any.
    pub(crate) fn session(&self) -> Option<SessionId> {
        match self {
            Command::Open { session, .. } | Command::Close { session, .. } => Some(*session),
            Command::CloseOwned { handle, .. } => Some(handle.session()),
            Command::Delegate { request, .. } | Command::Handoff { request, .. } => Some(request.session),
            Command::Register { .. } | Command::Link { .. } => None,
        }
    }
}

/// What an upgrade step did.
#[cfg(feature = "upgrade-executor")]
pub(crate) enum UpgradeReply {
    /// Its phases were journaled and applied.
    Written,
    /// The upgrade id was already executed: its record.
    Recorded(Box<reconf_core::upgrade::UpgradeExecution>),
    /// The plan was invalid: its staged and failed phases were journaled.
    Invalid(reconf_core::upgrade::UpgradeError),
}
