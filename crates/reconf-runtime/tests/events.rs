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
