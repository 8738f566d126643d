//! Scenario tests for staged runtime upgrades: one test per rule and outcome.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod upgrade_support;

use reconf_core::upgrade::*;
use upgrade_support::*;

use UpgradePhase::{Admitted, CommittedCutover, Failed, RolledBack, Staged};

fn seeded(members: &[&str]) -> (Harness, reconf_core::BundleId) {
    let mut h = Harness::new();
    let b = bundle("wallet");
    h.seed(&b, members, false).unwrap();
    (h, b)
}

// ---- seeding -------------------------------------------------------------------------

#[test]
fn seeding_records_a_membership_event_at_epoch_zero() {
    let (h, b) = seeded(&["b", "a", "a"]);
    assert_eq!(h.book.members(&b), Some(&set(&["a", "b"])));
    assert_eq!(h.book.epoch(&b), FIRST_EPOCH);
    assert_eq!(h.book.history(&b)[0].epoch, 0, "telltale's anchor: seeding is epoch 0");
    let events = h.book.history(&b);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].previous, set(&[]));
    assert_eq!(events[0].added, set(&["a", "b"]));
    assert_eq!(events[0].cause, MembershipCause::Seeded { forced: false });
}

#[test]
fn seeding_an_empty_membership_is_refused() {
    let h = Harness::new();
    let err = h.book.check_seed(&bundle("wallet"), [], OnHistory::Refuse).unwrap_err();
    assert_eq!(err, UpgradeError::EmptyMembership { bundle: bundle("wallet") });
    assert!(err.to_string().contains("wallet"));
}

#[test]
fn seeding_over_history_needs_force() {
    let (mut h, b) = seeded(&["a"]);
    let err = h.seed(&b, &["x"], false).unwrap_err();
    assert_eq!(err, UpgradeError::HistoryExists { bundle: b.clone(), epoch: 0, members: set(&["a"]) });
    assert_eq!(
        err.to_string(),
        "bundle wallet already has membership history (epoch 0, members [a]); seeding over it needs force"
    );
    h.seed(&b, &["x"], true).unwrap();
    assert_eq!(h.book.members(&b), Some(&set(&["x"])));
    assert_eq!(h.book.epoch(&b), 1, "a forced re-seed is one change after the seeding");
    let last = h.book.history(&b).last().unwrap();
    assert_eq!((last.added.clone(), last.removed.clone()), (set(&["x"]), set(&["a"])));
    assert_eq!(last.cause, MembershipCause::Seeded { forced: true });
}

#[test]
fn force_on_a_fresh_bundle_is_not_recorded_as_forced() {
    let h = Harness::new();
    let fact = h.book.check_seed(&bundle("w"), [m("a")], OnHistory::Replace).unwrap();
    assert!(matches!(fact, UpgradeFact::MembershipSeeded { forced: false, .. }));
}

#[test]
fn seeding_during_an_upgrade_is_refused_even_with_force() {
    let (mut h, b) = seeded(&["a"]);
    h.upgrade_until(&b, &request("u1", vec![step("s1", &["a", "b"])]), None, None, Stop::AfterPhases(1))
        .unwrap();
    let err = h.book.check_seed(&b, [m("z")], OnHistory::Replace).unwrap_err();
    assert_eq!(err, UpgradeError::UpgradeInFlight { bundle: b, in_flight: uid("u1") });
}

// ---- begin preconditions -------------------------------------------------------------

#[test]
fn upgrading_an_unseeded_bundle_is_refused() {
    let h = Harness::new();
    let err = h.book.check_begin(&bundle("w"), &request("u1", vec![step("s1", &["a"])]), None).unwrap_err();
    assert_eq!(err, UpgradeError::NotSeeded { bundle: bundle("w") });
    assert!(err.to_string().contains("seed it before upgrading"));
}

#[test]
fn the_expected_epoch_guards_against_racing_upgrades() {
    let (mut h, b) = seeded(&["a"]);
    let req = request("u1", vec![step("s1", &["a", "b"])]);
    let err = h.book.check_begin(&b, &req, Some(1)).unwrap_err();
    assert_eq!(err, UpgradeError::EpochMismatch { bundle: b.clone(), expected: 1, actual: 0 });
    assert_eq!(err.to_string(), "bundle wallet is at epoch 0, not the expected 1");
    assert!(h.upgrade(&b, &req, Some(0), None).is_ok());
    // A second racer that read epoch 0 is refused, nothing written.
    let before = h.journal.len();
    let racer = request("u2", vec![step("s1", &["a"])]);
    assert!(matches!(
        h.upgrade(&b, &racer, Some(0), None),
        Err(UpgradeError::EpochMismatch { actual: 1, .. })
    ));
    assert_eq!(h.journal.len(), before);
}

#[test]
fn at_most_one_upgrade_is_in_flight_per_bundle() {
    let (mut h, b) = seeded(&["a"]);
    h.seed(&bundle("other"), &["a"], false).unwrap();
    h.upgrade_until(&b, &request("u1", vec![step("s1", &["a", "b"])]), None, None, Stop::AfterPhases(2))
        .unwrap();
    let err = h.book.check_begin(&b, &request("u2", vec![step("s1", &["a"])]), None).unwrap_err();
    assert_eq!(err, UpgradeError::UpgradeInFlight { bundle: b.clone(), in_flight: uid("u1") });
    assert_eq!(err.to_string(), "bundle wallet already has upgrade u1 in flight");
    // Other bundles are not blocked.
    assert!(h.upgrade(&bundle("other"), &request("u2", vec![step("s1", &["a", "c"])]), None, None).is_ok());
    // The same id again while in flight is refused too (it is running, not recorded).
    assert!(matches!(
        h.book.check_begin(&b, &request("u1", vec![step("s1", &["a", "b"])]), None),
        Err(UpgradeError::UpgradeInFlight { .. })
    ));
}

#[test]
fn a_request_of_a_newer_schema_is_refused() {
    let (h, b) = seeded(&["a"]);
    let mut req = request("u1", vec![step("s1", &["a"])]);
    req.schema_version = UPGRADE_SCHEMA_VERSION + 1;
    assert!(matches!(h.book.check_begin(&b, &req, None), Err(UpgradeError::UnsupportedSchema { .. })));
}

// ---- outcomes ------------------------------------------------------------------------

#[test]
fn success_commits_the_last_steps_members_one_epoch_per_step() {
    let (mut h, b) = seeded(&["a", "b"]);
    let req = request(
        "u1",
        vec![step("s1", &["a", "b", "c"]), step("s2", &["b", "c"]), step("s3", &["c", "b", "d"])],
    );
    let x = h.upgrade(&b, &req, Some(0), None).unwrap();
    assert_eq!(x.phase_sequence(), [Staged, Admitted, CommittedCutover]);
    assert_eq!(x.outcome(), Some(CommittedCutover));
    assert_eq!(h.book.members(&b), Some(&set(&["b", "c", "d"])));
    assert_eq!(h.book.epoch(&b), 3);
    let steps: Vec<_> = h.book.history(&b)[1..]
        .iter()
        .map(|e| (e.epoch, e.added.clone(), e.removed.clone(), e.cause.clone()))
        .collect();
    let cause = |s: &str| MembershipCause::Step { upgrade_id: uid("u1"), step_id: sid(s) };
    assert_eq!(
        steps,
        vec![
            (1, set(&["c"]), set(&[]), cause("s1")),
            (2, set(&[]), set(&["a"]), cause("s2")),
            (3, set(&["d"]), set(&[]), cause("s3")),
        ]
    );
    // The artifacts carry previous and next members, sorted and unique.
    for a in &x.phases {
        assert_eq!(a.previous_members, set(&["a", "b"]));
        assert_eq!(a.next_members, set(&["b", "c", "d"]));
        assert_eq!(a.reason, None);
    }
    assert_eq!(
        h.journal.iter().map(UpgradeFact::kind).collect::<Vec<_>>(),
        ["upgrade.membership_seeded", "upgrade.staged", "upgrade.admitted", "upgrade.committed"]
    );
}

#[test]
fn the_planned_cutover_is_what_the_commit_records() {
    let (mut h, b) = seeded(&["a"]);
    let req = request("u1", vec![step("s1", &["a", "b"]), step("s2", &["b"])]);
    h.upgrade_until(&b, &req, None, None, Stop::AfterPhases(2)).unwrap();
    let planned = h.book.planned_cutover(&b, &uid("u1")).unwrap();
    let fact = h.book.check_commit(&b, &uid("u1")).unwrap();
    h.write(fact);
    assert_eq!(h.book.history(&b)[1..], planned[..]);
}

#[test]
fn a_failing_step_rolls_back_and_leaves_members_unchanged() {
    let (mut h, b) = seeded(&["a", "b"]);
    let before = h.book.export(&b).unwrap();
    let req = request("u1", vec![step("s1", &["a", "b", "c"]), step("s2", &["b", "c"])]);
    let x = h.upgrade(&b, &req, None, Some(1)).unwrap();
    assert_eq!(x.phase_sequence(), [Staged, Admitted, RolledBack]);
    assert_eq!(x.reason(), Some("step s2 failed: hook failed"));
    let after = h.book.export(&b).unwrap();
    assert_eq!(membership_part(&after), membership_part(&before));
    assert_eq!(after.executions.len(), 1);
    assert_eq!(after.in_flight, None);
}

#[test]
fn an_invalid_request_is_journaled_as_staged_then_failed_with_its_reason() {
    let (mut h, b) = seeded(&["a"]);
    let before = h.book.export(&b).unwrap();
    let req = request("u1", vec![step("s1", &["a"]), step("s1", &["a", "b"])]);
    let err = h.upgrade(&b, &req, None, None).unwrap_err();
    let UpgradeError::Invalid { bundle: eb, upgrade_id, source } = &err else { panic!("{err:?}") };
    assert_eq!((eb, upgrade_id), (&b, &uid("u1")));
    assert_eq!(**source, ValidationError::DuplicateStep { step_id: sid("s1") });
    assert_eq!(
        err.to_string(),
        "upgrade u1 of bundle wallet is invalid: step id s1 is used by more than one step"
    );
    let x = h.book.execution(&b, &uid("u1")).unwrap();
    assert_eq!(x.phase_sequence(), [Staged, Failed]);
    assert_eq!(x.reason(), Some("step id s1 is used by more than one step"));
    assert_eq!(membership_part(&h.book.export(&b).unwrap()), membership_part(&before));
}

#[test]
fn an_upgrade_aborted_before_admission_rolls_back_from_staged() {
    let (mut h, b) = seeded(&["a"]);
    h.upgrade_until(&b, &request("u1", vec![step("s1", &["a", "b"])]), None, None, Stop::AfterPhases(1))
        .unwrap();
    let fact = h
        .book
        .check_rollback(&b, &uid("u1"), RollbackCause::Aborted { message: "capability refused".into() })
        .unwrap();
    h.write(fact);
    let x = h.book.execution(&b, &uid("u1")).unwrap();
    assert_eq!(x.phase_sequence(), [Staged, RolledBack]);
    assert_eq!(x.reason(), Some("aborted: capability refused"));
}

// ---- idempotence ---------------------------------------------------------------------

#[test]
fn repeating_an_upgrade_id_returns_the_recorded_execution_without_running_it() {
    let (mut h, b) = seeded(&["a"]);
    let ok = request("ok", vec![step("s1", &["a", "b"])]);
    let rolled = request("rolled", vec![step("s1", &["a", "c"])]);
    let bad = request("bad", vec![]);
    let x_ok = h.upgrade(&b, &ok, Some(0), None).unwrap();
    let x_rolled = h.upgrade(&b, &rolled, None, Some(0)).unwrap();
    assert!(h.upgrade(&b, &bad, None, None).is_err());
    let x_bad = h.book.execution(&b, &uid("bad")).unwrap().clone();
    let journal = h.journal.len();
    let snapshot = h.book.export(&b);
    // Even with the stale expected epoch of the first run: a retry must get its answer.
    for (req, x) in [(&ok, &x_ok), (&rolled, &x_rolled), (&bad, &x_bad)] {
        assert_eq!(h.book.check_begin(&b, req, Some(1)).unwrap(), Begin::AlreadyRecorded(x.clone()));
    }
    // Ids in another order are the same request.
    let reordered = ok.clone().carrying_publications([]).carrying_obligations([]);
    assert!(matches!(h.book.check_begin(&b, &reordered, None), Ok(Begin::AlreadyRecorded(_))));
    assert_eq!(h.journal.len(), journal);
    assert_eq!(h.book.export(&b), snapshot);
}

#[test]
fn reusing_an_upgrade_id_for_another_request_is_refused() {
    let (mut h, b) = seeded(&["a"]);
    h.upgrade(&b, &request("u1", vec![step("s1", &["a", "b"])]), None, None).unwrap();
    let other = request("u1", vec![step("s1", &["a", "c"])]);
    let err = h.book.check_begin(&b, &other, None).unwrap_err();
    assert_eq!(err, UpgradeError::UpgradeIdConflict { bundle: b.clone(), upgrade_id: uid("u1") });
    assert_eq!(err.to_string(), "upgrade id u1 of bundle wallet was already used for a different request");
    // The same plan carrying other publications or obligations is another request too.
    let same_plan = request("u1", vec![step("s1", &["a", "b"])]);
    let carrying = [
        same_plan.clone().carrying_publications([PublicationId::new("p1").unwrap()]),
        same_plan.clone().carrying_obligations([ObligationId::new("o1").unwrap()]),
    ];
    for other in carrying {
        let err = h.book.check_begin(&b, &other, None).unwrap_err();
        assert_eq!(err, UpgradeError::UpgradeIdConflict { bundle: b.clone(), upgrade_id: uid("u1") });
    }
    // Each phase fact carries its artifact; the others carry none.
    let phases: Vec<_> = h.journal.iter().filter_map(UpgradeFact::artifact).map(|a| a.phase).collect();
    let recorded: Vec<_> = h.book.execution(&b, &uid("u1")).unwrap().phases.iter().map(|a| a.phase).collect();
    assert_eq!(phases, recorded);
    assert!(h
        .journal
        .iter()
        .any(|f| matches!(f, UpgradeFact::MembershipSeeded { .. }) && f.artifact().is_none()));
}

#[test]
fn upgrade_ids_are_per_bundle() {
    let (mut h, b) = seeded(&["a"]);
    let other = bundle("other");
    h.seed(&other, &["a"], false).unwrap();
    let req = request("u1", vec![step("s1", &["a", "b"])]);
    h.upgrade(&b, &req, None, None).unwrap();
    assert!(matches!(h.book.check_begin(&other, &req, None), Ok(Begin::Staged(_))));
}

// ---- phase commands ------------------------------------------------------------------

#[test]
fn phase_commands_out_of_order_are_refused_with_the_phase_named() {
    let (mut h, b) = seeded(&["a"]);
    let id = uid("u1");
    let req = request("u1", vec![step("s1", &["a", "b"])]);
    assert_eq!(
        h.book.check_admit(&b, &id),
        Err(UpgradeError::NotInFlight { bundle: b.clone(), upgrade_id: id.clone() })
    );
    h.upgrade_until(&b, &req, None, None, Stop::AfterPhases(1)).unwrap();
    let err = h.book.check_commit(&b, &id).unwrap_err();
    assert_eq!(
        err,
        UpgradeError::WrongPhase {
            bundle: b.clone(),
            upgrade_id: id.clone(),
            expected: Admitted,
            actual: Staged
        }
    );
    assert_eq!(err.to_string(), "upgrade u1 of bundle wallet is staged; this needs it admitted");
    let step_failed = RollbackCause::StepFailed { step_id: sid("s1"), message: "x".into() };
    assert!(matches!(
        h.book.check_rollback(&b, &id, step_failed.clone()),
        Err(UpgradeError::WrongPhase { .. })
    ));
    let admit = h.book.check_admit(&b, &id).unwrap();
    h.write(admit);
    assert!(matches!(h.book.check_admit(&b, &id), Err(UpgradeError::WrongPhase { expected: Staged, .. })));
    let unknown = RollbackCause::StepFailed { step_id: sid("nope"), message: "x".into() };
    let err = h.book.check_rollback(&b, &id, unknown).unwrap_err();
    assert_eq!(err.to_string(), "upgrade u1 of bundle wallet has no step nope");
    assert!(matches!(h.book.check_admit(&b, &uid("u9")), Err(UpgradeError::NotInFlight { .. })));
    let commit = h.book.check_commit(&b, &id).unwrap();
    h.write(commit);
    for err in [
        h.book.check_admit(&b, &id).unwrap_err(),
        h.book.check_commit(&b, &id).unwrap_err(),
        h.book.check_rollback(&b, &id, step_failed).unwrap_err(),
        h.book.planned_cutover(&b, &id).unwrap_err(),
    ] {
        assert_eq!(
            err,
            UpgradeError::AlreadyFinished {
                bundle: b.clone(),
                upgrade_id: id.clone(),
                outcome: CommittedCutover
            }
        );
    }
}

// ---- validation rules, each with its own error ---------------------------------------

fn invalid(req: RuntimeUpgradeRequest, active: &[&str]) -> ValidationError {
    let (mut h, b) = seeded(active);
    match h.upgrade(&b, &req, None, None) {
        Err(UpgradeError::Invalid { source, .. }) => {
            assert_eq!(req.validate(&set(active)), Err((*source).clone()), "dry run agrees");
            *source
        }
        other => panic!("expected invalid, got {other:?}"),
    }
}

fn valid(req: RuntimeUpgradeRequest, active: &[&str]) {
    let (mut h, b) = seeded(active);
    let x = h.upgrade(&b, &req, None, None).unwrap();
    assert_eq!(x.outcome(), Some(CommittedCutover));
}

fn pubs(ids: &[&str]) -> Vec<PublicationId> {
    ids.iter().map(|s| PublicationId::new(*s).unwrap()).collect()
}

fn obls(ids: &[&str]) -> Vec<ObligationId> {
    ids.iter().map(|s| ObligationId::new(*s).unwrap()).collect()
}

fn with_contract(
    mut req: RuntimeUpgradeRequest,
    f: impl FnOnce(&mut CompatibilityContract),
) -> RuntimeUpgradeRequest {
    f(&mut req.contract);
    req
}

#[test]
fn rule_1_a_plan_needs_a_step() {
    assert_eq!(invalid(request("u", vec![]), &["a"]), ValidationError::NoSteps);
}

#[test]
fn rule_2_no_id_is_both_carried_and_invalidated() {
    let base = || {
        with_contract(request("u", vec![step("s1", &["a"])]), |c| {
            c.publication_continuity = PublicationContinuity::Reissue
        })
    };
    let req =
        base().carrying_publications(pubs(&["p2", "p1"])).invalidating_publications(pubs(&["p2", "p1"]));
    let err = invalid(req, &["a"]);
    assert_eq!(
        err,
        ValidationError::PublicationCarriedAndInvalidated { publication: pubs(&["p1"])[0].clone() }
    );
    assert_eq!(err.to_string(), "publication p1 is both carried and invalidated");
    let req = base().carrying_obligations(obls(&["o1"])).invalidating_obligations(obls(&["o1"]));
    assert_eq!(
        invalid(req, &["a"]),
        ValidationError::ObligationCarriedAndInvalidated { obligation: obls(&["o1"])[0].clone() }
    );
    valid(base().carrying_publications(pubs(&["p1"])).invalidating_publications(pubs(&["p2"])), &["a"]);
}

#[test]
fn rule_3_ownership_continuity_means_every_step_overlaps_the_members_before_it() {
    let req = request("u", vec![step("s1", &["a", "b"]), step("s2", &["c"])]);
    let err = invalid(req.clone(), &["a"]);
    assert_eq!(
        err,
        ValidationError::OwnershipDiscontinuity {
            step_id: sid("s2"),
            previous: set(&["a", "b"]),
            next: set(&["c"])
        }
    );
    assert_eq!(
        err.to_string(),
        "step s2 breaks ownership continuity: its members [c] share none with the members before it [a, b]"
    );
    // The first step is compared with the active members.
    let first = request("u", vec![step("s1", &["z"])]);
    assert!(
        matches!(invalid(first.clone(), &["a"]), ValidationError::OwnershipDiscontinuity { step_id, .. } if step_id == sid("s1"))
    );
    // Not required: a full replacement is allowed.
    valid(with_contract(req, |c| c.ownership_continuity_required = false), &["a"]);
    valid(with_contract(first, |c| c.ownership_continuity_required = false), &["a"]);
}

#[test]
fn rule_4_invalidating_blocked_effects_needs_an_obligation() {
    let req = with_contract(request("u", vec![step("s1", &["a"])]), |c| {
        c.pending_effects = PendingEffectTreatment::InvalidateBlocked
    });
    let err = invalid(req.clone(), &["a"]);
    assert_eq!(err, ValidationError::InvalidateBlockedWithoutObligations);
    valid(req.clone().invalidating_obligations(obls(&["o1"])), &["a"]);
    valid(req.carrying_obligations(obls(&["o1"])), &["a"]);
}

#[test]
fn rule_5_preserved_publications_cannot_be_invalidated() {
    let req = request("u", vec![step("s1", &["a"])]).invalidating_publications(pubs(&["p9", "p3"]));
    let err = invalid(req.clone(), &["a"]);
    assert_eq!(
        err,
        ValidationError::PreservedPublicationInvalidated { publication: pubs(&["p3"])[0].clone() }
    );
    assert_eq!(err.to_string(), "publication continuity is preserve, yet publication p3 is invalidated");
    valid(with_contract(req, |c| c.publication_continuity = PublicationContinuity::Reissue), &["a"]);
}

#[test]
fn rule_6_every_step_has_members() {
    let req = with_contract(request("u", vec![step("s1", &["a"]), step("s2", &[])]), |c| {
        c.ownership_continuity_required = false
    });
    let err = invalid(req, &["a"]);
    assert_eq!(err, ValidationError::EmptyStep { step_id: sid("s2") });
    assert_eq!(err.to_string(), "step s2 has no members");
}

#[test]
fn rule_7_step_ids_are_unique() {
    let req = request("u", vec![step("s1", &["a"]), step("s2", &["a"]), step("s1", &["a"])]);
    assert_eq!(invalid(req, &["a"]), ValidationError::DuplicateStep { step_id: sid("s1") });
}

#[test]
fn rule_8_placements_must_be_valid_and_errors_name_step_and_role() {
    let req = request(
        "u",
        vec![
            step("s1", &["a", "b"]).with_placement(m("b"), Placement::remote("tcp://b")),
            step("s2", &["a", "b"]).with_placement(m("b"), Placement::remote("")),
        ],
    );
    let err = invalid(req, &["a"]);
    assert_eq!(
        err,
        ValidationError::Placement {
            step_id: sid("s2"),
            source: PlacementError::MissingEndpoint { role: m("b") }
        }
    );
    assert_eq!(err.to_string(), "step s2: role b is placed remote but names no endpoint");

    let cases: Vec<(UpgradeStep, PlacementError)> = vec![
        (
            step("s", &["a", "b"]).with_placement(m("a"), Placement::colocated("")),
            PlacementError::MissingPeer { role: m("a") },
        ),
        (
            step("s", &["a", "b"]).with_placement(m("a"), Placement::colocated("a")),
            PlacementError::SelfPeer { role: m("a") },
        ),
        (
            step("s", &["a", "b"])
                .with_placement(m("a"), Placement::colocated("b"))
                .with_placement(m("b"), Placement::colocated("a")),
            PlacementError::ColocationCycle { role: m("a"), cycle: vec![m("a"), m("b"), m("a")] },
        ),
        (
            step("s", &["a", "b"])
                .with_placement(m("a"), Placement::colocated_in("b", "eu"))
                .with_placement(m("b"), Placement::colocated_in("c", "us")),
            PlacementError::UnknownPeer { role: m("b"), peer: "c".into() },
        ),
        (
            step("s", &["a", "b", "c"])
                .with_placement(m("a"), Placement::colocated_in("b", "eu"))
                .with_placement(m("b"), Placement::colocated_in("c", "us")),
            PlacementError::RegionConflict {
                role: m("a"),
                region: "eu".into(),
                peer: m("b"),
                peer_region: "us".into(),
            },
        ),
        (
            step("s", &["a"]).with_placement(m("q"), Placement::Local),
            PlacementError::NotAMember { role: m("q") },
        ),
    ];
    for (s, want) in cases {
        let err = invalid(request("u", vec![s]), &["a"]);
        let ValidationError::Placement { source, .. } = &err else { panic!("{err:?}") };
        assert_eq!(source, &want);
        assert!(err.to_string().contains("role "), "{err}");
    }
}

#[test]
fn rules_are_checked_in_the_documented_order() {
    // Breaks rules 2, 3, 4, 5, 6, 7 and 8 at once: rule 2 is reported, then each in turn
    // once the earlier ones are fixed.
    let mut req =
        request("u", vec![step("s1", &["z"]).with_placement(m("z"), Placement::remote("")), step("s1", &[])])
            .carrying_publications(pubs(&["p"]))
            .invalidating_publications(pubs(&["p"]));
    req.contract.pending_effects = PendingEffectTreatment::InvalidateBlocked;
    let active = set(&["a"]);
    let kinds = |r: &RuntimeUpgradeRequest| r.validate(&active).unwrap_err();
    assert!(matches!(kinds(&req), ValidationError::PublicationCarriedAndInvalidated { .. }));
    req.carried_publications.clear();
    assert!(matches!(kinds(&req), ValidationError::OwnershipDiscontinuity { .. }));
    req.contract.ownership_continuity_required = false;
    assert!(matches!(kinds(&req), ValidationError::InvalidateBlockedWithoutObligations));
    req.contract.pending_effects = PendingEffectTreatment::PreservePending;
    assert!(matches!(kinds(&req), ValidationError::PreservedPublicationInvalidated { .. }));
    req.invalidated_publications.clear();
    assert!(matches!(kinds(&req), ValidationError::EmptyStep { .. }));
    req.plan.steps[1].next_members.push(m("y"));
    assert!(matches!(kinds(&req), ValidationError::DuplicateStep { .. }));
    req.plan.steps[1].step_id = sid("s2");
    assert!(matches!(kinds(&req), ValidationError::Placement { .. }));
    req.plan.steps[0].placements = None;
    assert_eq!(req.validate(&active), Ok(()));
    // Rule 1 comes before everything.
    req.plan.steps.clear();
    req.carried_publications = pubs(&["p"]);
    assert_eq!(req.validate(&active), Err(ValidationError::NoSteps));
}

// ---- recovery ------------------------------------------------------------------------

#[test]
fn recovery_rolls_back_upgrades_left_between_phases() {
    let mut h = Harness::new();
    let (b1, b2, b3) = (bundle("b1"), bundle("b2"), bundle("b3"));
    for b in [&b1, &b2, &b3] {
        h.seed(b, &["a"], false).unwrap();
    }
    let req = request("u1", vec![step("s1", &["a", "b"])]);
    h.upgrade_until(&b1, &req, None, None, Stop::AfterPhases(1)).unwrap();
    h.upgrade_until(&b2, &req, None, None, Stop::AfterPhases(2)).unwrap();
    let before = h.book.export(&b1).unwrap();
    // A restart: the journal is replayed, then recovery closes what was in flight.
    let mut restarted = Harness { book: UpgradeBook::replay(&h.journal), journal: h.journal.clone() };
    assert_eq!(restarted.book, h.book);
    assert_eq!(restarted.recover(), 2);
    let x1 = restarted.book.execution(&b1, &uid("u1")).unwrap();
    assert_eq!(x1.phase_sequence(), [Staged, RolledBack]);
    assert_eq!(x1.reason(), Some("recovered after restart: interrupted after the staged phase"));
    let x2 = restarted.book.execution(&b2, &uid("u1")).unwrap();
    assert_eq!(x2.phase_sequence(), [Staged, Admitted, RolledBack]);
    assert_eq!(x2.reason(), Some("recovered after restart: interrupted after the admitted phase"));
    assert_eq!(membership_part(&restarted.book.export(&b1).unwrap()), membership_part(&before));
    assert_eq!(restarted.book.members(&b2), Some(&set(&["a"])));
    assert!(restarted.book.recovery_facts().is_empty());
    // The bundle is free again; the rolled-back id is recorded and not run again.
    assert!(matches!(restarted.book.check_begin(&b1, &req, None), Ok(Begin::AlreadyRecorded(_))));
    assert!(restarted.upgrade(&b1, &request("u2", vec![step("s1", &["a", "b"])]), None, None).is_ok());
}

#[test]
fn recovery_between_staged_and_failed_records_the_failure() {
    let (mut h, b) = seeded(&["a"]);
    h.upgrade_until(&b, &request("u1", vec![]), None, None, Stop::AfterPhases(1)).unwrap();
    assert_eq!(h.recover(), 1);
    let x = h.book.execution(&b, &uid("u1")).unwrap();
    assert_eq!(x.phase_sequence(), [Staged, Failed]);
    assert_eq!(x.reason(), Some("the plan has no steps"));
}

// ---- snapshots -----------------------------------------------------------------------

fn busy_snapshot() -> (Harness, reconf_core::BundleId, UpgradeSnapshot) {
    let (mut h, b) = seeded(&["a"]);
    h.upgrade(&b, &request("ok", vec![step("s1", &["a", "b"]), step("s2", &["b"])]), None, None).unwrap();
    h.upgrade(&b, &request("rolled", vec![step("s1", &["b", "c"])]), None, Some(0)).unwrap();
    let _ = h.upgrade(&b, &request("bad", vec![]), None, None);
    let snap = h.book.export(&b).unwrap();
    (h, b, snap)
}

#[test]
fn an_exported_snapshot_restores_to_an_equal_book() {
    let (h, b, snap) = busy_snapshot();
    assert_eq!(snap.validate(), Ok(()));
    let mut copy = UpgradeBook::new();
    copy.restore(&b, snap.clone()).unwrap();
    assert_eq!(copy, h.book);
    assert_eq!(copy.export(&b), Some(snap));
    assert_eq!(h.book.export(&bundle("unknown")), None);
}

#[test]
fn tampered_snapshots_are_rejected_with_a_typed_error() {
    let (_, b, snap) = busy_snapshot();
    type Tamper = fn(&mut UpgradeSnapshot);
    type Expected = fn(&SnapshotViolation) -> bool;
    let cases: Vec<(Tamper, Expected)> = vec![
        (|s| s.schema_version += 1, |v| matches!(v, SnapshotViolation::UnsupportedSchema { .. })),
        (|s| s.active_members.clear(), |v| matches!(v, SnapshotViolation::EmptyMembers)),
        (|s| s.history.clear(), |v| matches!(v, SnapshotViolation::MissingHistory)),
        (|s| s.history[2].epoch = 0, |v| matches!(v, SnapshotViolation::EpochNotIncreasing { index: 2, .. })),
        (
            |s| s.history[2].epoch = 1,
            |v| matches!(v, SnapshotViolation::EpochNotIncreasing { index: 2, epoch: 1, previous: 1 }),
        ),
        // Increasing is not enough: the history determines each epoch, one more each time.
        (
            |s| s.history[2].epoch = 3,
            |v| matches!(v, SnapshotViolation::EpochNotIncreasing { index: 2, epoch: 3, previous: 1 }),
        ),
        (|s| s.history.swap(1, 2), |v| matches!(v, SnapshotViolation::EpochNotIncreasing { index: 1, .. })),
        (
            |s| {
                let (first, second) = (s.history[1].epoch, s.history[2].epoch);
                s.history.swap(1, 2);
                s.history[1].epoch = first;
                s.history[2].epoch = second;
            },
            |v| matches!(v, SnapshotViolation::BrokenHistory { epoch: 1 }),
        ),
        (
            |s| s.history[1].previous.insert(m("x")).then_some(()).unwrap(),
            |v| matches!(v, SnapshotViolation::BrokenHistory { epoch: 1 }),
        ),
        (
            |s| s.history[2].added.insert(m("x")).then_some(()).unwrap(),
            |v| matches!(v, SnapshotViolation::WrongDelta { epoch: 2 }),
        ),
        (|s| s.history[2].removed.clear(), |v| matches!(v, SnapshotViolation::WrongDelta { epoch: 2 })),
        (|s| s.epoch += 1, |v| matches!(v, SnapshotViolation::EpochMismatch { event_epoch: 2, epoch: 3 })),
        // The history opens with the first seeding, at epoch 0, from no members.
        (
            |s| {
                for e in &mut s.history {
                    e.epoch += 1;
                }
                s.epoch += 1;
            },
            |v| matches!(v, SnapshotViolation::NotSeededFirst { epoch: 1 }),
        ),
        (
            |s| s.history[0].previous.insert(m("z")).then_some(()).unwrap(),
            |v| matches!(v, SnapshotViolation::NotSeededFirst { .. }),
        ),
        // A step's change needs the committed upgrade that made it.
        (
            |s| {
                s.executions.remove(0);
            },
            |v| matches!(v, SnapshotViolation::UnrecordedStep { epoch: 1, .. }),
        ),
        // ... and the step must be one of that upgrade's own steps.
        (
            |s| {
                if let MembershipCause::Step { step_id, .. } = &mut s.history[1].cause {
                    *step_id = StepId::new("not-in-the-plan").unwrap();
                }
            },
            |v| matches!(v, SnapshotViolation::UnrecordedStep { epoch: 1, .. }),
        ),
        (
            |s| {
                s.active_members.insert(m("x"));
            },
            |v| matches!(v, SnapshotViolation::MembersMismatch { .. }),
        ),
        (
            |s| {
                s.executions[0].phases.remove(1);
            },
            |v| matches!(v, SnapshotViolation::IllegalPhases { .. }),
        ),
        (
            |s| s.executions[1].phases[2].phase = UpgradePhase::Failed,
            |v| matches!(v, SnapshotViolation::IllegalPhases { .. }),
        ),
        (|s| s.executions[2].phases.reverse(), |v| matches!(v, SnapshotViolation::IllegalPhases { .. })),
        (
            |s| s.executions[2].phases[1].upgrade_id = uid("ok"),
            |v| matches!(v, SnapshotViolation::ForeignArtifact { .. }),
        ),
        (
            |s| {
                let x = s.executions[0].clone();
                s.executions.push(x);
            },
            |v| matches!(v, SnapshotViolation::DuplicateUpgrade { .. }),
        ),
        (
            |s| {
                let mut x = s.executions[0].clone();
                x.phases.truncate(2);
                s.in_flight = Some(x);
            },
            |v| matches!(v, SnapshotViolation::DuplicateUpgrade { .. }),
        ),
        (
            |s| s.in_flight = Some(s.executions[0].clone()),
            |v| matches!(v, SnapshotViolation::IllegalInFlight { .. }),
        ),
    ];
    for (i, (tamper, expected)) in cases.into_iter().enumerate() {
        let mut bad = snap.clone();
        tamper(&mut bad);
        let mut book = UpgradeBook::new();
        let err = book.restore(&b, bad.clone()).unwrap_err();
        let UpgradeError::InvalidSnapshot { bundle: eb, source } = &err else { panic!("case {i}: {err:?}") };
        assert_eq!(eb, &b);
        assert!(expected(source), "case {i}: {source:?}");
        assert!(err.to_string().starts_with("snapshot for bundle wallet is rejected: "), "{err}");
        assert_eq!(book, UpgradeBook::new(), "case {i}: nothing restored");
        // The same snapshot inside a serialized book is refused on the way in.
        let json = format!("{{\"wallet\":{}}}", serde_json::to_string(&bad).unwrap());
        assert!(serde_json::from_str::<UpgradeBook>(&json).is_err(), "case {i}");
    }
}

#[test]
fn a_snapshot_with_an_upgrade_in_flight_restores_and_recovers() {
    let (mut h, b) = seeded(&["a"]);
    h.upgrade_until(&b, &request("u1", vec![step("s1", &["a", "b"])]), None, None, Stop::AfterPhases(2))
        .unwrap();
    let snap = h.book.export(&b).unwrap();
    let mut restored = Harness::new();
    restored.book.restore(&b, snap).unwrap();
    assert_eq!(restored.recover(), 1);
    assert_eq!(restored.book.execution(&b, &uid("u1")).unwrap().outcome(), Some(RolledBack));
}

#[test]
fn a_journaled_restore_is_guarded_like_a_seed() {
    let (src, b, snap) = busy_snapshot();
    let (mut h, _) = seeded(&["q"]);
    let err = h.book.check_restore(&b, snap.clone(), OnHistory::Refuse).unwrap_err();
    assert!(matches!(err, UpgradeError::HistoryExists { epoch: 0, .. }));
    let fact = h.book.check_restore(&b, snap.clone(), OnHistory::Replace).unwrap();
    assert_eq!(fact.kind(), "upgrade.snapshot_restored");
    assert_eq!(h.write(fact), UpgradeApplied::Restored { bundle: b.clone(), epoch: 2 });
    assert_eq!(h.book, src.book);
    assert_eq!(UpgradeBook::replay(&h.journal), h.book);
    let mut bad = snap;
    bad.active_members.clear();
    assert!(matches!(
        h.book.check_restore(&b, bad, OnHistory::Replace),
        Err(UpgradeError::InvalidSnapshot { .. })
    ));
    h.upgrade_until(&b, &request("u9", vec![step("s1", &["b", "c"])]), None, None, Stop::AfterPhases(1))
        .unwrap();
    let again = h.book.export(&b).unwrap();
    assert!(matches!(
        h.book.check_restore(&b, again, OnHistory::Replace),
        Err(UpgradeError::UpgradeInFlight { .. })
    ));
}

// ---- apply is total ------------------------------------------------------------------

#[test]
fn facts_that_do_not_fit_are_ignored_and_the_book_stays_valid() {
    let (mut h, b) = seeded(&["a"]);
    let req = request("u1", vec![step("s1", &["a", "b"])]);
    h.upgrade_until(&b, &req, None, None, Stop::AfterPhases(1)).unwrap();
    let staged = h.book.execution(&b, &uid("u1")).unwrap().phases[0].clone();
    let fact = |phase, bundle: &reconf_core::BundleId| UpgradeFact::PhaseRecorded {
        bundle: bundle.clone(),
        artifact: Box::new(PhaseArtifact { phase, ..staged.clone() }),
    };
    let mut empty_step = staged.clone();
    empty_step.plan.steps[0].next_members.clear();
    let odd = [
        fact(Admitted, &bundle("never-seeded")),
        fact(CommittedCutover, &b), // not admitted yet
        fact(Staged, &b),           // already in flight
        UpgradeFact::MembershipSeeded { bundle: b.clone(), members: set(&[]), forced: true },
        UpgradeFact::PhaseRecorded {
            bundle: b.clone(),
            artifact: Box::new(PhaseArtifact { upgrade_id: uid("zz"), ..staged.clone() }),
        },
    ];
    let before = h.book.clone();
    for f in &odd {
        assert!(matches!(h.book.apply(f), UpgradeApplied::Ignored { .. }), "{f:?}");
    }
    assert_eq!(h.book, before);
    // A committed cutover with an empty step cannot produce a valid membership.
    h.write(fact(Admitted, &b));
    let bad_commit = UpgradeFact::PhaseRecorded {
        bundle: b.clone(),
        artifact: Box::new(PhaseArtifact { phase: CommittedCutover, ..empty_step }),
    };
    assert!(matches!(h.book.apply(&bad_commit), UpgradeApplied::Ignored { .. }));
    h.write(fact(CommittedCutover, &b));
    assert!(matches!(h.book.apply(&fact(RolledBack, &b)), UpgradeApplied::Ignored { .. }));
    // Every bundle still exports a valid snapshot, so the book round-trips.
    for bundle in h.book.bundles() {
        assert_eq!(h.book.export(bundle).unwrap().validate(), Ok(()));
    }
    let bytes = postcard::to_allocvec(&h.book).unwrap();
    assert_eq!(postcard::from_bytes::<UpgradeBook>(&bytes).unwrap(), h.book);
}

// ---- serde ---------------------------------------------------------------------------

#[test]
fn books_facts_and_requests_round_trip() {
    let (h, _, _) = busy_snapshot();
    let json = serde_json::to_string(&h.book).unwrap();
    assert_eq!(serde_json::from_str::<UpgradeBook>(&json).unwrap(), h.book);
    let bytes = postcard::to_allocvec(&h.book).unwrap();
    assert_eq!(postcard::from_bytes::<UpgradeBook>(&bytes).unwrap(), h.book);
    for f in &h.journal {
        let bytes = postcard::to_allocvec(f).unwrap();
        assert_eq!(&postcard::from_bytes::<UpgradeFact>(&bytes).unwrap(), f);
    }
    // Equal books serialize to equal bytes.
    assert_eq!(postcard::to_allocvec(&UpgradeBook::replay(&h.journal)).unwrap(), bytes);
}

#[test]
fn a_minimal_json_request_takes_the_defaults() {
    let json = r#"{
        "upgrade_id": "release-1",
        "plan": { "plan_id": "p", "steps": [
            { "step_id": "s1", "next_members": ["a", "b"],
              "placements": [ { "role": "b", "placement": { "Colocated": { "peer": "a" } } } ] }
        ] }
    }"#;
    let req: RuntimeUpgradeRequest = serde_json::from_str(json).unwrap();
    assert_eq!(req.schema_version, UPGRADE_SCHEMA_VERSION);
    assert_eq!(req.contract, CompatibilityContract::default());
    assert!(req.contract.ownership_continuity_required);
    assert_eq!(req.validate(&set(&["a"])), Ok(()));
    assert!(
        serde_json::from_str::<RuntimeUpgradeRequest>(&json.replace("\"a\", \"b\"", "\"a\", \"\"")).is_err()
    );
}

#[test]
fn a_scoped_book_checks_a_batch_for_one_bundle_like_the_whole_book() {
    let (mut h, b) = seeded(&["a"]);
    h.seed(&bundle("other"), &["z"], false).unwrap();
    let mut scoped = h.book.scoped(&b);
    assert_eq!(scoped.bundles().collect::<Vec<_>>(), [&b]);
    assert_eq!(h.book.scoped(&bundle("nothing")), UpgradeBook::new());
    // A batch: seed over history (forced), then begin an upgrade that needs the new
    // members; the second command is checked against the book as the first leaves it.
    let seed = scoped.check_seed(&b, [m("x")], OnHistory::Replace).unwrap();
    scoped.apply(&seed);
    let Begin::Staged(staged) =
        scoped.check_begin(&b, &request("u1", vec![step("s1", &["x", "y"])]), Some(1)).unwrap()
    else {
        panic!("valid")
    };
    h.write(seed);
    h.write(staged);
    assert_eq!(h.book.in_flight(&b).map(|x| x.upgrade_id.clone()), Some(uid("u1")));
}
