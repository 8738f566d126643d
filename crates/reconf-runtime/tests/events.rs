//! Every outcome emits a `tracing` event with a stable dotted name.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex};

use reconf_core::*;
use reconf_effects::{FaultyJournal, MemoryJournal};
use reconf_runtime::{events, DelegationRequest, ManagerBuilder};
use tracing::Subscriber;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

#[derive(Clone, Default)]
struct Names(Arc<Mutex<Vec<String>>>);

impl<S: Subscriber> Layer<S> for Names {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        self.0.lock().unwrap().push(event.metadata().name().to_owned());
    }
}

#[test]
fn outcomes_are_named() {
    let names = Names::default();
    let subscriber = tracing_subscriber::registry().with(names.clone());
    let _guard = tracing::subscriber::set_default(subscriber);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let journal = Arc::new(FaultyJournal::new(MemoryJournal::new()));
        let m = ManagerBuilder::new()
            .journal_arc(journal.clone())
            .without_manifests()
            .snapshot_interval(Some(3))
            .open()
            .await
            .unwrap();
        let x = BundleId::new("x").unwrap();
        let (a, b) = (AuthorityId::from_label("a"), AuthorityId::from_label("b"));
        let s = SessionId::from_u128(1);
        m.register_bundle(ComposedBundle::new(x.clone())).await.unwrap();
        m.open_session(s, a, None).await.unwrap();
        m.delegate_session(DelegationRequest::new(s, a, b, x.clone())).await.unwrap();
        m.delegate_session(DelegationRequest::new(s, a, b, x.clone())).await.unwrap_err();
        // A refused command that is not a delegation is named as one.
        m.open_session(s, a, None).await.unwrap_err();
        journal.fail_nth_commit(1);
        m.delegate_session(DelegationRequest::new(s, b, a, x.clone())).await.unwrap_err();
        let h = m.attach_owner(s, OwnerLabel::new("o").unwrap(), LinkBoundary::for_bundle(&x)).await.unwrap();
        m.delegate_active_session(
            &h,
            DelegationRequest::new(s, b, a, x.clone()),
            OwnerLabel::new("p").unwrap(),
        )
        .await
        .unwrap();
        m.close_session(s, a).await.unwrap();
        m.shutdown().await.unwrap();
        ManagerBuilder::new().journal_arc(journal).without_manifests().open().await.unwrap();
    });
    let seen = names.0.lock().unwrap().clone();
    for want in [
        events::DELEGATION_PERSISTED,
        events::DELEGATION_REJECTED,
        events::COMMAND_REJECTED,
        events::BATCH_FAILED,
        events::HANDOFF_COMMITTED,
        events::COMMAND_PERSISTED,
        events::SNAPSHOT_WRITTEN,
        events::RECOVERY_COMPLETED,
        events::OWNER_DETACHED,
    ] {
        assert!(seen.iter().any(|n| n == want), "missing event {want}; saw {seen:?}");
    }
}

/// The event names an upgrade emits: seed the membership {g1, g2}, then run one upgrade
/// whose single step has `step` as its members.
#[cfg(feature = "upgrade-executor")]
fn upgrade_event_names(step: &[&str]) -> Vec<String> {
    use reconf_core::upgrade::*;
    let member = |x: &str| Member::new(x).unwrap();
    let step =
        UpgradeStep::new(StepId::new("step-0").unwrap(), step.iter().map(|x| member(x)).collect::<Vec<_>>());
    let request = RuntimeUpgradeRequest::new(
        UpgradeId::new("u1").unwrap(),
        UpgradePlan::new(PlanId::new("plan-u1").unwrap(), vec![step]),
        CompatibilityContract::default(),
    );
    let names = Names::default();
    let _guard = tracing::subscriber::set_default(tracing_subscriber::registry().with(names.clone()));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let x = BundleId::new("x").unwrap();
        let m = ManagerBuilder::new().memory_journal().without_manifests().open().await.unwrap();
        m.register_bundle(ComposedBundle::new(x.clone())).await.unwrap();
        m.seed_membership(x.clone(), [member("g1"), member("g2")], reconf_runtime::OnHistory::Refuse)
            .await
            .unwrap();
        let _ = m.execute_upgrade(x, request, None).await;
    });
    let seen = names.0.lock().unwrap().clone();
    seen.into_iter().filter(|n| n.starts_with("reconf.upgrade.")).collect()
}

/// Each journaled upgrade phase is named for what it means: the seed and the ordinary
/// phases as phases, the cutover as committed, and a plan that fails validation as rolled
/// back (not as one more phase, which a subscriber watching for failures would miss).
#[cfg(feature = "upgrade-executor")]
#[test]
fn upgrade_phases_are_named_for_their_outcome() {
    let (phase, committed, rolled_back) =
        (events::UPGRADE_PHASE, events::UPGRADE_COMMITTED, events::UPGRADE_ROLLED_BACK);
    // Seed, staged and admitted are phases; the cutover is the commit.
    assert_eq!(upgrade_event_names(&["g1", "g3"]), [phase, phase, phase, committed]);
    // A step sharing no member with the current set fails validation: staged, then failed.
    assert_eq!(upgrade_event_names(&["x1", "x2"]), [phase, phase, rolled_back]);
}
