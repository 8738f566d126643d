//! Upgrade requests, phases, phase artifacts and the facts the book writes.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ids::BundleId;

use super::error::UpgradeError;
use super::names::{Member, ObligationId, PlanId, PublicationId, StepId, UpgradeId};
use super::placement::{Placement, PlacementObservation};
use super::snapshot::{UpgradeExecution, UpgradeSnapshot};

/// The upgrade schema version this build writes, in requests and snapshots. Readers accept
/// this version and older ones.
pub const UPGRADE_SCHEMA_VERSION: u16 = 1;

fn current_schema() -> u16 {
    UPGRADE_SCHEMA_VERSION
}

/// How the new membership may execute the bundle.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ExecutionConstraint {
    /// The new members must run the bundle under the same profile as the old ones.
    #[default]
    PreserveBundleProfile,
    /// Old and new members may run with different determinism guarantees during cutover.
    MixedDeterminismAllowed,
}

/// What happens to effects pending at the cutover.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum PendingEffectTreatment {
    /// Pending effects carry over to the new membership.
    #[default]
    PreservePending,
    /// Pending effects that are blocked are invalidated; the request must name the
    /// obligations concerned.
    InvalidateBlocked,
}

/// What happens to canonical publications at the cutover.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum PublicationContinuity {
    /// Publications stay valid; none may be invalidated.
    #[default]
    Preserve,
    /// Publications are reissued by the new membership.
    Reissue,
}

/// What an upgrade promises to keep. The default is the strictest contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CompatibilityContract {
    /// How the new membership may execute.
    pub execution: ExecutionConstraint,
    /// Whether every step must keep at least one member of the membership before it.
    pub ownership_continuity_required: bool,
    /// What happens to pending effects.
    pub pending_effects: PendingEffectTreatment,
    /// What happens to canonical publications.
    pub publication_continuity: PublicationContinuity,
}

impl Default for CompatibilityContract {
    fn default() -> Self {
        Self {
            execution: ExecutionConstraint::default(),
            ownership_continuity_required: true,
            pending_effects: PendingEffectTreatment::default(),
            publication_continuity: PublicationContinuity::default(),
        }
    }
}

/// One step of a plan: the membership to cut over to, with optional observations of where
/// its roles are placed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpgradeStep {
    /// Unique within the plan.
    pub step_id: StepId,
    /// The membership after this step (order and repeats do not matter).
    pub next_members: Vec<Member>,
    /// Where the step's roles are placed, if observed.
    #[serde(default)]
    pub placements: Option<Vec<PlacementObservation>>,
}

impl UpgradeStep {
    /// A step to `members`, without placement observations.
    pub fn new(step_id: StepId, members: impl IntoIterator<Item = Member>) -> Self {
        Self { step_id, next_members: members.into_iter().collect(), placements: None }
    }

    /// Adds a placement observation for `role`.
    pub fn with_placement(mut self, role: Member, placement: Placement) -> Self {
        self.placements.get_or_insert_with(Vec::new).push(PlacementObservation { role, placement });
        self
    }

    /// The step's membership, sorted and without repeats.
    pub fn members(&self) -> BTreeSet<Member> {
        self.next_members.iter().cloned().collect()
    }
}

/// An ordered list of membership steps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpgradePlan {
    /// The plan's id.
    pub plan_id: PlanId,
    /// The steps, run in order.
    pub steps: Vec<UpgradeStep>,
}

impl UpgradePlan {
    /// A plan from its steps.
    pub fn new(plan_id: PlanId, steps: Vec<UpgradeStep>) -> Self {
        Self { plan_id, steps }
    }
}

/// A request to upgrade a bundle's membership.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeUpgradeRequest {
    /// The schema version the request was written with.
    #[serde(default = "current_schema")]
    pub schema_version: u16,
    /// The upgrade's id: submitting it again returns the recorded execution.
    pub upgrade_id: UpgradeId,
    /// The steps.
    pub plan: UpgradePlan,
    /// What the upgrade promises to keep.
    #[serde(default)]
    pub contract: CompatibilityContract,
    /// Publications that stay valid across the upgrade.
    #[serde(default)]
    pub carried_publications: Vec<PublicationId>,
    /// Publications the upgrade invalidates.
    #[serde(default)]
    pub invalidated_publications: Vec<PublicationId>,
    /// Obligations that carry over.
    #[serde(default)]
    pub carried_obligations: Vec<ObligationId>,
    /// Obligations the upgrade invalidates.
    #[serde(default)]
    pub invalidated_obligations: Vec<ObligationId>,
}

impl RuntimeUpgradeRequest {
    /// A request with no carried or invalidated ids, in the current schema version.
    pub fn new(upgrade_id: UpgradeId, plan: UpgradePlan, contract: CompatibilityContract) -> Self {
        Self {
            schema_version: UPGRADE_SCHEMA_VERSION,
            upgrade_id,
            plan,
            contract,
            carried_publications: Vec::new(),
            invalidated_publications: Vec::new(),
            carried_obligations: Vec::new(),
            invalidated_obligations: Vec::new(),
        }
    }

    /// Sets the carried publications.
    pub fn carrying_publications(mut self, ids: impl IntoIterator<Item = PublicationId>) -> Self {
        self.carried_publications = ids.into_iter().collect();
        self
    }

    /// Sets the invalidated publications.
    pub fn invalidating_publications(mut self, ids: impl IntoIterator<Item = PublicationId>) -> Self {
        self.invalidated_publications = ids.into_iter().collect();
        self
    }

    /// Sets the carried obligations.
    pub fn carrying_obligations(mut self, ids: impl IntoIterator<Item = ObligationId>) -> Self {
        self.carried_obligations = ids.into_iter().collect();
        self
    }

    /// Sets the invalidated obligations.
    pub fn invalidating_obligations(mut self, ids: impl IntoIterator<Item = ObligationId>) -> Self {
        self.invalidated_obligations = ids.into_iter().collect();
        self
    }
}

/// The audited phases of an upgrade.
///
/// The legal sequences are `[Staged, Failed]` (invalid request), `[Staged, Admitted,
/// RolledBack]` (a step failed, or recovery), `[Staged, Admitted, CommittedCutover]`
/// (success), and `[Staged, RolledBack]` (aborted or recovered before admission).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum UpgradePhase {
    /// The request was recorded (and validated).
    Staged,
    /// The request is valid and its steps may run.
    Admitted,
    /// Every step ran: the membership is the last step's.
    CommittedCutover,
    /// Stopped after staging; the membership is unchanged.
    RolledBack,
    /// The request broke a plan rule; the membership is unchanged.
    Failed,
}

impl UpgradePhase {
    /// Whether the upgrade is over once it reaches this phase.
    pub const fn is_terminal(self) -> bool {
        matches!(self, Self::CommittedCutover | Self::RolledBack | Self::Failed)
    }

    /// A stable dotted name for logs (`upgrade.staged`, `upgrade.committed`, ...).
    pub const fn event_name(self) -> &'static str {
        match self {
            Self::Staged => "upgrade.staged",
            Self::Admitted => "upgrade.admitted",
            Self::CommittedCutover => "upgrade.committed",
            Self::RolledBack => "upgrade.rolled_back",
            Self::Failed => "upgrade.failed",
        }
    }
}

impl fmt::Display for UpgradePhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Staged => "staged",
            Self::Admitted => "admitted",
            Self::CommittedCutover => "committed cutover",
            Self::RolledBack => "rolled back",
            Self::Failed => "failed",
        })
    }
}

/// The audit record of one phase of one upgrade. Each is self-contained: it repeats the
/// plan and contract, so a journal reader needs no other record to understand it, and
/// applying a committed cutover needs nothing but the artifact and the book.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhaseArtifact {
    /// The upgrade.
    pub upgrade_id: UpgradeId,
    /// The phase recorded.
    pub phase: UpgradePhase,
    /// The plan as requested.
    pub plan: UpgradePlan,
    /// The active members when the upgrade was staged.
    pub previous_members: BTreeSet<Member>,
    /// The members the upgrade targets: its last step's (empty for a plan with no steps).
    pub next_members: BTreeSet<Member>,
    /// The contract.
    pub contract: CompatibilityContract,
    /// Publications carried over, sorted.
    pub carried_publications: BTreeSet<PublicationId>,
    /// Publications invalidated, sorted.
    pub invalidated_publications: BTreeSet<PublicationId>,
    /// Obligations carried over, sorted.
    pub carried_obligations: BTreeSet<ObligationId>,
    /// Obligations invalidated, sorted.
    pub invalidated_obligations: BTreeSet<ObligationId>,
    /// Why the upgrade failed or rolled back.
    pub reason: Option<String>,
}

impl PhaseArtifact {
    /// The staged artifact of `request` against the current members.
    pub(crate) fn staged(request: &RuntimeUpgradeRequest, previous: BTreeSet<Member>) -> Self {
        Self {
            upgrade_id: request.upgrade_id.clone(),
            phase: UpgradePhase::Staged,
            plan: request.plan.clone(),
            previous_members: previous,
            next_members: request.plan.steps.last().map(UpgradeStep::members).unwrap_or_default(),
            contract: request.contract,
            carried_publications: request.carried_publications.iter().cloned().collect(),
            invalidated_publications: request.invalidated_publications.iter().cloned().collect(),
            carried_obligations: request.carried_obligations.iter().cloned().collect(),
            invalidated_obligations: request.invalidated_obligations.iter().cloned().collect(),
            reason: None,
        }
    }

    /// The same upgrade in another phase.
    pub(crate) fn to_phase(&self, phase: UpgradePhase, reason: Option<String>) -> Self {
        Self { phase, reason, ..self.clone() }
    }

    /// Whether this artifact records `request` (up to order and repeats of its id lists).
    pub fn describes(&self, request: &RuntimeUpgradeRequest) -> bool {
        fn same<T: Ord>(set: &BTreeSet<T>, list: &[T]) -> bool {
            let listed: BTreeSet<&T> = list.iter().collect();
            set.len() == listed.len() && set.iter().all(|x| listed.contains(x))
        }
        self.upgrade_id == request.upgrade_id
            && self.plan == request.plan
            && self.contract == request.contract
            && same(&self.carried_publications, &request.carried_publications)
            && same(&self.invalidated_publications, &request.invalidated_publications)
            && same(&self.carried_obligations, &request.carried_obligations)
            && same(&self.invalidated_obligations, &request.invalidated_obligations)
    }
}

/// One durable change of the upgrade book. Replaying the same facts in order rebuilds the
/// same book.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum UpgradeFact {
    /// A bundle's membership was seeded (a membership event at the next epoch).
    MembershipSeeded {
        /// The bundle.
        bundle: BundleId,
        /// Its members.
        members: BTreeSet<Member>,
        /// Whether this seed replaced existing history (which needs force).
        forced: bool,
    },
    /// An upgrade reached a phase.
    PhaseRecorded {
        /// The bundle.
        bundle: BundleId,
        /// The phase's audit record.
        artifact: Box<PhaseArtifact>,
    },
    /// A bundle's upgrade state was replaced by a validated snapshot.
    SnapshotRestored {
        /// The bundle.
        bundle: BundleId,
        /// The snapshot.
        snapshot: Box<UpgradeSnapshot>,
    },
}

impl UpgradeFact {
    /// The bundle the fact concerns.
    pub fn bundle(&self) -> &BundleId {
        match self {
            Self::MembershipSeeded { bundle, .. }
            | Self::PhaseRecorded { bundle, .. }
            | Self::SnapshotRestored { bundle, .. } => bundle,
        }
    }

    /// A stable dotted name for logs and dumps.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::MembershipSeeded { .. } => "upgrade.membership_seeded",
            Self::PhaseRecorded { artifact, .. } => artifact.phase.event_name(),
            Self::SnapshotRestored { .. } => "upgrade.snapshot_restored",
        }
    }

    /// The phase artifact, for a phase fact.
    pub fn artifact(&self) -> Option<&PhaseArtifact> {
        match self {
            Self::PhaseRecorded { artifact, .. } => Some(artifact),
            Self::MembershipSeeded { .. } | Self::SnapshotRestored { .. } => None,
        }
    }
}

/// What [`check_begin`](super::UpgradeBook::check_begin) decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Begin {
    /// The upgrade id was already recorded for this same request: nothing to write or run.
    AlreadyRecorded(UpgradeExecution),
    /// The request is valid: journal and apply this fact, then admit.
    Staged(UpgradeFact),
    /// The request breaks a plan rule: journal and apply `staged`, then `failed`, then
    /// report `error` to the caller. The membership does not change.
    Invalid {
        /// The staged phase.
        staged: UpgradeFact,
        /// The failed phase, with the broken rule as its reason.
        failed: UpgradeFact,
        /// The error to report ([`UpgradeError::Invalid`]).
        error: UpgradeError,
    },
}

impl Begin {
    /// The facts to journal, in order (none for a recorded upgrade).
    pub fn facts(&self) -> Vec<&UpgradeFact> {
        match self {
            Self::AlreadyRecorded(_) => Vec::new(),
            Self::Staged(f) => vec![f],
            Self::Invalid { staged, failed, .. } => vec![staged, failed],
        }
    }
}

/// Why an in-flight upgrade is rolled back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RollbackCause {
    /// The runtime's hook for a step reported failure. Needs the upgrade admitted.
    StepFailed {
        /// The step that failed.
        step_id: StepId,
        /// What the hook reported.
        message: String,
    },
    /// The runtime gave up for another reason (capability refused, shutdown...).
    Aborted {
        /// Why.
        message: String,
    },
    /// Recovery found the upgrade unfinished after a restart.
    Recovered {
        /// The last phase journaled before the restart.
        interrupted: UpgradePhase,
    },
}

impl fmt::Display for RollbackCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::StepFailed { step_id, message } => write!(f, "step {step_id} failed: {message}"),
            Self::Aborted { message } => write!(f, "aborted: {message}"),
            Self::Recovered { interrupted } => {
                write!(f, "recovered after restart: interrupted after the {interrupted} phase")
            }
        }
    }
}

/// What applying a fact did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum UpgradeApplied {
    /// Membership seeded at `epoch`.
    Seeded {
        /// The bundle.
        bundle: BundleId,
        /// The new epoch.
        epoch: u64,
    },
    /// A phase was recorded; `epoch` is the bundle's epoch afterwards (advanced once per
    /// step by a committed cutover).
    Phase {
        /// The bundle.
        bundle: BundleId,
        /// The upgrade.
        upgrade_id: UpgradeId,
        /// The phase.
        phase: UpgradePhase,
        /// The bundle's epoch after the fact.
        epoch: u64,
    },
    /// A snapshot replaced the bundle's upgrade state.
    Restored {
        /// The bundle.
        bundle: BundleId,
        /// Its epoch.
        epoch: u64,
    },
    /// The fact does not fit the book (never the case for checked facts) and changed
    /// nothing.
    Ignored {
        /// The bundle.
        bundle: BundleId,
        /// Why.
        why: &'static str,
    },
}
