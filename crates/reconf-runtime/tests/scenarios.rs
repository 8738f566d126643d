//! Scenario tests of the manager on the memory journal: every error, the live handoff
//! chain, rollbacks, races and restart.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::sync::Arc;

use reconf_core::*;
use reconf_effects::capability::StaticCapabilities;
use reconf_effects::time::SimulatedClock;
use reconf_effects::{FaultyJournal, JournalEffects, MemoryJournal};
use reconf_runtime::*;

fn a(l: &str) -> AuthorityId {
    AuthorityId::from_label(l)
}
fn s(n: u128) -> SessionId {
    SessionId::from_u128(n)
}
fn bid(x: &str) -> BundleId {
    BundleId::new(x).unwrap()
}
fn owner(l: &str) -> OwnerLabel {
    OwnerLabel::new(l).unwrap()
}

struct Rig {
    m: ReconfigurationManager,
    journal: Arc<FaultyJournal<MemoryJournal>>,
    clock: SimulatedClock,
}

async fn rig_with(caps: StaticCapabilities) -> Rig {
    let journal = Arc::new(FaultyJournal::new(MemoryJournal::new()));
    let clock = SimulatedClock::new(1_700_000_000_000);
    let m = ManagerBuilder::new()
        .journal_arc(journal.clone())
        .clock(clock.clone())
        .capabilities(caps)
        .without_manifests()
        .open()
        .await
        .unwrap();
    m.register_bundle(ComposedBundle::new(bid("x")).with_export("x.i").with_import("x.i")).await.unwrap();
    Rig { m, journal, clock }
}

async fn rig() -> Rig {
    rig_with(StaticCapabilities::full()).await
}

/// Another writer's record: session `n` opened by authority `w`.
fn opened(n: u128) -> Fact {
    Fact::new(Change::SessionOpened { session: s(n), authority: a("w"), bundle: None, generation: 1 })
}

async fn journal_len(j: &dyn JournalEffects) -> u64 {
    j.head().await.unwrap().unwrap_or(0)
}

#[tokio::test]
async fn delegation_returns_receipt_and_witness() {
    let r = rig().await;
    r.m.open_session(s(1), a("a"), Some(bid("x"))).await.unwrap();
    let out = r.m.delegate_session(DelegationRequest::new(s(1), a("a"), a("b"), bid("x"))).await.unwrap();
    assert_eq!((out.receipt.from, out.receipt.to, out.receipt.generation), (a("a"), a("b"), 2));
    assert_eq!(out.receipt.at_ms, 1_700_000_000_000);
    assert_eq!(out.receipt.context, a("a").default_context());
    assert_eq!(out.witness.boundary, LinkBoundary::for_bundle(&bid("x")));
    assert_eq!(out.witness.moved_fragments(), vec!["bundle:x".to_owned()]);
    assert_eq!(out.receipt.sequence, journal_len(r.journal.as_ref()).await);
    assert!(r.m.footprint(&a("b")).delegated_in.contains(&s(1)));
    assert_eq!(r.m.footprint_summary(&a("b")), out.receipt.to_after);
    assert_eq!(r.m.footprint_summary(&a("b")), r.m.footprint(&a("b")).summary());
}

#[tokio::test]
async fn every_rule_error_is_typed() {
    let r = rig().await;
    r.m.open_session(s(1), a("a"), None).await.unwrap();
    assert!(matches!(
        r.m.register_bundle(ComposedBundle::new(bid("x"))).await,
        Err(ManagerError::Rejected(CommandError::BundleAlreadyRegistered { .. }))
    ));
    assert!(matches!(
        r.m.link_bundles(bid("x"), bid("nope"), bid("y")).await,
        Err(ManagerError::Rejected(CommandError::UnknownBundle { .. }))
    ));
    assert!(matches!(
        r.m.open_session(s(1), a("b"), None).await,
        Err(ManagerError::Rejected(CommandError::SessionAlreadyHeld { .. }))
    ));
    assert!(matches!(
        r.m.delegate_session(DelegationRequest::new(s(1), a("a"), a("b"), bid("nope"))).await,
        Err(ManagerError::Rejected(CommandError::UnknownBundle { .. }))
    ));
    let req = DelegationRequest::new(s(1), a("a"), a("b"), bid("x"));
    r.m.register_bundle(ComposedBundle::new(bid("other"))).await.unwrap();
    assert!(matches!(
        r.m.delegate_session(req.clone().with_boundary(LinkBoundary::for_bundle(&bid("other")))).await,
        Err(ManagerError::Rejected(CommandError::BoundaryBundleMismatch { .. }))
    ));
    let wide = LinkBoundary { bundle: bid("x"), scope: CapabilityScope::WholeSession };
    assert!(matches!(
        r.m.delegate_session(req.clone().with_boundary(wide)).await,
        Err(ManagerError::Rejected(CommandError::BoundaryScopeMismatch { .. }))
    ));
    assert!(matches!(
        r.m.delegate_session(DelegationRequest::new(s(1), a("c"), a("b"), bid("x"))).await,
        Err(ManagerError::Rejected(CommandError::NotActiveHolder { .. }))
    ));
    assert!(matches!(
        r.m.close_session(s(1), a("c")).await,
        Err(ManagerError::Rejected(CommandError::NotActiveHolder { .. }))
    ));
    r.clock.fail_next(1);
    assert!(matches!(r.m.delegate_session(req.clone()).await, Err(ManagerError::Clock(_))));
    r.journal.fail_nth_commit(1);
    assert!(matches!(
        r.m.delegate_session(req.clone()).await,
        Err(ManagerError::Persist { operation: "delegation", .. })
    ));
    // After all those refusals the session is where it was, and the next try works.
    assert_eq!(r.m.session(&s(1)).unwrap().holder, a("a"));
    r.m.delegate_session(req).await.unwrap();
    assert!(r.m.verify_coherence().await.is_coherent());
}

/// Only a delegation reads the clock: a failing clock refuses delegations and nothing else,
/// and the commands before one do not use up the clock's failure.
#[tokio::test]
async fn only_delegations_read_the_clock() {
    let r = rig().await;
    r.clock.fail_next(1);
    r.m.open_session(s(1), a("a"), Some(bid("x"))).await.unwrap();
    r.m.register_bundle(ComposedBundle::new(bid("y"))).await.unwrap();
    r.m.close_session(s(1), a("a")).await.unwrap();
    r.m.open_session(s(2), a("a"), Some(bid("x"))).await.unwrap();
    let req = DelegationRequest::new(s(2), a("a"), a("b"), bid("x"));
    assert!(matches!(r.m.delegate_session(req.clone()).await, Err(ManagerError::Clock(_))));
    r.m.delegate_session(req).await.unwrap();
}

#[tokio::test]
async fn links_and_authority_summaries_come_from_the_applied_state() {
    let r = rig().await;
    assert!(r.m.links().is_empty());
    r.m.register_bundle(ComposedBundle::new(bid("p")).with_export("i")).await.unwrap();
    r.m.register_bundle(ComposedBundle::new(bid("q")).with_import("i")).await.unwrap();
    r.m.link_bundles(bid("p"), bid("q"), bid("pq")).await.unwrap();
    let links = r.m.links();
    assert_eq!(links.len(), 1);
    assert_eq!((&links[0].0, &links[0].1.left, &links[0].1.right), (&bid("pq"), &bid("p"), &bid("q")));

    r.m.open_session(s(1), a("a"), None).await.unwrap();
    r.m.open_session(s(2), a("a"), None).await.unwrap();
    r.m.delegate_session(DelegationRequest::new(s(2), a("a"), a("b"), bid("pq"))).await.unwrap();
    let summaries = r.m.authority_summaries();
    let (sa, sb) = (r.m.footprint_summary(&a("a")), r.m.footprint_summary(&a("b")));
    assert_eq!(summaries, vec![(a("a"), sa), (a("b"), sb)], "in the order the state first saw them");
    assert_eq!((sa.native, sa.delegated_out, sb.delegated_in), (1, 1, 1));
    let report = r.m.verify_coherence().await;
    assert!(report.is_coherent(), "{report:?}");
    assert_eq!(report.sessions_checked, 2, "the audit examined every session");
    assert_eq!(r.m.node(), None, "no shared registry, so no node name");
}

#[tokio::test]
async fn capabilities_fail_closed_before_anything_is_done() {
    let r = rig_with(StaticCapabilities::from_pairs([("reconfiguration", false)])).await;
    r.m.open_session(s(1), a("a"), None).await.unwrap();
    let head = journal_len(r.journal.as_ref()).await;
    let err = r.m.delegate_session(DelegationRequest::new(s(1), a("a"), a("b"), bid("x"))).await.unwrap_err();
    match &err {
        ManagerError::MissingCapability { operation, required, .. } => {
            assert_eq!(*operation, "delegate_session");
            assert_eq!(required.len(), 3);
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("delegate_session"), "{err}");
    assert!(matches!(
        r.m.link_bundles(bid("x"), bid("x"), bid("y")).await,
        Err(ManagerError::MissingCapability { operation: "link_bundles", .. })
    ));
    assert_eq!(journal_len(r.journal.as_ref()).await, head, "nothing was written");
    assert_eq!(r.m.session(&s(1)).unwrap().holder, a("a"));
}

async fn live(r: &Rig, n: u128, who: &str, label: &str) -> OwnedSession {
    r.m.open_session(s(n), a(who), Some(bid("x"))).await.unwrap();
    r.m.attach_owner(s(n), owner(label), LinkBoundary::for_bundle(&bid("x"))).await.unwrap()
}

#[tokio::test]
async fn handoff_chain_a_b_c_a_makes_every_old_handle_stale() {
    let r = rig().await;
    let boundary = LinkBoundary::for_bundle(&bid("x"));
    let mut handle = live(&r, 1, "a", "owner-a").await;
    let mut stale: Vec<OwnedSession> = Vec::new();
    let hops = [("a", "b", "owner-b"), ("b", "c", "owner-c"), ("c", "a", "owner-a2")];
    for (i, (from, to, label)) in hops.iter().enumerate() {
        assert!(r.m.check_ingress(&handle.capability, &boundary).is_ok());
        let out =
            r.m.delegate_active_session(
                &handle,
                DelegationRequest::new(s(1), a(from), a(to), bid("x")),
                owner(label),
            )
            .await
            .unwrap();
        assert_eq!(out.ownership.from_generation + 1, out.ownership.to_generation);
        assert_eq!(out.ownership.to_generation, 2 + i as u64);
        assert_eq!(out.owned.capability.generation, out.delegation.receipt.generation);
        assert_eq!(r.m.fragment_owner(s(1), "bundle:x").unwrap(), owner(label));
        stale.push(handle);
        handle = out.owned;
        for old in &stale {
            assert!(matches!(
                r.m.check_ingress(&old.capability, &boundary),
                Err(OwnershipError::StaleOwner { .. })
            ));
            // A stale handle cannot hand the session off either.
            let err =
                r.m.delegate_active_session(
                    old,
                    DelegationRequest::new(s(1), a(to), a(from), bid("x")),
                    owner("thief"),
                )
                .await
                .unwrap_err();
            assert!(matches!(err, ManagerError::Ownership(OwnershipError::StaleOwner { .. })), "{err:?}");
        }
    }
    assert_eq!(r.m.session(&s(1)).unwrap().holder, a("a"));
    assert!(r.m.verify_coherence().await.is_coherent());
}

#[tokio::test]
async fn ingress_rejects_other_sessions_and_boundaries_outside_scope() {
    let r = rig().await;
    let h1 = live(&r, 1, "a", "o1").await;
    let _h2 = live(&r, 2, "a", "o2").await;
    assert!(matches!(
        r.m.check_fragment(s(2), &h1.capability, "bundle:x"),
        Err(OwnershipError::WrongSession { .. })
    ));
    let outside = LinkBoundary { bundle: bid("x"), scope: CapabilityScope::WholeSession };
    assert!(matches!(r.m.check_ingress(&h1.capability, &outside), Err(OwnershipError::OutsideScope { .. })));
    // A fragment-scoped owner cannot hand off more than it holds.
    let err =
        r.m.delegate_active_session(
            &h1,
            DelegationRequest::new(s(1), a("a"), a("b"), bid("x"))
                .with_scope(CapabilityScope::WholeSession)
                .with_boundary(outside),
            owner("o3"),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ManagerError::Ownership(OwnershipError::ScopeWidening { .. })), "{err:?}");
    let err =
        r.m.delegate_active_session(&h1, DelegationRequest::new(s(2), a("a"), a("b"), bid("x")), owner("o3"))
            .await
            .unwrap_err();
    assert!(matches!(err, ManagerError::SessionMismatch { .. }));
}

/// Everything a failed handoff must leave exactly as it was.
fn snapshot(r: &Rig, n: u128) -> (SessionRecord, OwnedSession, Vec<Option<OwnerLabel>>, SessionFootprint) {
    (
        r.m.session(&s(n)).unwrap(),
        r.m.live_owner(&s(n)).unwrap(),
        vec![r.m.fragment_owner(s(n), "bundle:x")],
        r.m.footprint(&a("a")),
    )
}

#[tokio::test]
async fn failed_handoffs_roll_back_exactly() {
    let r = rig().await;
    let h = live(&r, 1, "a", "o1").await;
    let req = DelegationRequest::new(s(1), a("a"), a("b"), bid("x"));
    let before = snapshot(&r, 1);

    r.journal.fail_nth_commit(1);
    let err = r.m.delegate_active_session(&h, req.clone(), owner("o2")).await.unwrap_err();
    assert!(
        matches!(err, ManagerError::Reconfiguration(ref e) if matches!(**e, ManagerError::Persist { .. })),
        "{err:?}"
    );
    assert_eq!(snapshot(&r, 1), before, "journal failure");

    r.clock.fail_next(1);
    let err = r.m.delegate_active_session(&h, req.clone(), owner("o2")).await.unwrap_err();
    assert!(matches!(err, ManagerError::Clock(_)), "{err:?}");
    assert_eq!(snapshot(&r, 1), before, "clock failure");

    let err =
        r.m.delegate_active_session(&h, DelegationRequest::new(s(1), a("a"), a("a"), bid("x")), owner("o2"))
            .await
            .unwrap_err();
    assert!(matches!(err, ManagerError::Reconfiguration(_)), "{err:?}");
    assert_eq!(snapshot(&r, 1), before, "core refusal");
    assert!(r.m.check_ingress(&h.capability, &LinkBoundary::for_bundle(&bid("x"))).is_ok());

    let denied = rig_with(StaticCapabilities::full().deny_reconfiguration()).await;
    let hd = live(&denied, 1, "a", "o1").await;
    let before = snapshot(&denied, 1);
    let err = denied.m.delegate_active_session(&hd, req.clone(), owner("o2")).await.unwrap_err();
    assert!(matches!(err, ManagerError::MissingCapability { operation: "delegate_active_session", .. }));
    assert_eq!(snapshot(&denied, 1), before, "capability denied");

    // And it still works afterwards.
    r.m.delegate_active_session(&h, req, owner("o2")).await.unwrap();
}

async fn replayed(j: &dyn JournalEffects) -> State {
    // Every test journal here fits in one read.
    let recs = j.read(1, 100_000).await.unwrap();
    State::replay(recs.iter().map(|r| (r.sequence, &r.fact)))
}

#[tokio::test]
async fn ambiguous_commits_are_resolved_by_reading_the_journal_back() {
    let r = rig().await;
    for n in 1..=3 {
        r.m.open_session(s(n), a("a"), None).await.unwrap();
    }
    // Written, but reported ambiguous: the read-back finds it, so the caller gets `Ok`
    // and the change is in the journal exactly once.
    r.journal.ambiguous_nth_commit(1);
    let head = journal_len(r.journal.as_ref()).await;
    let out = r.m.delegate_session(DelegationRequest::new(s(1), a("a"), a("b"), bid("x"))).await.unwrap();
    assert_eq!(out.receipt.sequence, head + 1);
    assert_eq!(journal_len(r.journal.as_ref()).await, head + 1);
    assert_eq!(r.m.state_snapshot(), replayed(r.journal.as_ref()).await);

    // Lost, and reported ambiguous: the read-back does not find it: `Persist`, nothing
    // applied.
    r.journal.fault_nth_commit(1, reconf_effects::CommitFault::LostButReportedAmbiguous);
    let err = r.m.delegate_session(DelegationRequest::new(s(2), a("a"), a("b"), bid("x"))).await.unwrap_err();
    assert!(matches!(err, ManagerError::Persist { source: JournalError::Ambiguous { .. }, .. }), "{err:?}");
    assert_eq!(r.m.session(&s(2)).unwrap().holder, a("a"));
    assert_eq!(r.m.state_snapshot(), replayed(r.journal.as_ref()).await);

    // Written, reported ambiguous, and the read-back fails too: the caller is told
    // `Persist` (nothing confirmed it), and the manager's state follows the journal, which
    // holds the change: the documented contract of `ManagerError::Persist`.
    r.journal.ambiguous_nth_commit(1);
    r.journal.fail_next_reads(1);
    let err = r.m.delegate_session(DelegationRequest::new(s(3), a("a"), a("b"), bid("x"))).await.unwrap_err();
    assert!(matches!(err, ManagerError::Persist { .. }), "{err:?}");
    assert_eq!(r.m.session(&s(3)).unwrap().holder, a("b"), "the journal holds it, so the state does");
    assert_eq!(r.m.state_snapshot(), replayed(r.journal.as_ref()).await);
}

#[tokio::test]
async fn an_ambiguous_commit_is_not_taken_for_another_writers_records_at_its_sequences() {
    // The read-back must match the facts, not only the sequences: here the manager's write
    // is lost (reported ambiguous) and another writer's record sits right after the head
    // the manager expected. Reading that back as "landed" would tell the caller `Ok` for a
    // change the journal does not hold.
    let r = rig().await;
    r.m.open_session(s(1), a("a"), None).await.unwrap();
    let head = journal_len(r.journal.as_ref()).await;
    let theirs =
        Fact::new(Change::SessionOpened { session: s(9), authority: a("z"), bundle: None, generation: 1 });
    r.journal.commit(vec![theirs], reconf_effects::ExpectedHead::At(head)).await.unwrap();
    r.journal.fault_nth_commit(1, reconf_effects::CommitFault::LostButReportedAmbiguous);
    let err = r.m.delegate_session(DelegationRequest::new(s(1), a("a"), a("b"), bid("x"))).await.unwrap_err();
    assert!(matches!(err, ManagerError::Persist { source: JournalError::Ambiguous { .. }, .. }), "{err:?}");
    assert_eq!(r.m.session(&s(1)).unwrap().holder, a("a"), "the delegation is not in the journal");
    assert_eq!(r.m.session(&s(9)).unwrap().holder, a("z"), "the other writer's record is followed");
    assert_eq!(r.m.state_snapshot(), replayed(r.journal.as_ref()).await);
    // The same delegation, asked again, lands.
    r.m.delegate_session(DelegationRequest::new(s(1), a("a"), a("b"), bid("x"))).await.unwrap();
    assert_eq!(r.m.state_snapshot(), replayed(r.journal.as_ref()).await);
}

#[tokio::test]
async fn open_and_catch_up_replay_journals_longer_than_one_read_page() {
    // Replay reads the journal a page (4096 records) at a time: a journal of several pages
    // must come back whole at open, and so must another writer's several pages at the
    // catch-up after a conflict.
    let write = |journal: Arc<MemoryJournal>, range: std::ops::Range<u128>| async move {
        let facts: Vec<Fact> = range.map(opened).collect();
        for chunk in facts.chunks(1000) {
            journal.commit(chunk.to_vec(), reconf_effects::ExpectedHead::Any).await.unwrap();
        }
    };
    let journal = Arc::new(MemoryJournal::new());
    write(journal.clone(), 0..9_000).await;
    let m = ManagerBuilder::new().journal_arc(journal.clone()).without_manifests().open().await.unwrap();
    assert_eq!(m.state_snapshot().stats().sessions, 9_000);
    assert_eq!(m.state_snapshot(), replayed(journal.as_ref()).await);

    // Another writer appends two more pages and a bit; the manager's next write conflicts,
    // catches up across them and lands after them.
    write(journal.clone(), 9_000..18_500).await;
    m.open_session(s(100_000), a("m"), None).await.unwrap();
    let state = m.state_snapshot();
    assert_eq!(state.stats().sessions, 18_501);
    assert_eq!(state, replayed(journal.as_ref()).await);
}

#[tokio::test]
async fn a_snapshot_whose_state_is_not_at_its_sequence_is_not_used() {
    // A snapshot stored at sequence 5 whose state says head 8 (and holds other sessions)
    // was not taken from this journal's first 5 records: recovery must replay the journal
    // from the start rather than build on it.
    let journal = Arc::new(MemoryJournal::new());
    journal.commit((0..10).map(opened).collect(), reconf_effects::ExpectedHead::Any).await.unwrap();
    let foreign: Vec<Fact> = (100..108).map(opened).collect();
    let foreign = State::replay(foreign.iter().enumerate().map(|(i, f)| (i as u64 + 1, f)));
    assert_eq!(foreign.head(), 8);
    journal.write_snapshot(5, postcard::to_allocvec(&foreign).unwrap()).await.unwrap();

    let m = ManagerBuilder::new().journal_arc(journal.clone()).without_manifests().open().await.unwrap();
    let report = m.recovery_report();
    assert_eq!(report.snapshot_sequence, None, "{report:?}");
    assert_eq!(report.records_replayed, 10);
    assert_eq!(m.state_snapshot(), replayed(journal.as_ref()).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_delegations_keep_one_holder_and_journal_each_success_once() {
    let r = rig().await;
    const SESSIONS: u128 = 8;
    const TASKS: usize = 64;
    let authorities: Vec<AuthorityId> = (0..8).map(|i| a(&format!("auth-{i}"))).collect();
    for n in 0..SESSIONS {
        r.m.open_session(s(n), authorities[0], Some(bid("x"))).await.unwrap();
    }
    let head_before = journal_len(r.journal.as_ref()).await;
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let m = r.m.clone();
        let auths = authorities.clone();
        tasks.push(tokio::spawn(async move {
            let mut wins = Vec::new();
            for round in 0..20u128 {
                let session = s((t as u128 + round) % SESSIONS);
                // Everyone guesses a holder; only the true one succeeds.
                let from = m.session(&session).map(|r| r.holder).unwrap_or(auths[0]);
                let to = auths[(t + round as usize) % auths.len()];
                if from == to {
                    continue;
                }
                if let Ok(out) = m.delegate_session(DelegationRequest::new(session, from, to, bid("x"))).await
                {
                    wins.push(out.receipt.sequence);
                }
                // One holder per session at every moment anyone looks.
                {
                    let st = m.state_snapshot();
                    let holders: usize = auths
                        .iter()
                        .filter(|x| {
                            st.footprint(x).native.contains(&session)
                                || st.footprint(x).delegated_in.contains(&session)
                        })
                        .count();
                    assert_eq!(holders, 1);
                }
            }
            wins
        }));
    }
    let mut wins = Vec::new();
    for t in tasks {
        wins.extend(t.await.unwrap());
    }
    let records = r.journal.read(head_before + 1, 1_000_000).await.unwrap();
    let delegations: Vec<u64> = records
        .iter()
        .filter(|rec| matches!(rec.fact.change, Change::SessionDelegated(_)))
        .map(|rec| rec.sequence)
        .collect();
    let unique: BTreeSet<u64> = wins.iter().copied().collect();
    assert_eq!(unique.len(), wins.len(), "two callers acknowledged with the same sequence");
    assert_eq!(unique, delegations.iter().copied().collect(), "every success is journaled exactly once");
    assert!(!wins.is_empty());
    assert!(r.m.verify_coherence().await.is_coherent());
}

#[tokio::test]
async fn waiting_commands_share_one_journal_commit() {
    let r = rig().await;
    let before = r.m.stats().actor;
    let tasks: Vec<_> = (0..32u128)
        .map(|n| {
            let m = r.m.clone();
            tokio::spawn(async move { m.open_session(s(1000 + n), a("a"), None).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let after = r.m.stats().actor;
    assert_eq!(after.facts - before.facts, 32);
    // On one thread every task enqueues before the actor runs: a handful of commits at most.
    assert!(after.commits - before.commits <= 4, "{before:?} -> {after:?}");
}

#[tokio::test]
async fn restart_rebuilds_identical_state_from_journal_and_snapshot() {
    let journal = Arc::new(MemoryJournal::new());
    let open = |snap: Option<u64>| {
        let j: Arc<dyn JournalEffects> = journal.clone();
        async move {
            ManagerBuilder::new()
                .journal_arc(j)
                .without_manifests()
                .snapshot_interval(snap)
                .open()
                .await
                .unwrap()
        }
    };
    let m = open(Some(10)).await;
    m.register_bundle(ComposedBundle::new(bid("p")).with_export("i")).await.unwrap();
    m.register_bundle(ComposedBundle::new(bid("q")).with_import("i")).await.unwrap();
    m.link_bundles(bid("p"), bid("q"), bid("pq")).await.unwrap();
    for n in 0..25 {
        m.open_session(s(n), a("a"), None).await.unwrap();
        if n % 2 == 0 {
            m.delegate_session(DelegationRequest::new(s(n), a("a"), a("b"), bid("pq"))).await.unwrap();
        }
    }
    m.close_session(s(3), a("a")).await.unwrap();
    let before = m.state_snapshot();
    m.shutdown().await.unwrap();
    // Snapshots are written in the background; shutdown waits for the one in flight.
    assert!(m.stats().actor.snapshots >= 1);

    let again = open(Some(10)).await;
    let report = again.recovery_report().clone();
    assert!(report.snapshot_sequence.is_some(), "{report:?}");
    assert_eq!(report.head, before.head());
    assert!(report.coherence.is_coherent());
    assert_eq!(again.state_snapshot(), before);
    for who in ["a", "b"] {
        assert_eq!(again.footprint(&a(who)), before.footprint(&a(who)));
    }
    assert_eq!(again.bundles(), before.bundles().cloned().collect::<Vec<_>>());
    assert_eq!(again.state_snapshot().links(), before.links());
    // Without snapshots the full replay gives the same state.
    again.shutdown().await.unwrap();
    let full = ManagerBuilder::new().journal(journal.fork()).without_manifests().open().await.unwrap();
    assert_eq!(full.state_snapshot(), before);
}

/// A snapshot writes the whole state, so once the state holds more than twice the
/// interval in sessions, one is written every half-its-sessions records instead: a state
/// that only grows is snapshotted at doubling heads, and a reopen still replays at most
/// half its sessions in records.
#[tokio::test]
async fn a_growing_state_is_snapshotted_at_doubling_heads_not_every_interval() {
    let journal = Arc::new(MemoryJournal::new());
    let m = ManagerBuilder::new()
        .journal_arc(journal.clone())
        .without_manifests()
        .snapshot_interval(Some(2))
        .open()
        .await
        .unwrap();
    m.register_bundle(ComposedBundle::new(bid("x"))).await.unwrap();
    for n in 0..200 {
        m.open_session(s(n), a("a"), None).await.unwrap();
        // Gives the snapshot task (encoded on the blocking pool) time to finish, so none is
        // skipped for one still being written.
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    m.shutdown().await.unwrap();
    // Every 2 records would be 100; doubling heads from 2 to 201 are 8.
    let written = m.stats().actor.snapshots;
    assert!((4..=12).contains(&written), "{written} snapshots");
    let again = ManagerBuilder::new().journal_arc(journal).without_manifests().open().await.unwrap();
    let report = again.recovery_report();
    assert!(report.snapshot_sequence.is_some(), "{report:?}");
    assert!(report.records_replayed <= 100, "{report:?}");
    assert_eq!(again.stats().state.sessions, 200);
}

#[tokio::test]
async fn builder_rejects_bad_configuration() {
    assert!(matches!(ManagerBuilder::new().open().await, Err(ManagerError::Config(_))));
    assert!(matches!(
        ManagerBuilder::new().memory_journal().mailbox_capacity(0).open().await,
        Err(ManagerError::Config(_))
    ));
    assert!(matches!(
        ManagerBuilder::new().memory_journal().snapshot_interval(Some(0)).open().await,
        Err(ManagerError::Config(_))
    ));
}

#[tokio::test]
async fn debug_output_shows_the_configuration() {
    let builder = ManagerBuilder::new().memory_journal().mailbox_capacity(7).snapshot_interval(None);
    let shown = format!("{builder:?}");
    for part in ["ManagerBuilder", "journal: true", "mailbox_capacity: 7", "snapshot_interval: None"] {
        assert!(shown.contains(part), "{part} missing from {shown}");
    }
    let m = builder.without_manifests().open().await.unwrap();
    let shown = format!("{m:?}");
    assert!(shown.starts_with("ReconfigurationManager") && shown.contains("mailbox_capacity: 7"), "{shown}");
}

#[tokio::test]
async fn closing_a_live_session_detaches_its_owner() {
    let r = rig().await;
    let h = live(&r, 1, "a", "o1").await;
    r.m.close_session(s(1), a("a")).await.unwrap();
    assert!(r.m.live_owner(&s(1)).is_none());
    assert!(matches!(r.m.check_ingress(&h.capability, &h.boundary), Err(OwnershipError::NotLive { .. })));
    // A plain delegation of a live session also invalidates the live owner.
    let h = live(&r, 2, "a", "o1").await;
    r.m.delegate_session(DelegationRequest::new(s(2), a("a"), a("b"), bid("x"))).await.unwrap();
    assert!(r.m.check_ingress(&h.capability, &h.boundary).is_err());
}

#[tokio::test]
async fn journal_audit_replays_everything_and_checks_the_snapshot() {
    let journal = Arc::new(MemoryJournal::new());
    let m = ManagerBuilder::new()
        .journal_arc(journal.clone())
        .without_manifests()
        .snapshot_interval(Some(5))
        .open()
        .await
        .unwrap();
    m.register_bundle(ComposedBundle::new(bid("x"))).await.unwrap();
    for n in 0..12 {
        m.open_session(s(n), a("a"), None).await.unwrap();
    }
    // Snapshots are written in the background; shutdown waits for them.
    m.shutdown().await.unwrap();
    let audit = audit_journal(journal.as_ref()).await.unwrap();
    assert_eq!(audit.records, 13);
    assert!(audit.snapshot_checked.is_some());
    assert!(audit.coherence.is_coherent());
    assert_eq!(m.state_snapshot(), audit.state);
    // A snapshot that disagrees with the journal is named.
    let bogus = postcard::to_allocvec(&State::new()).unwrap();
    journal.write_snapshot(13, bogus).await.unwrap();
    assert!(matches!(
        audit_journal(journal.as_ref()).await,
        Err(ManagerError::Recovery(RecoveryError::SnapshotMismatch { sequence: 13 }))
    ));
    journal.write_snapshot(13, vec![0xff; 3]).await.unwrap();
    assert!(matches!(
        audit_journal(journal.as_ref()).await,
        Err(ManagerError::Recovery(RecoveryError::SnapshotUndecodable { sequence: 13, .. }))
    ));
}

/// Two managers on one journal. A writer checks each batch against its state plus what
/// its own batches still in flight will change; once those are applied, what they said
/// must not outlive them: after the other manager moves a session this one delegated,
/// this one (caught up) refuses a delegation from the holder it last wrote, and writes
/// nothing.
#[tokio::test]
async fn a_writer_checks_against_other_writers_records_not_its_own_earlier_batches() {
    let journal = Arc::new(MemoryJournal::new());
    let open = || ManagerBuilder::new().journal_arc(journal.clone()).without_manifests().open();
    let (m1, m2) = (open().await.unwrap(), open().await.unwrap());
    m1.register_bundle(ComposedBundle::new(bid("x"))).await.unwrap();
    m1.open_session(s(1), a("a"), Some(bid("x"))).await.unwrap();
    m1.delegate_session(DelegationRequest::new(s(1), a("a"), a("b"), bid("x"))).await.unwrap();
    m2.sync().await.unwrap();
    m2.delegate_session(DelegationRequest::new(s(1), a("b"), a("c"), bid("x"))).await.unwrap();
    let head = m1.sync().await.unwrap();
    assert_eq!(m1.session(&s(1)).unwrap().holder, a("c"));
    let refused = m1.delegate_session(DelegationRequest::new(s(1), a("b"), a("d"), bid("x"))).await;
    let e = refused.expect_err("b no longer holds the session");
    assert_eq!(e.kind(), "not_active_holder", "{e}");
    assert_eq!(journal_len(journal.as_ref()).await, head, "nothing was written");
    // The true holder may go on from either manager.
    m1.delegate_session(DelegationRequest::new(s(1), a("c"), a("d"), bid("x"))).await.unwrap();
    m2.sync().await.unwrap();
    assert_eq!(m2.state_snapshot(), replayed(journal.as_ref()).await);
    assert_eq!(m1.state_snapshot(), m2.state_snapshot());
}

/// On an empty journal the first batch may write nothing at all (every command in it
/// refused): it is answered without a commit, and the manager goes on from head 0.
#[tokio::test]
async fn a_first_batch_of_refused_commands_on_an_empty_journal_writes_nothing() {
    let journal = Arc::new(MemoryJournal::new());
    let m = ManagerBuilder::new().journal_arc(journal.clone()).without_manifests().open().await.unwrap();
    let e = m.delegate_session(DelegationRequest::new(s(1), a("a"), a("b"), bid("x"))).await.unwrap_err();
    assert_eq!(e.kind(), "unknown_bundle", "{e}");
    assert_eq!(journal_len(journal.as_ref()).await, 0);
    m.register_bundle(ComposedBundle::new(bid("x"))).await.unwrap();
    m.open_session(s(1), a("a"), Some(bid("x"))).await.unwrap();
    assert_eq!(m.sync().await.unwrap(), 2);
    assert_eq!(m.state_snapshot(), replayed(journal.as_ref()).await);
}

/// `max_authorities`: a command naming one authority too many is refused with the core's
/// error and writes nothing; known authorities stay usable; the limit holds again after a
/// reopen, and a limit of 0 is refused at open.
#[tokio::test]
async fn the_authority_limit_refuses_new_authorities_past_it_and_survives_a_reopen() {
    let journal = MemoryJournal::new();
    let open = |journal: &MemoryJournal| {
        ManagerBuilder::new().journal(journal.clone()).max_authorities(2).without_manifests().open()
    };
    let m = open(&journal).await.unwrap();
    m.open_session(s(1), a("a"), None).await.unwrap();
    m.open_session(s(2), a("b"), None).await.unwrap();
    let head = journal_len(&journal).await;
    let refused = m.open_session(s(3), a("c"), None).await;
    assert!(
        matches!(refused, Err(ManagerError::Rejected(CommandError::TooManyAuthorities { max: 2 }))),
        "{refused:?}"
    );
    assert_eq!(journal_len(&journal).await, head, "nothing written");
    m.open_session(s(3), a("a"), None).await.unwrap();
    m.shutdown().await.unwrap();
    let m = open(&journal).await.unwrap();
    let refused = m.open_session(s(4), a("d"), None).await;
    assert!(
        matches!(refused, Err(ManagerError::Rejected(CommandError::TooManyAuthorities { .. }))),
        "{refused:?}"
    );
    let zero =
        ManagerBuilder::new().journal(journal.clone()).max_authorities(0).without_manifests().open().await;
    assert!(matches!(zero, Err(ManagerError::Config(_))), "{:?}", zero.err());
}
