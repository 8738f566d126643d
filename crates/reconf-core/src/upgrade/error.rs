//! Typed errors of the upgrade state machine.
//!
//! [`UpgradeError`] is what a check refuses with (nothing is written). A request that is
//! well formed but breaks a plan rule is *not* refused: it is journaled as
//! [`Staged`](super::UpgradePhase::Staged) then [`Failed`](super::UpgradePhase::Failed)
//! with the [`ValidationError`] as its reason, and the caller gets
//! [`UpgradeError::Invalid`].

use std::collections::BTreeSet;
use std::fmt;

use crate::ids::BundleId;

use super::names::{Member, ObligationId, PublicationId, StepId, UpgradeId};
use super::types::UpgradePhase;

/// Shows a set of names as `[a, b]` for messages.
pub(crate) fn show<T: fmt::Display>(items: &BTreeSet<T>) -> String {
    let mut out = String::from("[");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(&item.to_string());
    }
    out.push(']');
    out
}

fn show_path(path: &[Member]) -> String {
    path.iter().map(Member::as_str).collect::<Vec<_>>().join(" -> ")
}

fn show_phases(phases: &[UpgradePhase]) -> String {
    let names: Vec<String> = phases.iter().map(ToString::to_string).collect();
    format!("[{}]", names.join(", "))
}

/// A name that could not be made into an id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    /// Empty or whitespace-only text.
    #[error("a {kind} must not be blank")]
    Blank {
        /// Which kind of name.
        kind: &'static str,
    },
}

/// Why a set of placement observations is invalid. Every case names the role.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlacementError {
    /// Two observations for one role.
    #[error("role {role} has more than one placement observation")]
    DuplicateRole {
        /// The role.
        role: Member,
    },
    /// An observation for a role the step's membership does not contain.
    #[error("role {role} has a placement but is not a member after this step")]
    NotAMember {
        /// The role.
        role: Member,
    },
    /// A remote placement without an endpoint.
    #[error("role {role} is placed remote but names no endpoint")]
    MissingEndpoint {
        /// The role.
        role: Member,
    },
    /// A colocated placement without a peer.
    #[error("role {role} is placed colocated but names no peer")]
    MissingPeer {
        /// The role.
        role: Member,
    },
    /// A role colocated with itself.
    #[error("role {role} is placed colocated with itself")]
    SelfPeer {
        /// The role.
        role: Member,
    },
    /// A colocation peer that is not a member after this step.
    #[error("role {role} is colocated with {peer}, which is not a member after this step")]
    UnknownPeer {
        /// The role.
        role: Member,
        /// The peer it names.
        peer: String,
    },
    /// A colocation region that is blank.
    #[error("role {role} is colocated in a blank region")]
    BlankRegion {
        /// The role.
        role: Member,
    },
    /// Colocation peers that form a cycle, so no role anchors the group.
    #[error("role {role} is on a colocation cycle: {}", show_path(.cycle))]
    ColocationCycle {
        /// The smallest role on the cycle.
        role: Member,
        /// The cycle, starting and ending at `role`.
        cycle: Vec<Member>,
    },
    /// A role colocated (directly or through a chain of peers) with a role that declares
    /// another region.
    #[error(
        "role {role} is colocated in region {region:?} but its peer {peer} declares region {peer_region:?}"
    )]
    RegionConflict {
        /// The role.
        role: Member,
        /// Its region.
        region: String,
        /// The peer along its colocation chain that disagrees.
        peer: Member,
        /// That peer's region.
        peer_region: String,
    },
}

/// Why an upgrade request breaks a plan rule. Rules are checked in the documented order
/// (see [`validate`](super::validate)) and the first broken one is reported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValidationError {
    /// Rule 1: a plan needs at least one step.
    #[error("the plan has no steps")]
    NoSteps,
    /// Rule 2: a publication both carried and invalidated.
    #[error("publication {publication} is both carried and invalidated")]
    PublicationCarriedAndInvalidated {
        /// The first such publication, in sorted order.
        publication: PublicationId,
    },
    /// Rule 2: an obligation both carried and invalidated.
    #[error("obligation {obligation} is both carried and invalidated")]
    ObligationCarriedAndInvalidated {
        /// The first such obligation, in sorted order.
        obligation: ObligationId,
    },
    /// Rule 3: ownership continuity is required but a step shares no member with the
    /// membership before it.
    #[error(
        "step {step_id} breaks ownership continuity: its members {} share none with the members before it {}",
        show(.next), show(.previous)
    )]
    OwnershipDiscontinuity {
        /// The step.
        step_id: StepId,
        /// Members before the step.
        previous: BTreeSet<Member>,
        /// The step's members.
        next: BTreeSet<Member>,
    },
    /// Rule 4: invalidating blocked pending effects without naming any obligation.
    #[error("pending effects are to be invalidated when blocked, but the request names no obligation")]
    InvalidateBlockedWithoutObligations,
    /// Rule 5: publication continuity is preserved yet a publication is invalidated.
    #[error("publication continuity is preserve, yet publication {publication} is invalidated")]
    PreservedPublicationInvalidated {
        /// The first invalidated publication, in sorted order.
        publication: PublicationId,
    },
    /// Rule 6: a step with no members.
    #[error("step {step_id} has no members")]
    EmptyStep {
        /// The step.
        step_id: StepId,
    },
    /// Rule 7: two steps with one id.
    #[error("step id {step_id} is used by more than one step")]
    DuplicateStep {
        /// The repeated id.
        step_id: StepId,
    },
    /// Rule 8: a step's placement observations are invalid.
    #[error("step {step_id}: {source}")]
    Placement {
        /// The step.
        step_id: StepId,
        /// What is wrong, naming the role.
        source: PlacementError,
    },
}

/// Why an exported [`UpgradeSnapshot`](super::UpgradeSnapshot) cannot be restored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotViolation {
    /// Written by a newer schema.
    #[error("snapshot schema version {found} is newer than the supported {supported}")]
    UnsupportedSchema {
        /// The snapshot's version.
        found: u16,
        /// The newest this build reads.
        supported: u16,
    },
    /// No active members.
    #[error("the snapshot has no active members")]
    EmptyMembers,
    /// Active members but no membership history to account for them.
    #[error("the snapshot has active members but no membership history")]
    MissingHistory,
    /// The history does not open with the bundle's first seeding, at epoch 0 from no
    /// members.
    #[error("the history opens with an event at epoch {epoch} that is not the first seeding (epoch 0, from no members)")]
    NotSeededFirst {
        /// The first event's epoch.
        epoch: u64,
    },
    /// A step's membership change that no committed upgrade of the snapshot records.
    #[error("history event at epoch {epoch} is a step of upgrade {upgrade_id}, which the snapshot does not record as committed with that step")]
    UnrecordedStep {
        /// The event's epoch.
        epoch: u64,
        /// The upgrade it names.
        upgrade_id: UpgradeId,
    },
    /// History epochs that do not advance by exactly one.
    #[error("history event {index} has epoch {epoch}, not the one after the previous event's {previous}")]
    EpochNotIncreasing {
        /// Position in the history.
        index: usize,
        /// Its epoch.
        epoch: u64,
        /// The epoch before it.
        previous: u64,
    },
    /// An event whose previous members are not the members the event before it left.
    #[error("history event at epoch {epoch} does not start from the members the event before it left")]
    BrokenHistory {
        /// The event's epoch.
        epoch: u64,
    },
    /// An event whose next members are empty.
    #[error("history event at epoch {epoch} leaves no members")]
    EmptyEvent {
        /// The event's epoch.
        epoch: u64,
    },
    /// An event whose added/removed sets are not the difference of previous and next.
    #[error("history event at epoch {epoch} lists added/removed members that do not match its change")]
    WrongDelta {
        /// The event's epoch.
        epoch: u64,
    },
    /// The last event does not end at the snapshot's epoch.
    #[error("the last history event is at epoch {event_epoch} but the snapshot is at epoch {epoch}")]
    EpochMismatch {
        /// The last event's epoch.
        event_epoch: u64,
        /// The snapshot's epoch.
        epoch: u64,
    },
    /// The last event does not end at the snapshot's active members.
    #[error("the last history event leaves members {} but the snapshot's active members are {}", show(.event), show(.active))]
    MembersMismatch {
        /// What the last event leaves.
        event: BTreeSet<Member>,
        /// The snapshot's active members.
        active: BTreeSet<Member>,
    },
    /// A finished execution whose phases are not a legal sequence.
    #[error("execution {upgrade_id} has phases {}, not a legal finished sequence", show_phases(.phases))]
    IllegalPhases {
        /// The upgrade.
        upgrade_id: UpgradeId,
        /// Its phases as found.
        phases: Vec<UpgradePhase>,
    },
    /// An in-flight execution whose phases are not a legal unfinished prefix.
    #[error("in-flight execution {upgrade_id} has phases {}, not staged or staged-admitted", show_phases(.phases))]
    IllegalInFlight {
        /// The upgrade.
        upgrade_id: UpgradeId,
        /// Its phases as found.
        phases: Vec<UpgradePhase>,
    },
    /// A phase artifact filed under another upgrade's execution.
    #[error("execution {upgrade_id} holds a phase artifact of upgrade {found}")]
    ForeignArtifact {
        /// The execution.
        upgrade_id: UpgradeId,
        /// The artifact's upgrade id.
        found: UpgradeId,
    },
    /// One upgrade id recorded twice.
    #[error("upgrade {upgrade_id} is recorded more than once")]
    DuplicateUpgrade {
        /// The upgrade.
        upgrade_id: UpgradeId,
    },
}

/// Why an upgrade command was refused. Nothing was written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UpgradeError {
    /// Seeding with an empty member set.
    #[error("cannot seed bundle {bundle} with an empty membership")]
    EmptyMembership {
        /// The bundle.
        bundle: BundleId,
    },
    /// Seeding (or restoring) over existing history without `force`.
    #[error(
        "bundle {bundle} already has membership history (epoch {epoch}, members {}); seeding over it needs force",
        show(.members)
    )]
    HistoryExists {
        /// The bundle.
        bundle: BundleId,
        /// Its current epoch.
        epoch: u64,
        /// Its active members.
        members: BTreeSet<Member>,
    },
    /// An upgrade of a bundle whose membership was never seeded.
    #[error("bundle {bundle} has no seeded membership; seed it before upgrading")]
    NotSeeded {
        /// The bundle.
        bundle: BundleId,
    },
    /// Another upgrade of the bundle has started and not finished.
    #[error("bundle {bundle} already has upgrade {in_flight} in flight")]
    UpgradeInFlight {
        /// The bundle.
        bundle: BundleId,
        /// The upgrade in flight.
        in_flight: UpgradeId,
    },
    /// The expected-epoch precondition failed: someone else changed the membership.
    #[error("bundle {bundle} is at epoch {actual}, not the expected {expected}")]
    EpochMismatch {
        /// The bundle.
        bundle: BundleId,
        /// The epoch the caller expected.
        expected: u64,
        /// The bundle's epoch.
        actual: u64,
    },
    /// An upgrade id already recorded for another request.
    #[error("upgrade id {upgrade_id} of bundle {bundle} was already used for a different request")]
    UpgradeIdConflict {
        /// The bundle.
        bundle: BundleId,
        /// The reused id.
        upgrade_id: UpgradeId,
    },
    /// A phase command for an upgrade that is not in flight and was never recorded.
    #[error("upgrade {upgrade_id} of bundle {bundle} is not in flight")]
    NotInFlight {
        /// The bundle.
        bundle: BundleId,
        /// The upgrade.
        upgrade_id: UpgradeId,
    },
    /// A phase command for an upgrade that has already finished.
    #[error("upgrade {upgrade_id} of bundle {bundle} already finished: {outcome}")]
    AlreadyFinished {
        /// The bundle.
        bundle: BundleId,
        /// The upgrade.
        upgrade_id: UpgradeId,
        /// Its terminal phase.
        outcome: UpgradePhase,
    },
    /// A phase command issued in the wrong phase (admit twice, commit before admit...).
    #[error("upgrade {upgrade_id} of bundle {bundle} is {actual}; this needs it {expected}")]
    WrongPhase {
        /// The bundle.
        bundle: BundleId,
        /// The upgrade.
        upgrade_id: UpgradeId,
        /// The phase the command needs.
        expected: UpgradePhase,
        /// The phase it is in.
        actual: UpgradePhase,
    },
    /// A rollback naming a step the plan does not have.
    #[error("upgrade {upgrade_id} of bundle {bundle} has no step {step_id}")]
    UnknownStep {
        /// The bundle.
        bundle: BundleId,
        /// The upgrade.
        upgrade_id: UpgradeId,
        /// The step named.
        step_id: StepId,
    },
    /// The membership epoch would overflow.
    #[error("bundle {bundle} has exhausted its membership epochs")]
    EpochExhausted {
        /// The bundle.
        bundle: BundleId,
    },
    /// A request written by a newer schema.
    #[error("upgrade request {upgrade_id} has schema version {found}, newer than the supported {supported}")]
    UnsupportedSchema {
        /// The request's upgrade id.
        upgrade_id: UpgradeId,
        /// Its version.
        found: u16,
        /// The newest this build reads.
        supported: u16,
    },
    /// The request broke a plan rule; it was journaled as staged then failed.
    #[error("upgrade {upgrade_id} of bundle {bundle} is invalid: {source}")]
    Invalid {
        /// The bundle.
        bundle: BundleId,
        /// The upgrade.
        upgrade_id: UpgradeId,
        /// The first rule broken (boxed: it is the largest error, and rare).
        source: Box<ValidationError>,
    },
    /// A snapshot that does not hold together.
    #[error("snapshot for bundle {bundle} is rejected: {source}")]
    InvalidSnapshot {
        /// The bundle.
        bundle: BundleId,
        /// What is wrong.
        source: SnapshotViolation,
    },
}
