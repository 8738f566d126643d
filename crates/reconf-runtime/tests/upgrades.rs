//! Staged runtime upgrades through the manager.
#![cfg(feature = "upgrade-executor")]
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use reconf_core::upgrade::*;
use reconf_core::*;
use reconf_effects::capability::StaticCapabilities;
use reconf_effects::{JournalEffects, MemoryJournal};
use reconf_runtime::*;

fn bid() -> BundleId {
    BundleId::new("guardian_handoff").unwrap()
}
fn m(x: &str) -> Member {
    Member::new(x).unwrap()
}
fn members(xs: &[&str]) -> Vec<Member> {
    xs.iter().map(|x| m(x)).collect()
}
fn request(id: &str, steps: &[&[&str]]) -> RuntimeUpgradeRequest {
    let steps = steps
        .iter()
        .enumerate()
        .map(|(i, s)| UpgradeStep::new(StepId::new(format!("step-{i}")).unwrap(), members(s)))
        .collect();
    RuntimeUpgradeRequest::new(
        UpgradeId::new(id).unwrap(),
        UpgradePlan::new(PlanId::new(format!("plan-{id}")).unwrap(), steps),
        CompatibilityContract::default(),
    )
}

/// Fails the step with the given index (counting every step it is asked to run).
struct FailAt {
    at: usize,
    seen: AtomicUsize,
}

#[async_trait]
impl UpgradeStepHook for FailAt {
    async fn run_step(
        &self,
        _: &BundleId,
        _: &UpgradeId,
        step: &StepId,
        _: &MembershipEvent,
    ) -> Result<(), StepFailed> {
        if self.seen.fetch_add(1, Ordering::SeqCst) == self.at {
            Err(StepFailed::new(format!("{step} could not start its new members")))
        } else {
            Ok(())
        }
    }
}

async fn manager(journal: Arc<dyn JournalEffects>, hook: Option<FailAt>) -> ReconfigurationManager {
    let b = ManagerBuilder::new().journal_arc(journal);
    let b = match hook {
        Some(h) => b.upgrade_hook(h),
        None => b,
    };
    b.open().await.unwrap()
}

fn phases(x: &UpgradeExecution) -> Vec<UpgradePhase> {
    x.phase_sequence()
}

#[tokio::test]
async fn a_valid_upgrade_commits_and_advances_the_epoch_per_step() {
    let j: Arc<dyn JournalEffects> = Arc::new(MemoryJournal::new());
    let mgr = manager(j.clone(), None).await;
    let seeded = mgr.seed_membership(bid(), members(&["g1", "g2", "g3"]), OnHistory::Refuse).await.unwrap();
    let epoch = seeded.epoch;
    let x = mgr
        .execute_upgrade(bid(), request("u1", &[&["g1", "g2", "g4"], &["g2", "g4", "g5"]]), Some(epoch))
        .await
        .unwrap();
    assert_eq!(
        phases(&x),
        vec![UpgradePhase::Staged, UpgradePhase::Admitted, UpgradePhase::CommittedCutover]
    );
    let snap = mgr.upgrade_snapshot(&bid()).unwrap();
    assert_eq!(snap.epoch, epoch + 2);
    assert_eq!(snap.active_members, members(&["g2", "g4", "g5"]).into_iter().collect());
    // Repeating the id returns the record without running again.
    let head = j.head().await.unwrap();
    let again = mgr
        .execute_upgrade(bid(), request("u1", &[&["g1", "g2", "g4"], &["g2", "g4", "g5"]]), None)
        .await
        .unwrap();
    assert_eq!(again, x);
    assert_eq!(j.head().await.unwrap(), head, "nothing journaled for a repeat");
    // A stale expected epoch is refused before anything is written.
    let err = mgr.execute_upgrade(bid(), request("u2", &[&["g2", "g4"]]), Some(epoch)).await.unwrap_err();
    assert!(matches!(err, ManagerError::Upgrade(UpgradeError::EpochMismatch { .. })), "{err:?}");
    assert_eq!(j.head().await.unwrap(), head);
}

#[tokio::test]
async fn an_invalid_plan_records_staged_then_failed_and_keeps_members() {
    let mgr = manager(Arc::new(MemoryJournal::new()), None).await;
    let before = mgr.seed_membership(bid(), members(&["g1", "g2"]), OnHistory::Refuse).await.unwrap();
    // Ownership continuity: the step shares no member with the current set.
    let err = mgr.execute_upgrade(bid(), request("bad", &[&["x1", "x2"]]), None).await.unwrap_err();
    assert!(matches!(err, ManagerError::Upgrade(UpgradeError::Invalid { .. })), "{err:?}");
    let snap = mgr.upgrade_snapshot(&bid()).unwrap();
    assert_eq!((snap.epoch, &snap.active_members), (before.epoch, &before.active_members));
    let x = snap.executions.last().unwrap();
    assert_eq!(phases(x), vec![UpgradePhase::Staged, UpgradePhase::Failed]);
    assert!(x.reason().is_some());
    // No steps, and not seeded: typed refusals with nothing journaled.
    assert!(matches!(
        mgr.execute_upgrade(BundleId::new("epoch_rotation_transfer").unwrap(), request("u", &[&["a"]]), None)
            .await,
        Err(ManagerError::Upgrade(UpgradeError::NotSeeded { .. }))
    ));
    assert!(matches!(
        mgr.seed_membership(BundleId::new("nope").unwrap(), members(&["a"]), OnHistory::Refuse).await,
        Err(ManagerError::Rejected(CommandError::UnknownBundle { .. }))
    ));
    assert!(matches!(
        mgr.seed_membership(bid(), members(&["a"]), OnHistory::Refuse).await,
        Err(ManagerError::Upgrade(UpgradeError::HistoryExists { .. }))
    ));
}

#[tokio::test]
async fn a_failing_step_rolls_back_and_leaves_the_snapshot_as_it_was() {
    let mgr =
        manager(Arc::new(MemoryJournal::new()), Some(FailAt { at: 1, seen: AtomicUsize::new(0) })).await;
    let before = mgr.seed_membership(bid(), members(&["g1", "g2"]), OnHistory::Refuse).await.unwrap();
    let err =
        mgr.execute_upgrade(bid(), request("u1", &[&["g1", "g3"], &["g3", "g4"]]), None).await.unwrap_err();
    match &err {
        ManagerError::UpgradeNotCommitted { phase, reason, .. } => {
            assert_eq!(phase, &Some(UpgradePhase::RolledBack));
            assert!(reason.contains("step-1"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    let after = mgr.upgrade_snapshot(&bid()).unwrap();
    assert_eq!(
        (after.epoch, &after.active_members, &after.history),
        (before.epoch, &before.active_members, &before.history)
    );
    assert_eq!(
        phases(after.executions.last().unwrap()),
        vec![UpgradePhase::Staged, UpgradePhase::Admitted, UpgradePhase::RolledBack]
    );
}

#[tokio::test]
async fn a_delegation_carrying_a_failing_upgrade_is_not_journaled() {
    let j: Arc<dyn JournalEffects> = Arc::new(MemoryJournal::new());
    let mgr = manager(j.clone(), None).await;
    mgr.seed_membership(bid(), members(&["g1", "g2"]), OnHistory::Refuse).await.unwrap();
    let (a, b) = (AuthorityId::from_label("a"), AuthorityId::from_label("b"));
    let s = SessionId::from_u128(1);
    mgr.open_session(s, a, Some(bid())).await.unwrap();
    let err = mgr
        .delegate_with_upgrade(DelegationRequest::new(s, a, b, bid()), request("bad", &[&["x"]]), None)
        .await
        .unwrap_err();
    assert!(matches!(err, ManagerError::Upgrade(_)));
    assert_eq!(mgr.session(&s).unwrap().holder, a);
    let recs = j.read(1, 10_000).await.unwrap();
    assert!(!recs.iter().any(|r| matches!(r.fact.change, Change::SessionDelegated(_))));
    let (x, d) = mgr
        .delegate_with_upgrade(DelegationRequest::new(s, a, b, bid()), request("ok", &[&["g1", "g3"]]), None)
        .await
        .unwrap();
    assert_eq!(x.outcome(), Some(UpgradePhase::CommittedCutover));
    assert_eq!(d.receipt.to, b);
}

#[tokio::test]
async fn upgrades_need_the_reconfiguration_capability() {
    let mgr = ManagerBuilder::new()
        .memory_journal()
        .capabilities(StaticCapabilities::full().deny_reconfiguration())
        .open()
        .await
        .unwrap();
    mgr.seed_membership(bid(), members(&["g1"]), OnHistory::Refuse).await.unwrap();
    let err = mgr.execute_upgrade(bid(), request("u", &[&["g1", "g2"]]), None).await.unwrap_err();
    assert!(matches!(err, ManagerError::MissingCapability { operation: "execute_upgrade", .. }));
    assert!(mgr.upgrade_snapshot(&bid()).unwrap().executions.is_empty());
}

/// Blocks in the first step until the test lets go, so the upgrade sits admitted.
struct Stall(tokio::sync::Notify);

#[async_trait]
impl UpgradeStepHook for Stall {
    async fn run_step(
        &self,
        _: &BundleId,
        _: &UpgradeId,
        _: &StepId,
        _: &MembershipEvent,
    ) -> Result<(), StepFailed> {
        self.0.notified().await;
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_phases_is_rolled_back_on_recovery() {
    let j: Arc<dyn JournalEffects> = Arc::new(MemoryJournal::new());
    let stall = Arc::new(Stall(tokio::sync::Notify::new()));
    let mgr = ManagerBuilder::new().journal_arc(j.clone()).upgrade_hook(stall.clone()).open().await.unwrap();
    let before = mgr.seed_membership(bid(), members(&["g1", "g2"]), OnHistory::Refuse).await.unwrap();
    let runner = {
        let mgr = mgr.clone();
        tokio::spawn(async move { mgr.execute_upgrade(bid(), request("u1", &[&["g1", "g3"]]), None).await })
    };
    // Wait until the admitted phase is durable.
    loop {
        let snap = mgr.upgrade_snapshot(&bid()).unwrap();
        if snap.in_flight.as_ref().is_some_and(|x| x.last_phase() == Some(UpgradePhase::Admitted)) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    // "Crash": the process stops between the admitted and the final phase.
    runner.abort();
    mgr.shutdown().await.unwrap();
    drop(mgr);
    let again = ManagerBuilder::new().journal_arc(j.clone()).open().await.unwrap();
    assert_eq!(again.recovery_report().upgrades_rolled_back, vec![(bid(), UpgradeId::new("u1").unwrap())]);
    let snap = again.upgrade_snapshot(&bid()).unwrap();
    assert!(snap.in_flight.is_none());
    assert_eq!((snap.epoch, &snap.active_members), (before.epoch, &before.active_members));
    assert_eq!(
        phases(snap.executions.last().unwrap()),
        vec![UpgradePhase::Staged, UpgradePhase::Admitted, UpgradePhase::RolledBack]
    );
    // The resolution itself is durable: a second restart has nothing left to resolve.
    again.shutdown().await.unwrap();
    let third = ManagerBuilder::new().journal_arc(j).open().await.unwrap();
    assert!(third.recovery_report().upgrades_rolled_back.is_empty());
    assert_eq!(third.state_snapshot().upgrades().export(&bid()), Some(snap.clone()));
}

#[tokio::test]
async fn exported_snapshots_restore_and_tampered_ones_are_refused() {
    let mgr = manager(Arc::new(MemoryJournal::new()), None).await;
    mgr.seed_membership(bid(), members(&["g1", "g2"]), OnHistory::Refuse).await.unwrap();
    mgr.execute_upgrade(bid(), request("u1", &[&["g1", "g3"]]), None).await.unwrap();
    let snap = mgr.upgrade_snapshot(&bid()).unwrap();
    let other = manager(Arc::new(MemoryJournal::new()), None).await;
    other.restore_upgrade_snapshot(bid(), snap.clone(), OnHistory::Refuse).await.unwrap();
    assert_eq!(other.upgrade_snapshot(&bid()), Some(snap.clone()));
    // Continuing on the restored copy equals continuing on the original.
    for x in [&mgr, &other] {
        x.execute_upgrade(bid(), request("u2", &[&["g3", "g4"]]), None).await.unwrap();
    }
    assert_eq!(other.upgrade_snapshot(&bid()), mgr.upgrade_snapshot(&bid()));
    let mut tampered = snap;
    tampered.epoch += 5;
    let fresh = manager(Arc::new(MemoryJournal::new()), None).await;
    assert!(matches!(
        fresh.restore_upgrade_snapshot(bid(), tampered, OnHistory::Refuse).await,
        Err(ManagerError::Upgrade(UpgradeError::InvalidSnapshot { .. }))
    ));
}
