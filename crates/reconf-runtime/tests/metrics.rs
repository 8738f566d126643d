//! The metrics a scripted workload records, read back through a debugging recorder.
//!
//! One test in its own binary: the recorder is process-global.
#![cfg(feature = "metrics")]
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use reconf_core::*;
use reconf_effects::{FaultyJournal, MemoryJournal};
use reconf_runtime::metrics as name;
use reconf_runtime::*;

fn a(l: &str) -> AuthorityId {
    AuthorityId::from_label(l)
}

/// Every recorded metric by name and sorted `key=value` labels.
fn read(snapshotter: &metrics_util::debugging::Snapshotter) -> HashMap<(String, String), DebugValue> {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let key = key.key();
            let mut labels: Vec<String> =
                key.labels().map(|l| format!("{}={}", l.key(), l.value())).collect();
            labels.sort();
            ((key.name().to_owned(), labels.join(",")), value)
        })
        .collect()
}

fn counter(m: &HashMap<(String, String), DebugValue>, metric: &str, labels: &str) -> u64 {
    match m.get(&(metric.to_owned(), labels.to_owned())) {
        Some(DebugValue::Counter(n)) => *n,
        None => 0,
        other => panic!("{metric}{{{labels}}} is not a counter: {other:?}"),
    }
}

fn gauge(m: &HashMap<(String, String), DebugValue>, metric: &str, labels: &str) -> f64 {
    match m.get(&(metric.to_owned(), labels.to_owned())) {
        Some(DebugValue::Gauge(v)) => v.into_inner(),
        other => panic!("{metric}{{{labels}}} is not a recorded gauge: {other:?}"),
    }
}

fn histogram(m: &HashMap<(String, String), DebugValue>, metric: &str, labels: &str) -> Vec<f64> {
    match m.get(&(metric.to_owned(), labels.to_owned())) {
        Some(DebugValue::Histogram(v)) => v.iter().map(|x| x.into_inner()).collect(),
        other => panic!("{metric}{{{labels}}} is not a recorded histogram: {other:?}"),
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_scripted_workload_records_what_happened() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().unwrap();

    let memory = MemoryJournal::new();
    let journal = std::sync::Arc::new(FaultyJournal::new(memory.clone()));
    let m = ManagerBuilder::new().journal_arc(journal.clone()).without_manifests().open().await.unwrap();
    let x = BundleId::new("x").unwrap();
    m.register_bundle(ComposedBundle::new(x.clone())).await.unwrap(); // commit 1
    let sessions: Vec<SessionId> = (1..=4).map(SessionId::from_u128).collect();
    for s in &sessions {
        m.open_session(*s, a("alice"), Some(x.clone())).await.unwrap(); // commits 2..=5
    }
    // Two plain delegations, then three refusals of different causes.
    m.delegate_session(DelegationRequest::new(sessions[0], a("alice"), a("bob"), x.clone())).await.unwrap();
    m.delegate_session(DelegationRequest::new(sessions[1], a("alice"), a("bob"), x.clone())).await.unwrap();
    let e = m.delegate_session(DelegationRequest::new(sessions[0], a("alice"), a("carol"), x.clone())).await;
    assert_eq!(e.unwrap_err().kind(), "not_active_holder");
    let e = m.delegate_session(DelegationRequest::new(sessions[2], a("alice"), a("alice"), x.clone())).await;
    assert_eq!(e.unwrap_err().kind(), "self_delegation");
    let y = BundleId::new("y").unwrap();
    let e = m.delegate_session(DelegationRequest::new(sessions[2], a("alice"), a("bob"), y)).await;
    assert_eq!(e.unwrap_err().kind(), "unknown_bundle");
    // A refused non-delegation command.
    let e = m.open_session(sessions[3], a("bob"), None).await.unwrap_err();
    assert_eq!(e.kind(), "session_already_held");
    // One live handoff.
    let owned = m
        .attach_owner(sessions[2], OwnerLabel::new("n1").unwrap(), LinkBoundary::for_bundle(&x))
        .await
        .unwrap();
    let request = DelegationRequest::new(sessions[2], a("alice"), a("dave"), x.clone());
    m.delegate_active_session(&owned, request, OwnerLabel::new("n2").unwrap()).await.unwrap(); // commit 8
                                                                                               // A failed commit refuses its batch.
    journal.fail_nth_commit(1);
    let e = m.delegate_session(DelegationRequest::new(sessions[3], a("alice"), a("bob"), x.clone())).await;
    assert_eq!(e.unwrap_err().kind(), "persist");
    // Another writer on the same journal moves the head before this manager hears of it
    // (its notification is held back): the next commit conflicts once, catches up and
    // goes through.
    journal.hold_notifications(true);
    let other = ManagerBuilder::new().journal(memory.clone()).without_manifests().open().await.unwrap();
    other
        .delegate_session(DelegationRequest::new(sessions[1], a("bob"), a("erin"), x.clone()))
        .await
        .unwrap();
    other.shutdown().await.unwrap();
    m.delegate_session(DelegationRequest::new(sessions[3], a("alice"), a("bob"), x.clone())).await.unwrap();

    let stats = m.stats();
    let got = read(&snapshotter);
    // The other manager recorded into the same process-global recorder: its one
    // delegation and commit count too.
    assert_eq!(counter(&got, name::DELEGATIONS_ACCEPTED, "kind=plain"), 4);
    assert_eq!(counter(&got, name::DELEGATIONS_ACCEPTED, "kind=handoff"), 1);
    assert_eq!(counter(&got, name::DELEGATIONS_REJECTED, "error=not_active_holder"), 1);
    assert_eq!(counter(&got, name::DELEGATIONS_REJECTED, "error=self_delegation"), 1);
    assert_eq!(counter(&got, name::DELEGATIONS_REJECTED, "error=unknown_bundle"), 1);
    assert_eq!(counter(&got, name::DELEGATIONS_REJECTED, "error=persist"), 1);
    assert_eq!(counter(&got, name::COMMANDS_REJECTED, "error=session_already_held"), 1);
    assert_eq!(counter(&got, name::JOURNAL_CONFLICTS, ""), 1);
    assert_eq!(counter(&got, name::BATCHES_FAILED, ""), 1);
    assert_eq!(
        stats.actor.commits, 9,
        "register, 4 opens, 2 delegations, handoff, the delegation after the conflict"
    );
    assert_eq!(counter(&got, name::JOURNAL_COMMITS, ""), stats.actor.commits + 1);
    assert_eq!(counter(&got, name::JOURNAL_FACTS, ""), stats.actor.facts + 1);
    assert_eq!(histogram(&got, name::COMMIT_SECONDS, "").len() as u64, stats.actor.commits + 1);
    let batches = histogram(&got, name::BATCH_SIZE, "");
    assert!(batches.iter().all(|n| *n >= 1.0) && batches.len() as u64 >= stats.actor.batches);
    assert_eq!(
        histogram(&got, name::COMMAND_SECONDS, "command=delegate_session").len(),
        8,
        "every call timed"
    );
    assert_eq!(histogram(&got, name::COMMAND_SECONDS, "command=delegate_active_session").len(), 1);
    assert_eq!(histogram(&got, name::COMMAND_SECONDS, "command=attach_owner").len(), 1);
    // Gauges: this manager's state after its last batch.
    assert_eq!(gauge(&got, name::JOURNAL_HEAD, ""), m.stats().state.head as f64);
    assert_eq!(gauge(&got, name::SESSIONS, "class=native"), 0.0);
    assert_eq!(gauge(&got, name::SESSIONS, "class=delegated"), 4.0);
    assert_eq!(gauge(&got, name::SESSIONS, "class=closed"), 0.0);
    assert_eq!(gauge(&got, name::LIVE_OWNERS, ""), 1.0);
}
