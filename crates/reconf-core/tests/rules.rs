//! One test per rule and per error of the core state machine.

// Test and bench code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use reconf_core::*;

fn a(l: &str) -> AuthorityId {
    AuthorityId::from_label(l)
}
fn s(n: u128) -> SessionId {
    SessionId::from_u128(n)
}
fn bid(x: &str) -> BundleId {
    BundleId::new(x).unwrap()
}

/// A state plus the journal it was built from, so every test can also check replay.
struct Harness {
    state: State,
    facts: Vec<Fact>,
}

impl Harness {
    fn new() -> Self {
        let mut h = Self { state: State::new(), facts: Vec::new() };
        h.ok(Command::RegisterBundle(ComposedBundle::new(bid("x")).with_export("i").with_import("i")));
        h
    }

    fn run(&mut self, cmd: Command) -> Result<Applied, CommandError> {
        let before = self.state.clone();
        match self.state.check(&cmd, 42) {
            Ok(fact) => {
                self.facts.push(fact.clone());
                Ok(self.state.apply(self.facts.len() as u64, &fact))
            }
            Err(e) => {
                assert_eq!(self.state, before, "a rejected command must not change the state");
                Err(e)
            }
        }
    }

    fn ok(&mut self, cmd: Command) -> Applied {
        self.run(cmd).unwrap()
    }

    fn open(&mut self, n: u128, who: &str) {
        self.ok(Command::OpenSession { session: s(n), authority: a(who), bundle: None });
    }

    fn delegate(&mut self, n: u128, from: &str, to: &str) -> Result<DelegationReceipt, CommandError> {
        match self.run(Command::Delegate(Delegation::new(s(n), a(from), a(to), bid("x"))))? {
            Applied::SessionDelegated(r) => Ok(*r),
            other => panic!("unexpected {other:?}"),
        }
    }

    fn assert_coherent_and_replayable(&self) {
        let report = self.state.verify_coherence();
        assert!(report.is_coherent(), "{:#?}", report.violations);
        let replayed = State::replay(self.facts.iter().enumerate().map(|(i, f)| (i as u64 + 1, f)));
        assert_eq!(replayed, self.state);
    }
}

#[test]
fn duplicate_bundle_is_rejected() {
    let mut h = Harness::new();
    let err = h.run(Command::RegisterBundle(ComposedBundle::new(bid("x")))).unwrap_err();
    assert_eq!(err, CommandError::BundleAlreadyRegistered { bundle: bid("x") });
}

fn link(h: &mut Harness, l: &str, r: &str, into: &str) -> Result<Applied, CommandError> {
    h.run(Command::LinkBundles { left: bid(l), right: bid(r), linked: bid(into) })
}

#[test]
fn linking_checks_each_rule_with_its_own_error() {
    let mut h = Harness::new();
    h.ok(Command::RegisterBundle(
        ComposedBundle::new(bid("p"))
            .with_protocol("proto.a")
            .with_protocol("proto.b")
            .with_export("p.out")
            .with_import("q.out")
            .with_session(s(1)),
    ));
    h.ok(Command::RegisterBundle(
        ComposedBundle::new(bid("q"))
            .with_protocol("proto.b")
            .with_protocol("proto.c")
            .with_export("q.out")
            .with_import("p.out")
            .with_session(s(2)),
    ));
    h.ok(Command::RegisterBundle(ComposedBundle::new(bid("lonely")).with_import("nobody.exports.this")));
    h.ok(Command::RegisterBundle(
        ComposedBundle::new(bid("overlap")).with_export("q.out").with_session(s(1)),
    ));

    assert_eq!(
        link(&mut h, "p", "missing", "pq").unwrap_err(),
        CommandError::UnknownBundle { bundle: bid("missing") }
    );
    assert_eq!(link(&mut h, "p", "p", "pq").unwrap_err(), CommandError::SelfLink { bundle: bid("p") });
    assert_eq!(link(&mut h, "p", "q", "x").unwrap_err(), CommandError::LinkedIdTaken { linked: bid("x") });
    assert!(matches!(
        link(&mut h, "p", "lonely", "pl").unwrap_err(),
        CommandError::IncompatibleInterfaces { left_missing, right_missing, .. }
            if left_missing == vec!["q.out".to_owned()] && right_missing == vec!["nobody.exports.this".to_owned()]
    ));
    assert!(matches!(
        link(&mut h, "p", "overlap", "po").unwrap_err(),
        CommandError::OverlappingSessions { first, .. } if first == s(1)
    ));

    assert_eq!(link(&mut h, "p", "q", "pq").unwrap(), Applied::BundlesLinked { linked: bid("pq") });
    let pq = h.state.bundle(&bid("pq")).unwrap();
    assert_eq!(pq.protocol_ids, vec!["proto.a", "proto.b", "proto.c"]);
    assert_eq!(pq.exports.len(), 2);
    assert_eq!(pq.sessions.len(), 2);
    assert_eq!(h.state.links()[&bid("pq")], LinkRecord { left: bid("p"), right: bid("q") });
    assert_eq!(link(&mut h, "p", "q", "pq").unwrap_err(), CommandError::LinkedIdTaken { linked: bid("pq") });
    h.assert_coherent_and_replayable();
}

#[test]
fn open_rejects_a_session_held_elsewhere_and_an_unknown_bundle() {
    let mut h = Harness::new();
    h.open(1, "a");
    let err = h.run(Command::OpenSession { session: s(1), authority: a("b"), bundle: None }).unwrap_err();
    assert_eq!(err, CommandError::SessionAlreadyHeld { session: s(1), holder: a("a") });
    let err = h
        .run(Command::OpenSession { session: s(2), authority: a("b"), bundle: Some(bid("nope")) })
        .unwrap_err();
    assert_eq!(err, CommandError::UnknownBundle { bundle: bid("nope") });
    // Also refused when the session is held by delegation.
    h.delegate(1, "a", "b").unwrap();
    let err = h.run(Command::OpenSession { session: s(1), authority: a("a"), bundle: None }).unwrap_err();
    assert_eq!(err, CommandError::SessionAlreadyHeld { session: s(1), holder: a("b") });
}

#[test]
fn delegation_errors_are_distinct() {
    let mut h = Harness::new();
    h.open(1, "a");
    assert_eq!(h.delegate(9, "a", "b").unwrap_err(), CommandError::UnknownSession { session: s(9) });
    assert_eq!(
        h.delegate(1, "a", "a").unwrap_err(),
        CommandError::SelfDelegation { session: s(1), authority: a("a") }
    );
    let err = h.run(Command::Delegate(Delegation::new(s(1), a("a"), a("b"), bid("zzz")))).unwrap_err();
    assert_eq!(err, CommandError::UnknownBundle { bundle: bid("zzz") });
    assert_eq!(
        h.delegate(1, "c", "b").unwrap_err(),
        CommandError::NotActiveHolder {
            session: s(1),
            authority: a("c"),
            holder: a("a"),
            delegated_out: false
        }
    );
    h.delegate(1, "a", "b").unwrap();
    // The reference implementation let an authority that already delegated a session out
    // delegate it again; only the active holder may.
    assert_eq!(
        h.delegate(1, "a", "c").unwrap_err(),
        CommandError::NotActiveHolder {
            session: s(1),
            authority: a("a"),
            holder: a("b"),
            delegated_out: true
        }
    );
    h.assert_coherent_and_replayable();
}

#[test]
fn boundary_and_scope_must_agree_with_the_delegation() {
    let mut h = Harness::new();
    h.ok(Command::RegisterBundle(ComposedBundle::new(bid("y"))));
    h.open(1, "a");
    let d = Delegation::new(s(1), a("a"), a("b"), bid("x"));
    let err =
        h.run(Command::Delegate(d.clone().with_boundary(LinkBoundary::for_bundle(&bid("y"))))).unwrap_err();
    assert_eq!(err, CommandError::BoundaryBundleMismatch { bundle: bid("x"), boundary: bid("y") });
    let wide = LinkBoundary { bundle: bid("x"), scope: CapabilityScope::WholeSession };
    assert!(matches!(
        h.run(Command::Delegate(d.clone().with_boundary(wide))).unwrap_err(),
        CommandError::BoundaryScopeMismatch { .. }
    ));
    assert_eq!(
        h.run(Command::Delegate(d.clone().with_scope(CapabilityScope::fragments(Vec::<String>::new()))))
            .unwrap_err(),
        CommandError::EmptyScope
    );
    let scope = CapabilityScope::fragments(["bundle:x", "extra"]);
    let ok =
        d.with_scope(scope.clone()).with_boundary(LinkBoundary { bundle: bid("x"), scope: scope.clone() });
    h.ok(Command::Delegate(ok));
    match &h.facts.last().unwrap().change {
        Change::SessionDelegated(f) => {
            assert_eq!(f.scope, scope);
            assert_eq!(f.context, a("a").default_context());
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn chain_a_b_c_a_keeps_coherence_and_cleans_previous_delegator() {
    let mut h = Harness::new();
    h.open(1, "a");
    let r1 = h.delegate(1, "a", "b").unwrap();
    assert_eq!(r1.generation, 2);
    assert!(h.state.footprint(&a("a")).delegated_out.contains(&s(1)));
    assert!(h.state.footprint(&a("b")).delegated_in.contains(&s(1)));

    let r2 = h.delegate(1, "b", "c").unwrap();
    assert_eq!(r2.generation, 3);
    assert!(h.state.footprint(&a("a")).is_empty(), "a's stale delegated-out entry must be cleaned");
    assert_eq!(h.state.footprint(&a("b")).delegated_out.len(), 1);
    assert!(h.state.footprint(&a("b")).delegated_in.is_empty());

    let r3 = h.delegate(1, "c", "a").unwrap();
    assert_eq!(r3.generation, 4);
    assert!(h.state.footprint(&a("b")).is_empty());
    assert_eq!(h.state.footprint(&a("a")).delegated_in.len(), 1);
    assert_eq!(h.state.footprint(&a("c")).delegated_out.len(), 1);
    assert_eq!(h.state.holder(&s(1)), Some(a("a")));
    let rec = h.state.session(&s(1)).unwrap();
    assert_eq!((rec.delegator, rec.class), (Some(a("c")), SessionClass::DelegatedIn));
    h.assert_coherent_and_replayable();
}

#[test]
fn receipts_carry_summaries_that_match_the_footprints() {
    let mut h = Harness::new();
    for n in 0..10 {
        h.open(n, "a");
    }
    h.open(100, "b");
    let r = h.delegate(3, "a", "b").unwrap();
    assert_eq!(r.from_before.native, 10);
    assert_eq!(r.from_after.native, 9);
    assert_eq!(r.from_after.delegated_out, 1);
    assert_eq!(r.to_before.native, 1);
    assert_eq!(r.to_after.delegated_in, 1);
    assert_eq!(r.from_after, h.state.footprint(&a("a")).summary());
    assert_eq!(r.to_after, h.state.footprint(&a("b")).summary());
    assert_eq!(r.sequence, h.facts.len() as u64);
    assert_eq!((r.at_ms, r.bundle.as_str()), (42, "x"));
}

#[test]
fn close_requires_the_active_holder_and_generation_never_resets() {
    let mut h = Harness::new();
    h.open(1, "a");
    h.delegate(1, "a", "b").unwrap();
    let err = h.run(Command::CloseSession { session: s(1), authority: a("a") }).unwrap_err();
    assert!(matches!(err, CommandError::NotActiveHolder { delegated_out: true, .. }));
    h.ok(Command::CloseSession { session: s(1), authority: a("b") });
    assert!(h.state.footprint(&a("a")).is_empty() && h.state.footprint(&a("b")).is_empty());
    assert_eq!(
        h.run(Command::CloseSession { session: s(1), authority: a("b") }).unwrap_err(),
        CommandError::UnknownSession { session: s(1) }
    );
    // Reopening continues the owner generation (2 after one delegation) instead of
    // restarting at 1, so a stale capability from before the close can never match again.
    match h.ok(Command::OpenSession { session: s(1), authority: a("c"), bundle: None }) {
        Applied::SessionOpened { generation, .. } => assert_eq!(generation, 3),
        other => panic!("{other:?}"),
    }
    h.assert_coherent_and_replayable();
}

#[test]
fn a_batch_is_checked_against_the_state_its_earlier_commands_leave() {
    let state = State::new();
    let mut c = state.checker();
    let b = ComposedBundle::new(bid("x"));
    c.check(&Command::RegisterBundle(b.clone()), 42).unwrap();
    assert!(c.check(&Command::RegisterBundle(b), 42).is_err(), "second registration in the same batch");
    c.check(&Command::OpenSession { session: s(1), authority: a("a"), bundle: Some(bid("x")) }, 42).unwrap();
    let f = c.check(&Command::Delegate(Delegation::new(s(1), a("a"), a("b"), bid("x"))), 42).unwrap();
    assert!(matches!(&f.change, Change::SessionDelegated(d) if d.generation == 2));
    c.check(&Command::Delegate(Delegation::new(s(1), a("b"), a("c"), bid("x"))), 42).unwrap();
    c.check(&Command::CloseSession { session: s(1), authority: a("c") }, 42).unwrap();
    assert!(c.check(&Command::CloseSession { session: s(1), authority: a("c") }, 42).is_err());
    // Nothing was applied to the state itself.
    assert_eq!(state, State::new());
}

#[test]
fn orphaned_delegated_out_entry_is_reported() {
    let mut fp = SessionFootprint::default();
    fp.delegated_out.insert(s(5));
    let report = audit([(a("a"), &fp)]);
    assert_eq!(
        report.violations,
        vec![Violation::DelegatedOutWithoutReceiver { session: s(5), delegator: a("a") }]
    );
}

#[test]
fn a_tampered_snapshot_is_caught_by_the_audit_or_refused() {
    let mut h = Harness::new();
    h.open(1, "a");
    h.open(2, "b");
    h.delegate(1, "a", "b").unwrap();
    let mut snap = h.state.to_snapshot();
    // Point session 1's holder at an index that does not exist.
    snap.sessions[0].1.holder = 99;
    assert!(matches!(State::from_snapshot(snap), Err(SnapshotError::BadIndex { index: 99, .. })));
    // A round trip of the real snapshot is exact.
    let json = serde_json::to_string(&h.state).unwrap();
    let back: State = serde_json::from_str(&json).unwrap();
    assert_eq!(back, h.state);
    assert_eq!(serde_json::to_string(&back).unwrap(), json, "equal states serialize to equal bytes");
    assert!(back.verify_coherence().is_coherent());
}

#[test]
fn facts_round_trip_through_a_binary_codec() {
    let mut h = Harness::new();
    h.open(1, "a");
    h.delegate(1, "a", "b").unwrap();
    for f in &h.facts {
        let bytes = postcard::to_allocvec(f).unwrap();
        let back: Fact = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(&back, f);
        assert_eq!(back.schema_version, FACT_SCHEMA_VERSION);
    }
}

#[test]
fn stats_count_by_class() {
    let mut h = Harness::new();
    h.open(1, "a");
    h.open(2, "a");
    h.delegate(1, "a", "b").unwrap();
    let st = h.state.stats();
    assert_eq!((st.sessions, st.native, st.delegated, st.authorities, st.bundles), (2, 1, 1, 2, 1));
}

#[test]
fn a_generation_at_its_limit_refuses_to_advance_and_never_wraps() {
    let mut h = Harness::new();
    h.open(1, "a");
    let mut snap = h.state.to_snapshot();
    snap.sessions[0].1.generation = MAX_GENERATION;
    let at_limit = State::from_snapshot(snap.clone()).unwrap();
    let cmd = Command::Delegate(Delegation::new(s(1), a("a"), a("b"), bid("x")));
    assert_eq!(at_limit.check(&cmd, 42).unwrap_err(), CommandError::GenerationExhausted { session: s(1) });
    assert_eq!(at_limit.session(&s(1)).unwrap().generation, MAX_GENERATION);
    snap.sessions[0].1.generation = MAX_GENERATION + 1;
    assert!(matches!(State::from_snapshot(snap), Err(SnapshotError::GenerationTooLarge { .. })));
}

#[test]
fn a_resumed_checker_sees_what_the_paused_one_checked_applied_or_not() {
    // A pipelining writer checks batch 1, pauses with its overlay while batch 1 is made
    // durable, and checks batch 2 against it, before or after batch 1 is applied: the facts
    // must be exactly those of one checker over both batches.
    let mut state = State::new();
    let x = bid("x");
    let setup = [
        Command::RegisterBundle(ComposedBundle::new(x.clone())),
        Command::OpenSession { session: s(1), authority: a("a"), bundle: Some(x.clone()) },
    ];
    for (seq, c) in (1..).zip(&setup) {
        let f = state.check(c, 0).unwrap();
        state.apply(seq, &f);
    }
    let batch1 = [Command::Delegate(Delegation::new(s(1), a("a"), a("b"), x.clone()))];
    let batch2 = [
        Command::Delegate(Delegation::new(s(1), a("b"), a("c"), x.clone())),
        Command::Delegate(Delegation::new(s(1), a("a"), a("d"), x.clone())),
        Command::OpenSession { session: s(2), authority: a("new"), bundle: None },
    ];
    let together: Vec<_> = {
        let mut c = state.checker();
        batch1.iter().chain(&batch2).map(|cmd| c.check(cmd, 9)).collect()
    };
    assert!(together[2].is_err(), "`a` gave session 1 away in batch 1");

    let paused = |state: &State| {
        let mut c = state.checker();
        let first: Vec<_> = batch1.iter().map(|cmd| c.check(cmd, 9)).collect();
        (first, c.into_overlay())
    };
    let (first, overlay) = paused(&state);
    assert!(!overlay.is_empty());
    let mut applied = state.clone();
    for (seq, f) in (3..).zip(&first) {
        applied.apply(seq, f.as_ref().unwrap());
    }
    for (base, overlay) in [(&state, overlay), (&applied, paused(&state).1)] {
        let mut resumed = base.resume_checker(overlay);
        let mut all = first.clone();
        all.extend(batch2.iter().map(|cmd| resumed.check(cmd, 9)));
        assert_eq!(all, together);
    }
}

#[test]
fn a_cleared_overlay_checks_as_a_fresh_one() {
    let mut state = State::new();
    let x = bid("x");
    for (seq, c) in (1..).zip([
        Command::RegisterBundle(ComposedBundle::new(x.clone())),
        Command::OpenSession { session: s(1), authority: a("a"), bundle: Some(x.clone()) },
    ]) {
        let f = state.check(&c, 0).unwrap();
        state.apply(seq, &f);
    }
    let give = Command::Delegate(Delegation::new(s(1), a("a"), a("b"), x.clone()));
    let mut c = state.checker();
    c.check(&give, 9).unwrap();
    c.check(&Command::OpenSession { session: s(2), authority: a("new"), bundle: None }, 9).unwrap();
    let overlay = c.into_overlay();
    assert!(!overlay.is_empty());
    // Resumed over this overlay, `a` no longer holds the session ...
    let mut resumed = state.resume_checker(overlay);
    assert!(resumed.check(&give, 9).is_err());
    let mut overlay = resumed.into_overlay();
    assert!(!overlay.is_empty());
    // ... and once cleared, the overlay says nothing: the state alone decides again.
    overlay.clear();
    assert!(overlay.is_empty());
    let mut resumed = state.resume_checker(overlay);
    assert_eq!(resumed.check(&give, 9), state.checker().check(&give, 9));
    assert!(resumed.check(&give, 9).is_err(), "the resumed checker records what it checks again");
}

#[test]
fn upgrade_steps_are_checked_against_the_whole_state() {
    use reconf_core::upgrade::{Member, OnHistory, UpgradeCommand, UpgradeDecision, UpgradeRefusal};
    let mut state = State::new();
    let members: std::collections::BTreeSet<Member> =
        ["g1", "g2"].into_iter().map(|m| Member::new(m).unwrap()).collect();
    let seed = UpgradeCommand::Seed { bundle: bid("x"), members, on_history: OnHistory::Refuse };
    // Seeding needs a registered bundle: the same refusal as any command naming it.
    assert_eq!(
        state.check_upgrade(&seed).unwrap_err(),
        UpgradeRefusal::Rejected(CommandError::UnknownBundle { bundle: bid("x") })
    );
    let f = state.check(&Command::RegisterBundle(ComposedBundle::new(bid("x"))), 0).unwrap();
    state.apply(1, &f);
    let UpgradeDecision::Write(phases) = state.check_upgrade(&seed).unwrap() else {
        panic!("a registered bundle is seeded");
    };
    assert_eq!(phases.len(), 1);
    state.apply(2, &Fact::new(Change::Upgrade(phases[0].clone())));
    assert!(matches!(state.check_upgrade(&seed), Err(UpgradeRefusal::Upgrade(_))), "history exists");
}
