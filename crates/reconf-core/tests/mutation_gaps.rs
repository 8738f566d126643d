//! Tests for what mutation testing found nothing asserted (issue 14's list of surviving
//! mutants in `reconf-core`): each one fails if the named mutation is made.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;

use reconf_core::upgrade::{Member, UpgradeFact};
use reconf_core::{
    AuthorityId, BundleId, CapabilityScope, Change, Command, ComposedBundle, Delegation, Fact, OwnerLabel,
    SessionFootprint, SessionId, State, StateSnapshot, Violation,
};

fn b(s: &str) -> BundleId {
    BundleId::new(s).unwrap()
}

fn a(s: &str) -> AuthorityId {
    AuthorityId::from_label(s)
}

/// A state with a bundle, one native and one delegated session, and an upgrade history.
fn sample() -> State {
    let mut state = State::new();
    let (x, y) = (a("x"), a("y"));
    let commands = [
        Command::RegisterBundle(ComposedBundle::new(b("bundle"))),
        Command::OpenSession { session: SessionId::from_u128(1), authority: x, bundle: Some(b("bundle")) },
        Command::OpenSession { session: SessionId::from_u128(2), authority: x, bundle: Some(b("bundle")) },
        Command::Delegate(Delegation::new(SessionId::from_u128(2), x, y, b("bundle"))),
    ];
    for (i, c) in commands.iter().enumerate() {
        let f = state.check(c, 10).unwrap();
        state.apply(i as u64 + 1, &f);
    }
    let members: BTreeSet<Member> = [Member::new("m1").unwrap(), Member::new("m2").unwrap()].into();
    let seed = Fact::new(Change::Upgrade(UpgradeFact::MembershipSeeded {
        bundle: b("bundle"),
        members,
        forced: false,
    }));
    state.apply(5, &seed);
    state
}

#[test]
fn an_incoherent_state_is_reported_incoherent() {
    // `CoherenceReport::is_coherent` -> `true`: a record whose holder is also its delegator
    // (no checked command writes one; a forged snapshot can) must be reported.
    let mut snap = sample().to_snapshot();
    let (_, record) = snap.sessions.iter_mut().find(|(s, _)| *s == SessionId::from_u128(2)).unwrap();
    record.delegator = Some(record.holder);
    let broken = State::from_snapshot(snap).unwrap();
    let report = broken.verify_coherence();
    assert!(!report.is_coherent(), "{report:?}");
    assert!(report.violations.iter().any(|v| matches!(v, Violation::HolderIsDelegator { .. })));
    assert!(sample().verify_coherence().is_coherent());
}

#[test]
fn a_snapshot_keeps_every_upgrade_membership_and_history() {
    // `State::from_snapshot` dropping `upgrades`.
    let state = sample();
    assert!(state.upgrades().snapshot(&b("bundle")).is_some(), "the sample has an upgrade history");
    let back = State::from_snapshot(state.to_snapshot()).unwrap();
    assert_eq!(back.upgrades(), state.upgrades());
    assert_eq!(back.upgrades().snapshot(&b("bundle")), state.upgrades().snapshot(&b("bundle")));
}

#[test]
fn states_that_differ_are_not_equal() {
    // `State`'s `PartialEq` -> `true`: the core's own replay-equality assertions must be
    // able to fail.
    let state = sample();
    let mut other = state.clone();
    assert_eq!(state, other);
    let f = other
        .check(&Command::CloseSession { session: SessionId::from_u128(1), authority: a("x") }, 11)
        .unwrap();
    other.apply(6, &f);
    assert_ne!(state, other);
    let mut snap: StateSnapshot = state.to_snapshot();
    snap.head += 1;
    assert_ne!(State::from_snapshot(snap).unwrap(), state);
}

#[test]
fn an_empty_footprint_is_empty_and_a_full_one_is_not() {
    // `SessionFootprint::is_empty`.
    assert!(SessionFootprint::default().is_empty());
    let state = sample();
    assert!(!state.footprint(&a("x")).is_empty());
    assert!(!state.footprint(&a("y")).is_empty());
    assert!(state.footprint(&a("nobody")).is_empty());
}

#[test]
fn footprints_that_differ_have_different_digests() {
    // The footprint digest's mixing (`^` -> `|`, `>>` -> `<<`): summaries of different
    // footprints must differ, and equal ones agree.
    let state = sample();
    let (x, y) = (state.footprint_summary(&a("x")), state.footprint_summary(&a("y")));
    assert_ne!(x, y);
    let mut digests = BTreeSet::new();
    let mut s = State::new();
    let f = s.check(&Command::RegisterBundle(ComposedBundle::new(b("d"))), 1).unwrap();
    s.apply(1, &f);
    for i in 0..64u128 {
        let f = s
            .check(
                &Command::OpenSession { session: SessionId::from_u128(i), authority: a("z"), bundle: None },
                1,
            )
            .unwrap();
        s.apply(i as u64 + 2, &f);
        assert!(
            digests.insert(format!("{:?}", s.footprint_summary(&a("z")))),
            "digest repeated after {i} opens"
        );
    }
}

#[test]
fn ids_and_scopes_print_what_they_hold() {
    // `Display` of `SessionId`, `OwnerLabel` and `CapabilityScope`, which every error
    // message prints.
    let s = SessionId::from_u128(0xabc);
    assert_eq!(s.to_string(), "00000000-0000-0000-0000-000000000abc");
    assert_eq!(s.to_string().parse::<SessionId>().unwrap(), s);
    assert_eq!(OwnerLabel::new("node-7").unwrap().to_string(), "node-7");
    assert_eq!(CapabilityScope::WholeSession.to_string(), "whole session");
    let f = CapabilityScope::fragments(["a", "b"]).to_string();
    assert!(f.contains('a') && f.contains('b'), "{f}");
}

#[test]
fn linking_needs_both_sides_compatible() {
    // `ComposedBundle::compatible_with` with `&&` -> `||`: bundles whose imports are met on
    // one side only are refused, naming what is missing on that side.
    let mut needs = ComposedBundle::new(b("needs"));
    needs.imports.insert("clock".to_owned());
    let mut gives = ComposedBundle::new(b("gives"));
    gives.exports.insert("clock".to_owned());
    assert!(needs.compatible_with(&gives).is_ok());
    let plain = ComposedBundle::new(b("plain"));
    let e = needs.compatible_with(&plain).unwrap_err();
    assert_eq!(e.left_missing, vec!["clock".to_owned()]);
    assert!(e.right_missing.is_empty());
    let e = plain.compatible_with(&needs).unwrap_err();
    assert!(e.left_missing.is_empty());
    assert_eq!(e.right_missing, vec!["clock".to_owned()]);
    let f = CapabilityScope::fragments(["a", "b"]).to_string();
    assert_eq!(f, "fragments [a, b]");
}

#[test]
fn the_generation_limit_is_exact() {
    // The generation limit's `>` -> `>=`: a session may reach MAX_GENERATION, never pass it.
    let mut snap = sample().to_snapshot();
    let (_, record) = snap.sessions.iter_mut().find(|(s, _)| *s == SessionId::from_u128(1)).unwrap();
    record.generation = reconf_core::MAX_GENERATION - 1;
    let mut state = State::from_snapshot(snap).unwrap();
    let s = SessionId::from_u128(1);
    let to_max =
        state.check(&Command::Delegate(Delegation::new(s, a("x"), a("y"), b("bundle"))), 20).unwrap();
    state.apply(6, &to_max);
    assert_eq!(state.session(&s).unwrap().generation, reconf_core::MAX_GENERATION);
    let past = state.check(&Command::Delegate(Delegation::new(s, a("y"), a("x"), b("bundle"))), 21);
    assert!(matches!(past, Err(reconf_core::CommandError::GenerationExhausted { .. })), "{past:?}");
}

// Found by the sampled `cargo mutants` run of this session (see the README's development
// section for the command).

#[test]
fn session_ids_lists_every_open_session() {
    // `State::session_ids` replaced by an empty iterator.
    let mut ids: Vec<SessionId> = sample().session_ids().collect();
    ids.sort();
    assert_eq!(ids, [SessionId::from_u128(1), SessionId::from_u128(2)]);
}

#[test]
fn the_index_memory_estimate_counts_every_session() {
    // `approx_index_bytes` with any of its `*` -> `+` or `+` -> `*` / `-`: each indexed
    // session costs at least its 32-byte slot, each authority its 32-byte id twice (its
    // entry and its index), however the indexes are sized.
    let mut state = State::new();
    let holder = |n: u128| a(&format!("holder-{n}"));
    for n in 0..1000u128 {
        let open =
            Command::OpenSession { session: SessionId::from_u128(n), authority: holder(n), bundle: None };
        let f = state.check(&open, 1);
        state.apply(n as u64 + 1, &f.unwrap());
    }
    let bytes = state.approx_index_bytes();
    assert!(bytes >= 1000 * (32 + 32 + 36), "{bytes} bytes for 1000 sessions and authorities");
    assert!(bytes < 1000 * 32 * 16, "{bytes} bytes for 1000 sessions and authorities");
    // Closed sessions stay indexed (their generation is kept for a reopen): each costs at
    // least its id and generation.
    for n in 0..1000u128 {
        let f =
            state.check(&Command::CloseSession { session: SessionId::from_u128(n), authority: holder(n) }, 1);
        state.apply(1001 + n as u64, &f.unwrap());
    }
    let closed = state.approx_index_bytes();
    assert!(closed >= bytes + 1000 * 24, "{bytes} bytes open, {closed} after closing all 1000");
}

#[test]
fn a_bundle_id_is_looked_up_by_str() {
    // `Borrow<str> for BundleId` returning "".
    let map: std::collections::HashMap<BundleId, u8> = [(b("x.y"), 1)].into();
    assert_eq!(map.get("x.y"), Some(&1));
    assert_eq!(map.get(""), None);
}

#[test]
fn owner_records_differ_in_any_field() {
    // `LiveOwner::same_record` with `&&` -> `||`: records that differ in the node only, or
    // in the owner only, are different records.
    let mut live = reconf_core::LiveSessions::default();
    let s = SessionId::from_u128(1);
    let boundary = reconf_core::LinkBoundary::for_bundle(&b("bundle"));
    let owner = OwnerLabel::new("owner-a").unwrap();
    live.attach(s, owner.clone(), 1, boundary.clone(), reconf_core::OwnerToken::from_bytes([7; 16])).unwrap();
    let record = live.owner(&s).unwrap().clone();
    assert!(record.same_record(&record.clone()));
    let node = Some(OwnerLabel::new("node-b").unwrap());
    let moved = reconf_core::LiveOwner::new(owner, record.capability.clone(), boundary.clone(), node);
    assert!(!record.same_record(&moved));
    let renamed = reconf_core::LiveOwner::new(
        OwnerLabel::new("owner-c").unwrap(),
        record.capability.clone(),
        boundary,
        None,
    );
    assert!(!record.same_record(&renamed));
}

#[test]
fn error_kinds_are_the_documented_labels() {
    // `CommandError::kind` and `OwnershipError`'s messages, which metrics and logs carry.
    let s = SessionId::from_u128(1);
    let e = reconf_core::CommandError::UnknownBundle { bundle: b("nope") };
    assert_eq!(e.kind(), "unknown_bundle");
    let e = reconf_core::CommandError::SelfDelegation { session: s, authority: a("x") };
    assert_eq!(e.kind(), "self_delegation");
    let e = reconf_core::OwnershipError::AlreadyLive {
        session: s,
        owner: OwnerLabel::new("owner-a").unwrap(),
        node: Some(OwnerLabel::new("node-b").unwrap()),
    };
    let message = e.to_string();
    assert!(message.contains("owner-a") && message.contains("on node node-b"), "{message}");
}

#[test]
fn debug_output_names_the_id() {
    // `Debug` of `BundleId` replaced by writing nothing.
    assert!(format!("{:?}", b("my.bundle")).contains("my.bundle"));
}

#[test]
fn the_authority_limit_leaves_a_reserved_index() {
    // `MAX_AUTHORITIES` with `-` -> `+`: interned authority indexes are the non-zero `u32`s,
    // and the last of them is kept for raw facts past the limit (so `apply` stays total),
    // so checked commands stop one short of `u32::MAX`.
    assert!(reconf_core::MAX_AUTHORITIES < u64::from(u32::MAX));
}

// Found by the round-robin sampled `cargo mutants` run of 2026-12-01 (shard 0 of 4).

#[test]
fn an_overlay_with_only_a_bundle_or_only_a_session_is_not_empty() {
    // `Overlay::is_empty` with `&&` -> `||`: an overlay is empty only when all three of its
    // parts are.
    let state = sample();
    assert!(state.checker().into_overlay().is_empty());
    let mut checker = state.checker();
    checker.check(&Command::RegisterBundle(ComposedBundle::new(b("other"))), 1).unwrap();
    assert!(!checker.into_overlay().is_empty(), "a registered bundle only");
    let mut checker = state.checker();
    let open = Command::OpenSession { session: SessionId::from_u128(9), authority: a("x"), bundle: None };
    checker.check(&open, 1).unwrap();
    assert!(!checker.into_overlay().is_empty(), "an opened session of a known authority only");
}

/// `sample()` with a live owner attached to session 1 (held by `x`, running `bundle`).
fn live_sample() -> (State, reconf_core::LiveSessions, reconf_core::OwnerCapability) {
    let state = sample();
    let mut live = reconf_core::LiveSessions::default();
    let s = SessionId::from_u128(1);
    let boundary = reconf_core::LinkBoundary::for_bundle(&b("bundle"));
    let generation = state.check_attach(&s, &boundary).unwrap();
    let cap = live
        .attach(
            s,
            OwnerLabel::new("owner-a").unwrap(),
            generation,
            boundary,
            reconf_core::OwnerToken::from_bytes([1; 16]),
        )
        .unwrap();
    (state, live, cap)
}

#[test]
fn a_live_handoff_stages_the_new_owner_and_refuses_another_sessions_handle() {
    // `check_handoff` with the session comparison inverted; `LiveSessions::staged_owner`
    // replaced by `None`.
    let (state, mut live, cap) = live_sample();
    let s = SessionId::from_u128(1);
    let to = OwnerLabel::new("owner-b").unwrap();
    let token = reconf_core::OwnerToken::from_bytes([2; 16]);
    let d = Delegation::new(s, a("x"), a("z"), b("bundle"));
    assert_eq!(live.staged_owner(&s), None);
    let fact = state.checker().check_handoff(&d, 30, &mut live, &cap, to.clone(), token).unwrap();
    assert_eq!(fact.session, s);
    assert_eq!(live.staged_owner(&s), Some(&to));
    live.abort(s).unwrap();
    assert_eq!(live.staged_owner(&s), None);

    let other = Delegation::new(SessionId::from_u128(2), a("y"), a("z"), b("bundle"));
    let e = state.checker().check_handoff(&other, 30, &mut live, &cap, to, token).unwrap_err();
    assert!(matches!(e, reconf_core::LiveError::SessionMismatch { .. }), "{e:?}");
    assert_eq!(live.staged_owner(&s), None, "a refused handoff stages nothing");
}

#[test]
fn live_sessions_report_their_size_and_the_node_they_run_on() {
    // `LiveSessions::is_empty` replaced by `false`; `LiveSessions::set_node` by `()`.
    assert!(reconf_core::LiveSessions::default().is_empty());
    let (_, mut live, _) = live_sample();
    assert!(!live.is_empty());
    let s = SessionId::from_u128(1);
    assert_eq!(live.owner(&s).unwrap().node, None);
    let node = OwnerLabel::new("node-7").unwrap();
    live.set_node(s, Some(node.clone()));
    assert_eq!(live.owner(&s).unwrap().node, Some(node));
    live.set_node(s, None);
    assert_eq!(live.owner(&s).unwrap().node, None);
}

#[test]
fn a_fact_names_the_session_it_touches() {
    // `Fact::session` replaced by `None`.
    let state = sample();
    let s = SessionId::from_u128(1);
    let open = state.check(
        &Command::OpenSession { session: SessionId::from_u128(5), authority: a("x"), bundle: None },
        1,
    );
    assert_eq!(open.unwrap().session(), Some(SessionId::from_u128(5)));
    let delegated =
        state.check(&Command::Delegate(Delegation::new(s, a("x"), a("y"), b("bundle"))), 1).unwrap();
    assert_eq!(delegated.session(), Some(s));
    let closed = state.check(&Command::CloseSession { session: s, authority: a("x") }, 1).unwrap();
    assert_eq!(closed.session(), Some(s));
    let registered = state.check(&Command::RegisterBundle(ComposedBundle::new(b("other"))), 1).unwrap();
    assert_eq!(registered.session(), None);
}

#[test]
fn authorities_are_listed_in_first_seen_order() {
    // `State::authorities` replaced by an empty iterator.
    assert_eq!(sample().authorities().collect::<Vec<_>>(), [a("x"), a("y")]);
}

#[test]
fn owner_labels_debug_print_their_text() {
    // `Debug` of `OwnerLabel` replaced by writing nothing.
    assert_eq!(format!("{:?}", OwnerLabel::new("owner-a").unwrap()), "OwnerLabel(\"owner-a\")");
}

/// SplitMix64's output function, written from its published definition (Vigna), so the
/// footprint digest is checked against the algorithm its docs name, not against itself.
fn splitmix64_finaliser(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[test]
fn the_footprint_digest_is_the_documented_splitmix_mix() {
    // `entry_mix`'s finaliser with `^` -> `|` or `&`: digests are compared across
    // processes and versions, so the mix is pinned, not just "different inputs differ".
    // SplitMix64 seeded with 0 first outputs 0xe220a8397b1dcdaf: the finaliser applied to
    // the golden gamma.
    assert_eq!(splitmix64_finaliser(0x9e37_79b9_7f4a_7c15), 0xe220_a839_7b1d_cdaf);
    // The class tags are the ASCII of "native", "del_in" and "del_ou".
    let tag = |name: &[u8]| name.iter().fold(0u64, |t, byte| t << 8 | u64::from(*byte));
    let classes = [(b"native".as_slice(), 0), (b"del_in".as_slice(), 1), (b"del_ou".as_slice(), 2)];
    for id in [0u128, 1, 0x0123_4567_89ab_cdef_fedc_ba98_7654_3210, u128::MAX] {
        let s = SessionId::from_u128(id);
        let (hi, lo) = ((id >> 64) as u64, id as u64);
        for (name, class) in classes {
            let mut f = SessionFootprint::default();
            match class {
                0 => f.native.insert(s),
                1 => f.delegated_in.insert(s),
                _ => f.delegated_out.insert(s),
            };
            let expected = splitmix64_finaliser(splitmix64_finaliser(hi ^ tag(name)).wrapping_add(lo));
            assert_eq!(
                f.summary().digest,
                expected,
                "session {id:#x}, class {}",
                String::from_utf8_lossy(name)
            );
        }
    }
}

#[test]
fn the_index_memory_estimate_charges_each_session_slot() {
    // `approx_index_bytes` with the session table's `* 32` -> `+ 32`: the same authority
    // with 10,000 more sessions costs at least their 32-byte slots more.
    let one = |sessions: u128| {
        let mut state = State::new();
        let first = Command::OpenSession {
            session: SessionId::from_u128(u128::MAX),
            authority: a("x"),
            bundle: None,
        };
        let f = state.check(&first, 1).unwrap();
        state.apply(1, &f);
        for n in 0..sessions {
            let open =
                Command::OpenSession { session: SessionId::from_u128(n), authority: a("x"), bundle: None };
            let f = state.check(&open, 1).unwrap();
            state.apply(n as u64 + 2, &f);
        }
        state.approx_index_bytes()
    };
    let (small, large) = (one(0), one(10_000));
    assert!(large >= small + 10_000 * 32, "{small} bytes with 1 session, {large} with 10,001");
}

#[test]
fn a_states_debug_output_shows_its_session_table_size() {
    // `Debug` of the session table replaced by writing nothing: a state's debug output (in
    // test failures and traces) says how many sessions it indexes, not their slots.
    let printed = format!("{:?}", sample());
    assert!(printed.contains("SessionTable { len: 2, slots: "), "{printed}");
}

// Found by a second sampled run (another quarter of the mutants not yet tested).

#[test]
fn session_ids_debug_print_their_uuid() {
    // `Debug` of `SessionId` replaced by writing nothing.
    let printed = format!("{:?}", SessionId::from_u128(0xab));
    assert!(printed.contains("000000ab"), "{printed}");
}

#[test]
fn inserting_a_live_owner_counts_it_and_returns_the_one_it_replaced() {
    // `LiveSessions::len` replaced by `1`; `LiveSessions::insert` returning `None`.
    let (_, mut live, _) = live_sample();
    assert_eq!(live.len(), 1);
    let s = SessionId::from_u128(1);
    let before = live.owner(&s).unwrap().clone();
    let node = Some(OwnerLabel::new("node-2").unwrap());
    let mirrored = reconf_core::LiveOwner::new(
        before.owner.clone(),
        before.capability.clone(),
        before.boundary.clone(),
        node,
    );
    assert_eq!(live.insert(s, mirrored.clone()), Some(before));
    assert_eq!(live.owner(&s), Some(&mirrored));
    assert_eq!(live.len(), 1);
    let other = SessionId::from_u128(2);
    let owner_2 = reconf_core::LiveOwner::new(
        OwnerLabel::new("owner-2").unwrap(),
        reconf_core::OwnerCapability { session: other, ..mirrored.capability.clone() },
        mirrored.boundary.clone(),
        None,
    );
    assert_eq!(live.insert(other, owner_2), None);
    assert_eq!(live.len(), 2);
    assert_eq!(reconf_core::LiveSessions::default().len(), 0);
}

#[test]
fn prefetching_is_safe_on_any_state() {
    // Prefetching is a hint: it must accept any keys on any state, an empty one included,
    // and change nothing. (Written for `SessionTable::prefetch`'s empty-table check, whose
    // inversion turned out equivalent: an empty table has no slots to read.)
    let empty = State::new();
    empty.prefetch_sessions((0..100).map(SessionId::from_u128));
    let state = sample();
    state.prefetch_sessions((0..100).map(SessionId::from_u128));
    let facts: Vec<Fact> = (1..=3)
        .map(|n| {
            state.check(
                &Command::CloseSession { session: SessionId::from_u128(n.min(2)), authority: a("x") },
                1,
            )
        })
        .filter_map(Result::ok)
        .collect();
    state.prefetch_facts(&facts);
    empty.prefetch_facts(&facts);
    // No keys at all (a batch whose facts name no session): the loop must end at once
    // (`n == 0` inverted at the chunk's end never returns).
    state.prefetch_sessions(std::iter::empty());
    let registrations: Vec<Fact> = ["p", "q"]
        .iter()
        .map(|n| state.check(&Command::RegisterBundle(ComposedBundle::new(b(n))), 1).unwrap())
        .collect();
    state.prefetch_facts(&registrations);
    assert_eq!(empty, State::new());
    assert_eq!(state, sample());
}

// Found by the full `cargo mutants` run over this crate (core tests only).

#[test]
fn a_checker_reports_the_holder_its_earlier_commands_leave() {
    // `Checker::holder` → `None`: batch builders (the benchmarks, the CLI's simulator) pick
    // each next delegation's giver from it.
    let state = sample();
    let s = SessionId::from_u128(1);
    let mut checker = state.checker();
    assert_eq!(checker.holder(&s), Some(a("x")));
    checker.check(&Command::Delegate(Delegation::new(s, a("x"), a("z"), b("bundle"))), 20).unwrap();
    assert_eq!(checker.holder(&s), Some(a("z")), "the checked delegation moved it");
    assert_eq!(state.holder(&s), Some(a("x")), "the state itself is unchanged");
    assert_eq!(checker.holder(&SessionId::from_u128(9)), None);
}

#[test]
fn a_violation_names_its_session_when_it_has_one() {
    // `Violation::session` → `None`: the runtime logs it with every violation it finds.
    let s = SessionId::from_u128(4);
    let per_session = Violation::UnknownAuthority { session: s, index: 7 };
    assert_eq!(per_session.session(), Some(s));
    let holders = Violation::MultipleActiveHolders { session: s, holders: vec![a("x"), a("y")] };
    assert_eq!(holders.session(), Some(s));
    let summary = Violation::SummaryMismatch {
        authority: a("x"),
        kept: reconf_core::FootprintSummary::default(),
        recomputed: reconf_core::FootprintSummary::default(),
    };
    assert_eq!(summary.session(), None);
}

#[test]
fn every_fact_kind_has_its_stable_name() {
    // `Fact::kind` → a constant: the names are what `reconf log` prints and dumps carry.
    let s = SessionId::from_u128(1);
    let mut state = State::new();
    let commands = [
        (Command::RegisterBundle(ComposedBundle::new(b("bundle"))), "bundle.registered"),
        (Command::OpenSession { session: s, authority: a("x"), bundle: Some(b("bundle")) }, "session.opened"),
        (Command::Delegate(Delegation::new(s, a("x"), a("y"), b("bundle"))), "session.delegated"),
        (Command::CloseSession { session: s, authority: a("y") }, "session.closed"),
    ];
    for (i, (command, kind)) in commands.iter().enumerate() {
        let fact = state.check(command, 10).unwrap();
        assert_eq!(fact.kind(), *kind);
        state.apply(i as u64 + 1, &fact);
    }
    let seeded =
        UpgradeFact::MembershipSeeded { bundle: b("bundle"), members: BTreeSet::new(), forced: false };
    assert_eq!(Fact::new(Change::Upgrade(seeded)).kind(), "upgrade.membership_seeded");
}

#[test]
fn a_capability_prints_without_its_token() {
    // `Debug for OwnerToken` → an empty string: debug output must still say a token is
    // there, never what it is.
    let token = reconf_core::OwnerToken::from_bytes([0xab; 16]);
    let shown = format!("{token:?}");
    assert_eq!(shown, "OwnerToken(..)");
    assert!(!shown.contains("ab") && !shown.contains("171"));
}

#[test]
fn a_staged_handoff_shows_its_successor_and_ownership_errors_their_kinds() {
    // `LiveOwner::successor` → `None`, `LiveSessions::iter` → empty, `OwnershipError::kind`
    // → a constant (its names are metrics labels).
    use reconf_core::{LinkBoundary, LiveSessions, OwnerToken};
    let s = SessionId::from_u128(1);
    let boundary = LinkBoundary::for_bundle(&b("bundle"));
    let token = |n| OwnerToken::from_bytes([n; 16]);
    let mut live = LiveSessions::default();
    let cap = live.attach(s, OwnerLabel::new("first").unwrap(), 1, boundary.clone(), token(1)).unwrap();
    let again = live.attach(s, OwnerLabel::new("other").unwrap(), 1, boundary.clone(), token(2));
    assert_eq!(again.unwrap_err().kind(), "already_live");
    assert_eq!(live.iter().map(|(s, o)| (*s, o.owner.as_str())).collect::<Vec<_>>(), vec![(s, "first")]);
    assert!(live.owner(&s).unwrap().successor(None).is_none(), "nothing staged");
    assert_eq!(live.commit(s).unwrap_err().kind(), "nothing_staged");
    let regressed = live.stage(&cap, OwnerLabel::new("second").unwrap(), 1, boundary.scope.clone(), token(3));
    assert_eq!(regressed.unwrap_err().kind(), "generation_regressed");
    live.stage(&cap, OwnerLabel::new("second").unwrap(), 2, boundary.scope.clone(), token(3)).unwrap();
    let node = Some(OwnerLabel::new("node-1").unwrap());
    let next = live.owner(&s).unwrap().successor(node.clone()).unwrap();
    assert_eq!((next.owner.as_str(), next.capability.generation, &next.node), ("second", 2, &node));
    let forged = reconf_core::OwnerCapability { token: token(9), ..cap.clone() };
    assert_eq!(live.check_whole_session(&forged).unwrap_err().kind(), "not_issued");
    assert_eq!(live.abort(SessionId::from_u128(2)).unwrap_err().kind(), "not_live");
}

#[test]
fn a_scope_allows_exactly_its_fragments_and_the_state_lists_its_bundles() {
    // `CapabilityScope::allows` → `false`, `State::bundles` → empty.
    let scope = CapabilityScope::fragments(["a", "b"]);
    assert!(scope.allows("a") && scope.allows("b") && !scope.allows("c"));
    assert!(CapabilityScope::WholeSession.allows("anything"));
    let state = sample();
    let ids: Vec<&str> = state.bundles().map(|b| b.id.as_str()).collect();
    assert_eq!(ids, vec!["bundle"]);
}

#[test]
fn the_coherence_fast_path_never_hides_a_violation_behind_an_idle_first_authority() {
    // `summaries_from_sound_records` answering one empty summary: compared pairwise with
    // the authorities, it would match an idle first authority and call a broken state
    // coherent. The first authority interned here holds nothing once its session closes.
    let mut state = State::new();
    let (idle, x, y) = (a("idle"), a("x"), a("y"));
    let (s1, s2, s9) = (SessionId::from_u128(1), SessionId::from_u128(2), SessionId::from_u128(9));
    let commands = [
        Command::RegisterBundle(ComposedBundle::new(b("bundle"))),
        Command::OpenSession { session: s9, authority: idle, bundle: None },
        Command::CloseSession { session: s9, authority: idle },
        Command::OpenSession { session: s1, authority: x, bundle: Some(b("bundle")) },
        Command::OpenSession { session: s2, authority: x, bundle: Some(b("bundle")) },
        Command::Delegate(Delegation::new(s2, x, y, b("bundle"))),
    ];
    for (i, c) in commands.iter().enumerate() {
        let f = state.check(c, 10).unwrap();
        state.apply(i as u64 + 1, &f);
    }
    assert!(state.verify_coherence().is_coherent());
    let mut snap = state.to_snapshot();
    let (_, record) = snap.sessions.iter_mut().find(|(s, _)| *s == s2).unwrap();
    record.delegator = Some(record.holder);
    let report = State::from_snapshot(snap).unwrap().verify_coherence();
    assert!(!report.is_coherent(), "{report:?}");
}

#[test]
fn the_authority_limit_counts_known_and_batched_authorities_exactly() {
    // The authority limit (`admit_authority` → `Ok(())`, its `||` → `&&` and `+` → `*`,
    // `note_authority` → `()`, `authority_count` → 0 or 1), reachable now that the limit
    // can be set below `MAX_AUTHORITIES`.
    use reconf_core::CommandError;
    let open = |n: u128, who: &str| Command::OpenSession {
        session: SessionId::from_u128(n),
        authority: a(who),
        bundle: None,
    };
    let mut state = State::new();
    assert_eq!(state.authority_limit(), reconf_core::MAX_AUTHORITIES);
    state.set_authority_limit(3);
    for (n, who) in [(1, "a"), (2, "b")] {
        let f = state.check(&open(n, who), 1).unwrap();
        state.apply(n as u64, &f);
    }
    let full = Err(CommandError::TooManyAuthorities { max: 3 });
    let mut checker = state.checker();
    checker.check(&open(3, "c"), 1).unwrap();
    // Two known to the state and one earlier in the batch: the limit is reached.
    assert_eq!(checker.check(&open(4, "d"), 1).map(|_| ()), full);
    // Authorities already known, to the state or to the batch, stay usable.
    checker.check(&open(5, "c"), 1).unwrap();
    checker.check(&open(6, "a"), 1).unwrap();
    assert_eq!(state.check(&open(7, "z"), 1).map(|_| ()), Ok(()), "a lone check sees the state's 2 only");
    // Replay is not refused: a fact naming a fourth authority applies.
    let other = State::new();
    let f = other.check(&open(8, "w"), 1).unwrap();
    state.apply(3, &f);
    assert_eq!(state.holder(&SessionId::from_u128(8)), Some(a("w")));
    // The cap never exceeds what a state can intern.
    state.set_authority_limit(u64::MAX);
    assert_eq!(state.authority_limit(), reconf_core::MAX_AUTHORITIES);
}

#[test]
fn an_illegal_phase_sequence_is_shown_phase_by_phase() {
    // `show_phases` → a constant: the message is all an operator has to see which phases a
    // bad snapshot holds.
    use reconf_core::upgrade::{SnapshotViolation, UpgradeId, UpgradePhase};
    let v = SnapshotViolation::IllegalPhases {
        upgrade_id: UpgradeId::new("u-1").unwrap(),
        phases: vec![UpgradePhase::Staged, UpgradePhase::CommittedCutover],
    };
    assert_eq!(
        v.to_string(),
        "execution u-1 has phases [staged, committed cutover], not a legal finished sequence"
    );
}

#[test]
fn a_begin_decision_lists_the_facts_to_journal_in_order() {
    // `Begin::facts` → empty: a caller journaling a decision would write nothing.
    use reconf_core::upgrade::Begin;
    let seeded = |n: &str| UpgradeFact::MembershipSeeded {
        bundle: b(n),
        members: [Member::new("m1").unwrap()].into(),
        forced: false,
    };
    let staged = Begin::Staged(seeded("one"));
    assert_eq!(staged.facts(), vec![&seeded("one")]);
    let error = reconf_core::upgrade::UpgradeError::EmptyMembership { bundle: b("two") };
    let invalid = Begin::Invalid { staged: seeded("one"), failed: seeded("two"), error };
    assert_eq!(invalid.facts(), vec![&seeded("one"), &seeded("two")]);
}
