//! Staged runtime upgrades (feature `upgrade-executor`).
//!
//! The rules live in `reconf_core::upgrade`; this module drives them. Each phase is one
//! journal commit, applied before the next phase is attempted, so a crash between phases
//! leaves an upgrade that recovery rolls back. Step hooks — the embedding runtime's actual
//! cutover work — run in the caller's task between the admitted and the final phase, never
//! inside the actor, so other commands keep flowing during a long cutover.

use std::collections::BTreeSet;

pub use reconf_core::upgrade::OnHistory;
use reconf_core::upgrade::{
    Member, MembershipCause, RollbackCause, RuntimeUpgradeRequest, UpgradeCommand, UpgradeDecision,
    UpgradeError, UpgradeExecution, UpgradeFact, UpgradePhase, UpgradeRefusal, UpgradeSnapshot,
};
use reconf_core::{BundleId, Change, Fact};

use crate::actor::Actor;
use crate::commit;
use crate::error::ManagerError;
use crate::events;
use crate::mailbox::{Message, UpgradeReply};
use crate::manager::ReconfigurationManager;
use crate::request::{DelegationOutcome, DelegationRequest};
use crate::shared::{read, write, Shared};

fn phase_event(fact: &UpgradeFact) {
    if let Some(a) = fact.artifact() {
        let (bundle, id, phase) = (fact.bundle(), &a.upgrade_id, a.phase);
        match phase {
            UpgradePhase::CommittedCutover => {
                tracing::info!(name: events::UPGRADE_COMMITTED, bundle = %bundle, upgrade = %id, members = a.next_members.len());
            }
            UpgradePhase::RolledBack | UpgradePhase::Failed => {
                tracing::warn!(name: events::UPGRADE_ROLLED_BACK, bundle = %bundle, upgrade = %id, phase = %phase, reason = a.reason.as_deref().unwrap_or(""));
            }
            _ => tracing::info!(name: events::UPGRADE_PHASE, bundle = %bundle, upgrade = %id, phase = %phase),
        }
    } else {
        tracing::info!(name: events::UPGRADE_PHASE, bundle = %fact.bundle(), kind = fact.kind());
    }
}

impl Actor {
    /// Journals one upgrade phase through the one commit path, then applies it. A conflict
    /// catches up first (the phase was checked against a state another writer changed, so
    /// it is refused rather than retried blindly).
    async fn write_phase(&self, fact: UpgradeFact) -> Result<(), ManagerError> {
        let head = read(&self.shared.state).head();
        let facts = [Fact::new(Change::Upgrade(fact))];
        let persist = |source| ManagerError::Persist { operation: "upgrade phase", source };
        match commit::commit(self.journal.as_ref(), head, &facts).await {
            Ok(commit::Landed { first, .. }) => {
                Shared::bump(&self.shared.commits, 1);
                Shared::bump(&self.shared.facts, 1);
                write(&self.shared.state).apply_batch(first, &facts);
                if let Change::Upgrade(u) = &facts[0].change {
                    phase_event(u);
                }
                Ok(())
            }
            Err(failure) => {
                Shared::bump(&self.shared.failed_batches, 1);
                if let Err(e) = self.catch_up().await {
                    tracing::error!(name: events::BATCH_FAILED, error = %e, "catch-up after a failed upgrade phase failed");
                }
                Err(persist(failure.into_error(head)))
            }
        }
    }

    /// Checks an upgrade step against the applied state (the core decides what it may
    /// write) and writes its phases, each its own commit, applied before the next.
    pub(crate) async fn upgrade(&self, command: UpgradeCommand) -> Result<UpgradeReply, ManagerError> {
        let decision = read(&self.shared.state).check_upgrade(&command).map_err(|refusal| match refusal {
            UpgradeRefusal::Rejected(e) => ManagerError::Rejected(e),
            UpgradeRefusal::Upgrade(e) => ManagerError::Upgrade(e),
        })?;
        let (phases, reply) = match decision {
            UpgradeDecision::AlreadyRecorded(x) => return Ok(UpgradeReply::Recorded(x)),
            UpgradeDecision::Write(phases) => (phases, UpgradeReply::Written),
            UpgradeDecision::Invalid { phases, error } => (phases, UpgradeReply::Invalid(error)),
        };
        for phase in phases {
            self.write_phase(phase).await?;
        }
        Ok(reply)
    }
}

#[cfg_attr(docsrs, doc(cfg(feature = "upgrade-executor")))]
impl ReconfigurationManager {
    async fn upgrade_op(&self, command: UpgradeCommand) -> Result<UpgradeReply, ManagerError> {
        self.ask(|respond| Message::Upgrade { command, respond }).await
    }

    /// Seeds a bundle's membership (required before its first upgrade). Seeding a bundle
    /// with history is refused unless `on_history` is [`OnHistory::Replace`].
    pub async fn seed_membership(
        &self,
        bundle: BundleId,
        members: impl IntoIterator<Item = Member>,
        on_history: OnHistory,
    ) -> Result<UpgradeSnapshot, ManagerError> {
        let members: BTreeSet<Member> = members.into_iter().collect();
        self.upgrade_op(UpgradeCommand::Seed { bundle: bundle.clone(), members, on_history }).await?;
        self.upgrade_snapshot(&bundle).ok_or(ManagerError::Upgrade(UpgradeError::NotSeeded { bundle }))
    }

    /// A bundle's exported upgrade snapshot: epoch, members, history, executions.
    pub fn upgrade_snapshot(&self, bundle: &BundleId) -> Option<UpgradeSnapshot> {
        read(&self.shared.state).upgrades().export(bundle)
    }

    /// Restores an exported snapshot after validating it; a tampered snapshot is refused
    /// with a typed error. Replacing a bundle that has history needs
    /// [`OnHistory::Replace`].
    pub async fn restore_upgrade_snapshot(
        &self,
        bundle: BundleId,
        snapshot: UpgradeSnapshot,
        on_history: OnHistory,
    ) -> Result<(), ManagerError> {
        let snapshot = Box::new(snapshot);
        self.upgrade_op(UpgradeCommand::Restore { bundle, snapshot, on_history }).await.map(|_| ())
    }

    /// Executes a runtime upgrade of `bundle`: staged, admitted, each step through the
    /// step hook, then committed — or failed (invalid plan) or rolled back (a step
    /// failed), each phase journaled before the next. Repeating an upgrade id returns the
    /// recorded execution without running it again. Requires the reconfiguration
    /// surfaces.
    pub async fn execute_upgrade(
        &self,
        bundle: BundleId,
        request: RuntimeUpgradeRequest,
        expected_epoch: Option<u64>,
    ) -> Result<UpgradeExecution, ManagerError> {
        self.gate("execute_upgrade")?;
        let upgrade = request.upgrade_id.clone();
        let begin =
            UpgradeCommand::Begin { bundle: bundle.clone(), request: Box::new(request), expected_epoch };
        match self.upgrade_op(begin).await? {
            UpgradeReply::Recorded(x) => return Self::finished(&bundle, *x),
            UpgradeReply::Invalid(e) => return Err(ManagerError::Upgrade(e)),
            UpgradeReply::Written => {}
        }
        self.upgrade_op(UpgradeCommand::Admit { bundle: bundle.clone(), upgrade: upgrade.clone() }).await?;
        let plan = read(&self.shared.state)
            .upgrades()
            .planned_cutover(&bundle, &upgrade)
            .map_err(ManagerError::Upgrade)?;
        let mut failure = None;
        for event in &plan {
            let MembershipCause::Step { step_id, .. } = &event.cause else { continue };
            if let Err(e) = self.upgrade_hook.run_step(&bundle, &upgrade, step_id, event).await {
                failure = Some(RollbackCause::StepFailed { step_id: step_id.clone(), message: e.message });
                break;
            }
        }
        let last = match failure {
            Some(cause) => {
                UpgradeCommand::Rollback { bundle: bundle.clone(), upgrade: upgrade.clone(), cause }
            }
            None => UpgradeCommand::Commit { bundle: bundle.clone(), upgrade: upgrade.clone() },
        };
        self.upgrade_op(last).await?;
        let x = read(&self.shared.state)
            .upgrades()
            .execution(&bundle, &upgrade)
            .cloned()
            .ok_or(ManagerError::Upgrade(UpgradeError::NotSeeded { bundle: bundle.clone() }))?;
        Self::finished(&bundle, x)
    }

    fn finished(bundle: &BundleId, x: UpgradeExecution) -> Result<UpgradeExecution, ManagerError> {
        match x.outcome() {
            Some(UpgradePhase::CommittedCutover) => Ok(x),
            phase => Err(ManagerError::UpgradeNotCommitted {
                bundle: bundle.clone(),
                reason: x.reason().unwrap_or("").to_owned(),
                upgrade: x.upgrade_id,
                phase,
            }),
        }
    }

    /// Runs `upgrade` on the delegation's bundle and, only if it commits, the delegation.
    /// If the upgrade fails, nothing of the delegation is journaled (the upgrade's own
    /// phases are).
    pub async fn delegate_with_upgrade(
        &self,
        request: DelegationRequest,
        upgrade: RuntimeUpgradeRequest,
        expected_epoch: Option<u64>,
    ) -> Result<(UpgradeExecution, DelegationOutcome), ManagerError> {
        let x = self.execute_upgrade(request.bundle.clone(), upgrade, expected_epoch).await?;
        let d = self.delegate_session(request).await?;
        Ok((x, d))
    }
}
