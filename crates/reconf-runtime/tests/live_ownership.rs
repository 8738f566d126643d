//! The live-ownership holes an adversarial caller could use, each closed: a boundary of
//! another bundle, an owner attached for another bundle, a delegation moving another
//! bundle's fragment or rebinding its session, a capability made by hand, and closing or
//! detaching with a fragment-scoped or stale handle.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

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

/// Bundles `x` and `y`; session 1 runs `x`, held by `a`.
async fn manager() -> ReconfigurationManager {
    let m = ManagerBuilder::new().memory_journal().without_manifests().open().await.unwrap();
    for b in ["x", "y"] {
        m.register_bundle(ComposedBundle::new(bid(b))).await.unwrap();
    }
    m.open_session(s(1), a("a"), Some(bid("x"))).await.unwrap();
    m
}

fn whole(bundle: &str) -> LinkBoundary {
    LinkBoundary { bundle: bid(bundle), scope: CapabilityScope::WholeSession }
}

#[tokio::test]
async fn a_boundary_of_another_bundle_is_refused_at_ingress() {
    let m = manager().await;
    let h = m.attach_owner(s(1), owner("n1"), whole("x")).await.unwrap();
    assert!(m.check_ingress(&h.capability, &whole("x")).is_ok());
    let e = m.check_ingress(&h.capability, &LinkBoundary::for_bundle(&bid("y"))).unwrap_err();
    assert!(matches!(e, OwnershipError::WrongBundle { .. }), "{e:?}");
    let fragment_of_x_on_y =
        LinkBoundary { bundle: bid("y"), scope: CapabilityScope::fragments(["bundle:x"]) };
    assert!(matches!(
        m.check_ingress(&h.capability, &fragment_of_x_on_y),
        Err(OwnershipError::WrongBundle { .. })
    ));
}

#[tokio::test]
async fn an_owner_is_attached_only_for_its_sessions_bundle() {
    let m = manager().await;
    let e = m.attach_owner(s(1), owner("n1"), whole("y")).await.unwrap_err();
    assert!(matches!(e, ManagerError::Rejected(CommandError::SessionBundleMismatch { .. })), "{e:?}");
    assert!(m.live_owner(&s(1)).is_none());
}

#[tokio::test]
async fn a_delegation_cannot_move_another_bundles_fragment_or_rebind_its_session() {
    let m = manager().await;
    let other_fragment = DelegationRequest::new(s(1), a("a"), a("b"), bid("x"))
        .with_scope(CapabilityScope::fragments(["bundle:y"]));
    let e = m.delegate_session(other_fragment).await.unwrap_err();
    assert!(matches!(e, ManagerError::Rejected(CommandError::ScopeNamesOtherBundle { .. })), "{e:?}");
    let e = m.delegate_session(DelegationRequest::new(s(1), a("a"), a("b"), bid("y"))).await.unwrap_err();
    assert!(matches!(e, ManagerError::Rejected(CommandError::SessionBundleMismatch { .. })), "{e:?}");
    let record = m.session(&s(1)).unwrap();
    assert_eq!((record.holder, record.bundle), (a("a"), Some(bid("x"))), "nothing changed");
}

#[tokio::test]
async fn a_capability_made_by_hand_is_refused() {
    let m = manager().await;
    let h = m.attach_owner(s(1), owner("n1"), whole("x")).await.unwrap();
    // Everything a caller can see or guess, but not the token the manager chose.
    let forged = OwnerCapability {
        session: h.capability.session,
        generation: h.capability.generation,
        scope: h.capability.scope.clone(),
        bundle: h.capability.bundle.clone(),
        token: OwnerToken::from_bytes([0; 16]),
    };
    assert!(matches!(m.check_ingress(&forged, &whole("x")), Err(OwnershipError::NotIssued { .. })));
    let forged_handle = OwnedSession { capability: forged, ..h.clone() };
    let e = m
        .delegate_active_session(
            &forged_handle,
            DelegationRequest::new(s(1), a("a"), a("b"), bid("x")),
            owner("n2"),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, ManagerError::Ownership(OwnershipError::NotIssued { .. })), "{e:?}");
    assert!(matches!(
        m.close_owned_session(&forged_handle).await,
        Err(ManagerError::Ownership(OwnershipError::NotIssued { .. }))
    ));
    // The token never shows in what a handle prints.
    let printed = format!("{h:?}");
    assert!(printed.contains("OwnerToken(..)"), "{printed}");
}

#[tokio::test]
async fn closing_and_detaching_need_a_current_whole_session_handle() {
    let m = manager().await;
    m.open_session(s(2), a("a"), Some(bid("x"))).await.unwrap();
    // A fragment owner cannot close the whole session, nor detach it.
    let fragment = m.attach_owner(s(1), owner("f"), LinkBoundary::for_bundle(&bid("x"))).await.unwrap();
    let e = m.close_owned_session(&fragment).await.unwrap_err();
    assert!(matches!(e, ManagerError::Ownership(OwnershipError::NotWholeSession { .. })), "{e:?}");
    assert!(matches!(
        m.detach_owner(&fragment).await,
        Err(ManagerError::Ownership(OwnershipError::NotWholeSession { .. }))
    ));
    assert!(m.session(&s(1)).is_some() && m.live_owner(&s(1)).is_some());

    // A stale whole-session handle (the session was handed over since) is refused.
    let old = m.attach_owner(s(2), owner("w1"), whole("x")).await.unwrap();
    let request = DelegationRequest::new(s(2), a("a"), a("b"), bid("x"))
        .with_boundary(whole("x"))
        .with_scope(CapabilityScope::WholeSession);
    let moved = m.delegate_active_session(&old, request, owner("w2")).await.unwrap();
    assert!(matches!(
        m.close_owned_session(&old).await,
        Err(ManagerError::Ownership(OwnershipError::StaleOwner { .. }))
    ));
    assert!(matches!(
        m.detach_owner(&old).await,
        Err(ManagerError::Ownership(OwnershipError::StaleOwner { .. }))
    ));

    // The current one closes the session as its holder and is detached with it.
    m.close_owned_session(&moved.owned).await.unwrap();
    assert!(m.session(&s(2)).is_none());
    assert!(m.live_owner(&s(2)).is_none());

    // Detaching leaves the session open, and the session can be attached again.
    m.open_session(s(3), a("a"), Some(bid("x"))).await.unwrap();
    let w = m.attach_owner(s(3), owner("w"), whole("x")).await.unwrap();
    m.detach_owner(&w).await.unwrap();
    assert!(m.session(&s(3)).is_some() && m.live_owner(&s(3)).is_none());
    assert!(matches!(m.check_ingress(&w.capability, &whole("x")), Err(OwnershipError::NotLive { .. })));
    m.attach_owner(s(3), owner("w2"), whole("x")).await.unwrap();
}
