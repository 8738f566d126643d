//! Staged runtime upgrades (feature `upgrade-executor`).
//!
//! The rules live in `reconf_core::upgrade`; this module drives them. Each phase is one
//! journal commit, applied before the next phase is attempted, so a crash between phases
//! leaves an upgrade that recovery rolls back. Step hooks — the embedding runtime's actual
//! cutover work — run in the caller's task between the admitted and the final phase, never
//! inside the actor, so other commands keep flowing during a long cutover.

use std::collections::BTreeSet;

use async_trait::async_trait;
use reconf_core::upgrade::{
    Begin, Member, MembershipCause, MembershipEvent, RollbackCause, RuntimeUpgradeRequest, StepId,
    UpgradeError, UpgradeExecution, UpgradeFact, UpgradeId, UpgradePhase, UpgradeSnapshot,
};
use reconf_core::{BundleId, Change, Fact};
use reconf_effects::{ExpectedHead, JournalEffects};

use crate::actor::{Actor, Envelope, Op, Reply};
use crate::error::ManagerError;
use crate::events;
use crate::manager::ReconfigurationManager;
use crate::request::{DelegationOutcome, DelegationRequest};
use crate::shared::{read, write, Shared};

/// The embedding runtime's work for one cutover step (stop old members, start new ones,
/// move traffic). Returning an error rolls the whole upgrade back.
#[async_trait]
pub trait UpgradeStepHook: Send + Sync {
    /// Performs step `step` of `upgrade` on `bundle`, moving membership as `event` says.
    async fn run_step(
        &self,
        bundle: &BundleId,
        upgrade: &UpgradeId,
        step: &StepId,
        event: &MembershipEvent,
    ) -> Result<(), String>;
}

#[async_trait]
impl<T: UpgradeStepHook + ?Sized> UpgradeStepHook for std::sync::Arc<T> {
    async fn run_step(
        &self,
        bundle: &BundleId,
        upgrade: &UpgradeId,
        step: &StepId,
        event: &MembershipEvent,
    ) -> Result<(), String> {
        (**self).run_step(bundle, upgrade, step, event).await
    }
}

/// The hook used when none is given: the cutover needs no outside work, every step
/// succeeds.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoStepWork;

#[async_trait]
impl UpgradeStepHook for NoStepWork {
    async fn run_step(
        &self,
        _: &BundleId,
        _: &UpgradeId,
        _: &StepId,
        _: &MembershipEvent,
    ) -> Result<(), String> {
        Ok(())
    }
}

pub(crate) enum UpgradeOp {
    Seed { bundle: BundleId, members: BTreeSet<Member>, force: bool },
    Begin { bundle: BundleId, request: Box<RuntimeUpgradeRequest>, expected_epoch: Option<u64> },
    Admit { bundle: BundleId, upgrade: UpgradeId },
    Commit { bundle: BundleId, upgrade: UpgradeId },
    Rollback { bundle: BundleId, upgrade: UpgradeId, cause: RollbackCause },
    Restore { bundle: BundleId, snapshot: Box<UpgradeSnapshot>, force: bool },
}

#[derive(Debug)]
pub(crate) enum UpgradeReply {
    Written,
    Recorded(Box<UpgradeExecution>),
    Invalid(UpgradeError),
}

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

/// Journals one upgrade fact expecting the current head, then applies it.
async fn write_one(
    shared: &Shared,
    journal: &dyn JournalEffects,
    fact: UpgradeFact,
) -> Result<(), ManagerError> {
    let head = read(&shared.state).head();
    let f = Fact::new(Change::Upgrade(fact));
    let committed = journal
        .commit(vec![f.clone()], ExpectedHead::from_head((head > 0).then_some(head)))
        .await
        .map_err(|source| ManagerError::Persist { operation: "upgrade phase", source })?;
    Shared::bump(&shared.commits, 1);
    Shared::bump(&shared.facts, 1);
    write(&shared.state).apply(committed.first, &f);
    if let Change::Upgrade(u) = &f.change {
        phase_event(u);
    }
    Ok(())
}

impl Actor {
    /// Runs the upgrade commands of a batch one by one (each phase its own commit) and
    /// returns the other commands.
    pub(crate) async fn process_upgrades(&mut self, batch: Vec<Envelope>) -> Vec<Envelope> {
        let mut rest = Vec::with_capacity(batch.len());
        for env in batch {
            match env.op {
                Op::Upgrade(op) => {
                    let result = self.upgrade(op).await;
                    if result.is_err() {
                        Shared::bump(&self.shared.rejected, 1);
                    }
                    let _ = env.reply.send(result.map(Reply::Upgrade));
                }
                op => rest.push(Envelope { op, reply: env.reply }),
            }
        }
        rest
    }

    async fn upgrade(&mut self, op: UpgradeOp) -> Result<UpgradeReply, ManagerError> {
        let mut invalid = None;
        let facts: Vec<UpgradeFact> = {
            let state = read(&self.shared.state);
            let book = state.upgrades();
            match op {
                UpgradeOp::Seed { bundle, members, force } => {
                    if state.bundle(&bundle).is_none() {
                        return Err(ManagerError::BundleNotRegistered { bundle });
                    }
                    vec![book.check_seed(&bundle, members, force).map_err(ManagerError::Upgrade)?]
                }
                UpgradeOp::Begin { bundle, request, expected_epoch } => {
                    match book
                        .check_begin(&bundle, &request, expected_epoch)
                        .map_err(ManagerError::Upgrade)?
                    {
                        Begin::AlreadyRecorded(x) => return Ok(UpgradeReply::Recorded(Box::new(x))),
                        Begin::Staged(f) => vec![f],
                        Begin::Invalid { staged, failed, error } => {
                            invalid = Some(error);
                            vec![staged, failed]
                        }
                    }
                }
                UpgradeOp::Admit { bundle, upgrade } => {
                    vec![book.check_admit(&bundle, &upgrade).map_err(ManagerError::Upgrade)?]
                }
                UpgradeOp::Commit { bundle, upgrade } => {
                    vec![book.check_commit(&bundle, &upgrade).map_err(ManagerError::Upgrade)?]
                }
                UpgradeOp::Rollback { bundle, upgrade, cause } => {
                    vec![book.check_rollback(&bundle, &upgrade, cause).map_err(ManagerError::Upgrade)?]
                }
                UpgradeOp::Restore { bundle, snapshot, force } => {
                    vec![book.check_restore(&bundle, *snapshot, force).map_err(ManagerError::Upgrade)?]
                }
            }
        };
        // One commit per phase: each is durable and visible before the next is written.
        for f in facts {
            write_one(&self.shared, self.journal.as_ref(), f).await?;
        }
        Ok(invalid.map_or(UpgradeReply::Written, UpgradeReply::Invalid))
    }
}

impl ReconfigurationManager {
    async fn upgrade_op(&self, op: UpgradeOp) -> Result<UpgradeReply, ManagerError> {
        match self.call(Op::Upgrade(op)).await? {
            Reply::Upgrade(r) => Ok(r),
            other => Err(ManagerError::Config(format!("unexpected actor reply {other:?}"))),
        }
    }

    /// Seeds a bundle's membership (required before its first upgrade). Seeding a bundle
    /// with history is refused unless `force`.
    pub async fn seed_membership(
        &self,
        bundle: BundleId,
        members: impl IntoIterator<Item = Member>,
        force: bool,
    ) -> Result<UpgradeSnapshot, ManagerError> {
        let members: BTreeSet<Member> = members.into_iter().collect();
        self.upgrade_op(UpgradeOp::Seed { bundle: bundle.clone(), members, force }).await?;
        self.upgrade_snapshot(&bundle).ok_or(ManagerError::Upgrade(UpgradeError::NotSeeded { bundle }))
    }

    /// A bundle's exported upgrade snapshot: epoch, members, history, executions.
    pub fn upgrade_snapshot(&self, bundle: &BundleId) -> Option<UpgradeSnapshot> {
        read(&self.shared.state).upgrades().export(bundle)
    }

    /// Restores an exported snapshot after validating it; a tampered snapshot is refused
    /// with a typed error. Replacing a bundle that has history needs `force`.
    pub async fn restore_upgrade_snapshot(
        &self,
        bundle: BundleId,
        snapshot: UpgradeSnapshot,
        force: bool,
    ) -> Result<(), ManagerError> {
        self.upgrade_op(UpgradeOp::Restore { bundle, snapshot: Box::new(snapshot), force }).await.map(|_| ())
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
        let begin = UpgradeOp::Begin { bundle: bundle.clone(), request: Box::new(request), expected_epoch };
        match self.upgrade_op(begin).await? {
            UpgradeReply::Recorded(x) => return Self::finished(&bundle, *x),
            UpgradeReply::Invalid(e) => return Err(ManagerError::Upgrade(e)),
            UpgradeReply::Written => {}
        }
        self.upgrade_op(UpgradeOp::Admit { bundle: bundle.clone(), upgrade: upgrade.clone() }).await?;
        let plan = read(&self.shared.state)
            .upgrades()
            .planned_cutover(&bundle, &upgrade)
            .map_err(ManagerError::Upgrade)?;
        let mut failure = None;
        for event in &plan {
            let MembershipCause::Step { step_id, .. } = &event.cause else { continue };
            if let Err(message) = self.upgrade_hook.run_step(&bundle, &upgrade, step_id, event).await {
                failure = Some(RollbackCause::StepFailed { step_id: step_id.clone(), message });
                break;
            }
        }
        let last = match failure {
            Some(cause) => UpgradeOp::Rollback { bundle: bundle.clone(), upgrade: upgrade.clone(), cause },
            None => UpgradeOp::Commit { bundle: bundle.clone(), upgrade: upgrade.clone() },
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
                upgrade: x.upgrade_id.to_string(),
                phase: phase.map_or_else(|| "in flight".to_owned(), |p| p.to_string()),
                reason: x.reason().unwrap_or("").to_owned(),
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
