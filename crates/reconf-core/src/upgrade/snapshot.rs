//! A bundle's exported upgrade state: membership, its history, and every execution.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::error::SnapshotViolation;
use super::names::{Member, StepId, UpgradeId};
use super::types::{PhaseArtifact, UpgradePhase, UPGRADE_SCHEMA_VERSION};

use UpgradePhase::{Admitted, CommittedCutover, Failed, RolledBack, Staged};

/// The phase sequences of a finished execution.
pub const FINISHED_SEQUENCES: [&[UpgradePhase]; 4] = [
    &[Staged, Failed],
    &[Staged, Admitted, RolledBack],
    &[Staged, Admitted, CommittedCutover],
    &[Staged, RolledBack],
];

/// The phase sequences of an execution still in flight.
/// The epoch a bundle's first seeding records. Epochs count from 0 at seeding, and each
/// later membership change (a forced re-seed, each cutover step) is one more — the same
/// anchor as telltale's, so an upgrade history ported from it keeps its numbers.
pub const FIRST_EPOCH: u64 = 0;

/// Legal phase sequences of an upgrade still in flight.
pub const IN_FLIGHT_SEQUENCES: [&[UpgradePhase]; 2] = [&[Staged], &[Staged, Admitted]];

/// What caused a membership change.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MembershipCause {
    /// The membership was seeded.
    Seeded {
        /// Whether the seed replaced existing history.
        forced: bool,
    },
    /// One step of a committed upgrade.
    Step {
        /// The upgrade.
        upgrade_id: UpgradeId,
        /// The step.
        step_id: StepId,
    },
}

/// One membership change, at its epoch.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MembershipEvent {
    /// The epoch the change moved the bundle to.
    pub epoch: u64,
    /// Members before.
    pub previous: BTreeSet<Member>,
    /// Members after.
    pub next: BTreeSet<Member>,
    /// In `next` but not `previous`.
    pub added: BTreeSet<Member>,
    /// In `previous` but not `next`.
    pub removed: BTreeSet<Member>,
    /// What caused it.
    pub cause: MembershipCause,
}

impl MembershipEvent {
    /// The event moving `previous` to `next` at `epoch`.
    pub fn new(
        epoch: u64,
        previous: BTreeSet<Member>,
        next: BTreeSet<Member>,
        cause: MembershipCause,
    ) -> Self {
        let added = next.difference(&previous).cloned().collect();
        let removed = previous.difference(&next).cloned().collect();
        Self { epoch, previous, next, added, removed, cause }
    }
}

/// The audited phases of one upgrade, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpgradeExecution {
    /// The upgrade.
    pub upgrade_id: UpgradeId,
    /// One artifact per phase reached, in order.
    pub phases: Vec<PhaseArtifact>,
}

impl UpgradeExecution {
    /// The phases reached, in order.
    pub fn phase_sequence(&self) -> Vec<UpgradePhase> {
        self.phases.iter().map(|a| a.phase).collect()
    }

    /// The last phase reached.
    pub fn last_phase(&self) -> Option<UpgradePhase> {
        self.phases.last().map(|a| a.phase)
    }

    /// The terminal phase, once the upgrade is over.
    pub fn outcome(&self) -> Option<UpgradePhase> {
        self.last_phase().filter(|p| p.is_terminal())
    }

    /// The last artifact: the most recent audit record.
    pub fn last(&self) -> Option<&PhaseArtifact> {
        self.phases.last()
    }

    /// The failure or rollback reason, if the upgrade ended with one.
    pub fn reason(&self) -> Option<&str> {
        self.phases.last().and_then(|a| a.reason.as_deref())
    }
}

/// A bundle's whole upgrade state, as exported and restored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpgradeSnapshot {
    /// The schema version it was written with.
    pub schema_version: u16,
    /// The current membership epoch: the epoch of the last history event.
    pub epoch: u64,
    /// The current members.
    pub active_members: BTreeSet<Member>,
    /// Every membership change, oldest first.
    pub history: Vec<MembershipEvent>,
    /// Finished executions, in the order they finished.
    pub executions: Vec<UpgradeExecution>,
    /// The execution started and not finished, if any.
    pub in_flight: Option<UpgradeExecution>,
}

impl UpgradeSnapshot {
    /// An empty, unseeded state (not itself restorable: it has no members).
    pub(crate) fn unseeded() -> Self {
        Self {
            schema_version: UPGRADE_SCHEMA_VERSION,
            epoch: 0,
            active_members: BTreeSet::new(),
            history: Vec::new(),
            executions: Vec::new(),
            in_flight: None,
        }
    }

    /// Checks that the snapshot holds together, in this order: a supported schema;
    /// non-empty active members; a non-empty history whose epochs strictly increase, whose
    /// events each start from the members the one before left, leave members, and list
    /// `added`/`removed` as the difference; a last event at the snapshot's epoch and
    /// members; finished executions each with a legal sequence of its own artifacts; an
    /// in-flight execution with a legal unfinished prefix; no upgrade id recorded twice.
    pub fn validate(&self) -> Result<(), SnapshotViolation> {
        if self.schema_version > UPGRADE_SCHEMA_VERSION {
            return Err(SnapshotViolation::UnsupportedSchema {
                found: self.schema_version,
                supported: UPGRADE_SCHEMA_VERSION,
            });
        }
        if self.active_members.is_empty() {
            return Err(SnapshotViolation::EmptyMembers);
        }
        let mut before: Option<&MembershipEvent> = None;
        for (index, event) in self.history.iter().enumerate() {
            match before {
                // The history determines every epoch: the first seeding is FIRST_EPOCH
                // from no members, and each change after it is exactly one more.
                None => {
                    let seeded = matches!(event.cause, MembershipCause::Seeded { .. });
                    if event.epoch != FIRST_EPOCH || !seeded || !event.previous.is_empty() {
                        return Err(SnapshotViolation::NotSeededFirst { epoch: event.epoch });
                    }
                }
                Some(prev) => {
                    if prev.epoch.checked_add(1) != Some(event.epoch) {
                        return Err(SnapshotViolation::EpochNotIncreasing {
                            index,
                            epoch: event.epoch,
                            previous: prev.epoch,
                        });
                    }
                    if event.previous != prev.next {
                        return Err(SnapshotViolation::BrokenHistory { epoch: event.epoch });
                    }
                }
            }
            // A step's change must come from a committed upgrade this snapshot records.
            if let MembershipCause::Step { upgrade_id, step_id } = &event.cause {
                let recorded = self.executions.iter().any(|x| {
                    x.upgrade_id == *upgrade_id
                        && x.outcome() == Some(UpgradePhase::CommittedCutover)
                        && x.phases.iter().any(|a| a.plan.steps.iter().any(|s| s.step_id == *step_id))
                });
                if !recorded {
                    return Err(SnapshotViolation::UnrecordedStep {
                        epoch: event.epoch,
                        upgrade_id: upgrade_id.clone(),
                    });
                }
            }
            if event.next.is_empty() {
                return Err(SnapshotViolation::EmptyEvent { epoch: event.epoch });
            }
            if !event.added.iter().eq(event.next.difference(&event.previous))
                || !event.removed.iter().eq(event.previous.difference(&event.next))
            {
                return Err(SnapshotViolation::WrongDelta { epoch: event.epoch });
            }
            before = Some(event);
        }
        let Some(last) = before else {
            return Err(SnapshotViolation::MissingHistory);
        };
        if last.epoch != self.epoch {
            return Err(SnapshotViolation::EpochMismatch { event_epoch: last.epoch, epoch: self.epoch });
        }
        if last.next != self.active_members {
            return Err(SnapshotViolation::MembersMismatch {
                event: last.next.clone(),
                active: self.active_members.clone(),
            });
        }

        let mut ids = BTreeSet::new();
        for execution in &self.executions {
            check_own_artifacts(execution)?;
            let phases = execution.phase_sequence();
            if !FINISHED_SEQUENCES.contains(&phases.as_slice()) {
                return Err(SnapshotViolation::IllegalPhases {
                    upgrade_id: execution.upgrade_id.clone(),
                    phases,
                });
            }
            if !ids.insert(&execution.upgrade_id) {
                return Err(SnapshotViolation::DuplicateUpgrade { upgrade_id: execution.upgrade_id.clone() });
            }
        }
        if let Some(execution) = &self.in_flight {
            check_own_artifacts(execution)?;
            let phases = execution.phase_sequence();
            if !IN_FLIGHT_SEQUENCES.contains(&phases.as_slice()) {
                return Err(SnapshotViolation::IllegalInFlight {
                    upgrade_id: execution.upgrade_id.clone(),
                    phases,
                });
            }
            if ids.contains(&execution.upgrade_id) {
                return Err(SnapshotViolation::DuplicateUpgrade { upgrade_id: execution.upgrade_id.clone() });
            }
        }
        Ok(())
    }
}

fn check_own_artifacts(execution: &UpgradeExecution) -> Result<(), SnapshotViolation> {
    match execution.phases.iter().find(|a| a.upgrade_id != execution.upgrade_id) {
        Some(a) => Err(SnapshotViolation::ForeignArtifact {
            upgrade_id: execution.upgrade_id.clone(),
            found: a.upgrade_id.clone(),
        }),
        None => Ok(()),
    }
}
