//! Upgrade steps as commands: what a caller asks, and the core's decision on it. The rules
//! (the bundle must be registered to be seeded, the book's phase rules) are checked here,
//! against the whole state, so a runtime only journals the phases the check yields.

use std::collections::BTreeSet;

use crate::error::CommandError;
use crate::ids::BundleId;
use crate::state::State;

use super::book::OnHistory;
use super::error::UpgradeError;
use super::names::{Member, UpgradeId};
use super::snapshot::{UpgradeExecution, UpgradeSnapshot};
use super::types::{Begin, RollbackCause, RuntimeUpgradeRequest, UpgradeFact};

/// One step of a staged upgrade.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum UpgradeCommand {
    /// Seed a bundle's membership (required before its first upgrade).
    Seed {
        /// The bundle (must be registered).
        bundle: BundleId,
        /// Its members.
        members: BTreeSet<Member>,
        /// What to do with existing history.
        on_history: OnHistory,
    },
    /// Start an upgrade: staged, or staged and failed for an invalid plan.
    Begin {
        /// The bundle.
        bundle: BundleId,
        /// The request.
        request: Box<RuntimeUpgradeRequest>,
        /// Refuse unless the bundle is at this epoch.
        expected_epoch: Option<u64>,
    },
    /// Admit a staged upgrade.
    Admit {
        /// The bundle.
        bundle: BundleId,
        /// The upgrade.
        upgrade: UpgradeId,
    },
    /// Commit an admitted upgrade's cutover.
    Commit {
        /// The bundle.
        bundle: BundleId,
        /// The upgrade.
        upgrade: UpgradeId,
    },
    /// Roll an upgrade back.
    Rollback {
        /// The bundle.
        bundle: BundleId,
        /// The upgrade.
        upgrade: UpgradeId,
        /// Why.
        cause: RollbackCause,
    },
    /// Replace a bundle's upgrade state with a validated snapshot.
    Restore {
        /// The bundle.
        bundle: BundleId,
        /// The snapshot.
        snapshot: Box<UpgradeSnapshot>,
        /// What to do with existing history.
        on_history: OnHistory,
    },
}

/// What checking an upgrade step decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpgradeDecision {
    /// Journal these phases, in order, each its own commit applied before the next.
    Write(Vec<UpgradeFact>),
    /// The upgrade id was already executed with this request: nothing to write.
    AlreadyRecorded(Box<UpgradeExecution>),
    /// The plan is invalid: journal these phases (staged, then failed), then report the
    /// error.
    Invalid {
        /// The phases to journal.
        phases: Vec<UpgradeFact>,
        /// The broken rule ([`UpgradeError::Invalid`]).
        error: UpgradeError,
    },
}

/// Why an upgrade step was refused before anything was written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpgradeRefusal {
    /// A state rule refused it (an unregistered bundle).
    #[error(transparent)]
    Rejected(#[from] CommandError),
    /// The upgrade rules refused it.
    #[error(transparent)]
    Upgrade(#[from] UpgradeError),
}

impl State {
    /// Checks one upgrade step against this state. Never mutates.
    pub fn check_upgrade(&self, command: &UpgradeCommand) -> Result<UpgradeDecision, UpgradeRefusal> {
        let book = self.upgrades();
        let one = |fact: Result<UpgradeFact, UpgradeError>| Ok(UpgradeDecision::Write(vec![fact?]));
        match command {
            UpgradeCommand::Seed { bundle, members, on_history } => {
                if self.bundle(bundle).is_none() {
                    return Err(CommandError::UnknownBundle { bundle: bundle.clone() }.into());
                }
                one(book.check_seed(bundle, members.iter().cloned(), *on_history))
            }
            UpgradeCommand::Begin { bundle, request, expected_epoch } => {
                Ok(match book.check_begin(bundle, request, *expected_epoch)? {
                    Begin::AlreadyRecorded(x) => UpgradeDecision::AlreadyRecorded(Box::new(x)),
                    Begin::Staged(f) => UpgradeDecision::Write(vec![f]),
                    Begin::Invalid { staged, failed, error } => {
                        UpgradeDecision::Invalid { phases: vec![staged, failed], error }
                    }
                })
            }
            UpgradeCommand::Admit { bundle, upgrade } => one(book.check_admit(bundle, upgrade)),
            UpgradeCommand::Commit { bundle, upgrade } => one(book.check_commit(bundle, upgrade)),
            UpgradeCommand::Rollback { bundle, upgrade, cause } => {
                one(book.check_rollback(bundle, upgrade, cause.clone()))
            }
            UpgradeCommand::Restore { bundle, snapshot, on_history } => {
                one(book.check_restore(bundle, (**snapshot).clone(), *on_history))
            }
        }
    }
}
