//! Live ownership that cannot be confused or forged: a boundary's bundle is checked, an
//! owner attaches only for its session's bundle, a delegation moves only its own bundle's
//! fragments and never rebinds a session to another bundle, and a capability is accepted
//! only when the manager issued it.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;
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

/// Bundles `x` and `y`, session 1 running `x` held by `a`, session 2 with no bundle.
fn state() -> State {
    let mut state = State::new();
    let commands = [
        Command::RegisterBundle(ComposedBundle::new(bid("x"))),
        Command::RegisterBundle(ComposedBundle::new(bid("y"))),
        Command::OpenSession { session: s(1), authority: a("a"), bundle: Some(bid("x")) },
        Command::OpenSession { session: s(2), authority: a("a"), bundle: None },
    ];
    for (seq, c) in (1..).zip(&commands) {
        let f = state.check(c, 0).unwrap();
        state.apply(seq, &f);
    }
    state
}

#[test]
fn an_owner_attaches_only_for_the_bundle_its_session_runs() {
    let state = state();
    assert_eq!(
        state.check_attach(&s(1), &LinkBoundary::for_bundle(&bid("y"))),
        Err(CommandError::SessionBundleMismatch {
            session: s(1),
            session_bundle: bid("x"),
            bundle: bid("y")
        })
    );
    assert_eq!(state.check_attach(&s(1), &LinkBoundary::for_bundle(&bid("x"))), Ok(1));
    // A session opened without a bundle takes any registered one.
    assert_eq!(state.check_attach(&s(2), &LinkBoundary::for_bundle(&bid("y"))), Ok(1));
    assert!(matches!(
        state.check_attach(&s(2), &LinkBoundary::for_bundle(&bid("nope"))),
        Err(CommandError::UnknownBundle { .. })
    ));
}

#[test]
fn a_delegation_moves_only_its_own_bundles_fragments() {
    let state = state();
    let d =
        Delegation::new(s(1), a("a"), a("b"), bid("x")).with_scope(CapabilityScope::fragments(["bundle:y"]));
    assert_eq!(
        state.check(&Command::Delegate(d), 5),
        Err(CommandError::ScopeNamesOtherBundle { bundle: bid("x"), fragment: "bundle:y".into() })
    );
    // Free-form fragments and the bundle's own are fine.
    let d = Delegation::new(s(1), a("a"), a("b"), bid("x"))
        .with_scope(CapabilityScope::fragments(["bundle:x", "ledger"]));
    assert!(state.check(&Command::Delegate(d), 5).is_ok());
}

#[test]
fn a_delegation_never_rebinds_a_session_to_another_bundle() {
    let mut state = state();
    let through_y = Command::Delegate(Delegation::new(s(1), a("a"), a("b"), bid("y")));
    assert_eq!(
        state.check(&through_y, 5),
        Err(CommandError::SessionBundleMismatch {
            session: s(1),
            session_bundle: bid("x"),
            bundle: bid("y")
        })
    );
    assert_eq!(state.session(&s(1)).unwrap().bundle, Some(bid("x")));
    // The first delegation of a session opened without a bundle binds it; then it is held
    // to that bundle like any other.
    let f = state.check(&Command::Delegate(Delegation::new(s(2), a("a"), a("b"), bid("y"))), 5).unwrap();
    state.apply(5, &f);
    assert_eq!(state.session(&s(2)).unwrap().bundle, Some(bid("y")));
    let back = Command::Delegate(Delegation::new(s(2), a("b"), a("a"), bid("x")));
    assert!(matches!(state.check(&back, 6), Err(CommandError::SessionBundleMismatch { .. })));
    // Within one batch too: the check sees the binding the earlier command made.
    let mut c = state.checker();
    c.check(&Command::Delegate(Delegation::new(s(2), a("b"), a("c"), bid("y"))), 7).unwrap();
    assert!(matches!(
        c.check(&Command::Delegate(Delegation::new(s(2), a("c"), a("d"), bid("x"))), 7),
        Err(CommandError::SessionBundleMismatch { .. })
    ));
}

fn scope_strategy() -> impl Strategy<Value = CapabilityScope> {
    prop_oneof![
        Just(CapabilityScope::WholeSession),
        proptest::collection::btree_set(prop_oneof![Just("bundle:x"), Just("bundle:y"), Just("f")], 1..3)
            .prop_map(CapabilityScope::fragments),
    ]
}

proptest! {
    /// Whatever session, generation, scope, bundle and token a capability is made of, it is
    /// accepted only when it is the very capability the manager issued (same generation,
    /// same token), and then only for the issued bundle and scope.
    #[test]
    fn random_capabilities_are_never_accepted_unless_issued(
        issued_tokens in proptest::array::uniform3(any::<[u8; 16]>()),
        session in 0u128..4,
        generation in 0u64..4,
        scope in scope_strategy(),
        bundle in prop_oneof![Just("x"), Just("y")],
        token in any::<[u8; 16]>(),
        reuse_token in any::<bool>(),
        boundary_scope in scope_strategy(),
        boundary_bundle in prop_oneof![Just("x"), Just("y")],
    ) {
        let mut live = LiveSessions::default();
        let mut issued = Vec::new();
        for (n, t) in issued_tokens.iter().enumerate() {
            let boundary = LinkBoundary { bundle: bid("x"), scope: CapabilityScope::WholeSession };
            let cap = live
                .attach(s(n as u128), OwnerLabel::new("o").unwrap(), 1, boundary, OwnerToken::from_bytes(*t))
                .unwrap();
            issued.push(cap);
        }
        // Sometimes the attacker even knows a real token, of this or another session.
        let token = if reuse_token { issued[(session % 3) as usize].token } else { OwnerToken::from_bytes(token) };
        let cap = OwnerCapability { session: s(session), generation, scope, bundle: bid(bundle), token };
        let boundary = LinkBoundary { bundle: bid(boundary_bundle), scope: boundary_scope };
        if live.check_ingress(&cap, &boundary).is_ok() {
            let real = issued.iter().find(|c| c.session == cap.session).expect("a live session");
            prop_assert_eq!(cap.generation, real.generation);
            prop_assert!(cap.token == real.token);
            prop_assert_eq!(&boundary.bundle, &real.bundle);
            prop_assert!(real.scope.covers(&boundary.scope));
        }
    }
}
