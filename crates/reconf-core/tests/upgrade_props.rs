//! Property tests of the upgrade book against a deliberately naive reference model, plus
//! the replay, restore, recovery and "failure changes nothing" properties.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod upgrade_support;

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use reconf_core::upgrade::*;
use reconf_core::BundleId;
use upgrade_support::*;

const BUNDLES: [&str; 2] = ["b0", "b1"];
const POOL: [&str; 4] = ["a", "b", "c", "d"];

#[derive(Debug, Clone)]
enum Op {
    Seed { b: usize, members: Vec<&'static str>, force: bool },
    Upgrade { b: usize, req: RuntimeUpgradeRequest, expected: Option<u64>, fail_at: Option<usize> },
    Crash { b: usize, req: RuntimeUpgradeRequest, after: usize },
    Recover,
}

fn arb_members(min: usize) -> impl Strategy<Value = Vec<&'static str>> {
    prop::collection::vec(prop::sample::select(POOL.to_vec()), min..4)
}

fn arb_step(i: usize) -> impl Strategy<Value = UpgradeStep> {
    let members = prop_oneof![9 => arb_members(1), 1 => Just(vec![])];
    let placements = prop_oneof![
        7 => Just(None),
        1 => prop::collection::vec((prop::sample::select(POOL.to_vec()), prop::bool::weighted(0.8)), 0..3)
            .prop_map(Some),
    ];
    (members, placements, prop::bool::weighted(0.05)).prop_map(move |(members, placements, dup)| {
        let id = if dup { "s0".to_owned() } else { format!("s{i}") };
        let mut s = step(&id, &members);
        for (role, endpoint) in placements.into_iter().flatten() {
            s = s.with_placement(m(role), Placement::remote(if endpoint { "tcp://h:1" } else { "" }));
        }
        s
    })
}

fn arb_ids(pool: &'static [&'static str], weight_empty: u32) -> impl Strategy<Value = Vec<&'static str>> {
    prop_oneof![
        weight_empty => Just(vec![]),
        1 => prop::collection::vec(prop::sample::select(pool.to_vec()), 1..3),
    ]
}

fn arb_request() -> impl Strategy<Value = RuntimeUpgradeRequest> {
    let steps = prop_oneof![1 => Just(0usize), 12 => 1usize..4]
        .prop_flat_map(|n| (0..n).map(arb_step).collect::<Vec<_>>());
    let contract =
        (any::<bool>(), prop::bool::weighted(0.35), prop::bool::weighted(0.8), prop::bool::weighted(0.7))
            .prop_map(|(mixed, continuity, preserve_pending, preserve_pubs)| CompatibilityContract {
                execution: if mixed {
                    ExecutionConstraint::MixedDeterminismAllowed
                } else {
                    ExecutionConstraint::PreserveBundleProfile
                },
                ownership_continuity_required: continuity,
                pending_effects: if preserve_pending {
                    PendingEffectTreatment::PreservePending
                } else {
                    PendingEffectTreatment::InvalidateBlocked
                },
                publication_continuity: if preserve_pubs {
                    PublicationContinuity::Preserve
                } else {
                    PublicationContinuity::Reissue
                },
            });
    (
        prop::sample::select((1..=12).map(|i| format!("u{i}")).collect::<Vec<_>>()),
        steps,
        contract,
        arb_ids(&["p1", "p2"], 1),
        arb_ids(&["p2", "p3"], 3),
        arb_ids(&["o1", "o2"], 1),
        arb_ids(&["o2", "o3"], 3),
    )
        .prop_map(|(id, steps, contract, cp, ip, co, io)| {
            let p = |v: Vec<&str>| v.into_iter().map(|s| PublicationId::new(s).unwrap()).collect::<Vec<_>>();
            let o = |v: Vec<&str>| v.into_iter().map(|s| ObligationId::new(s).unwrap()).collect::<Vec<_>>();
            RuntimeUpgradeRequest::new(
                uid(&id),
                UpgradePlan::new(PlanId::new("plan").unwrap(), steps),
                contract,
            )
            .carrying_publications(p(cp))
            .invalidating_publications(p(ip))
            .carrying_obligations(o(co))
            .invalidating_obligations(o(io))
        })
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (0..2usize, arb_members(0), prop::bool::weighted(0.3))
            .prop_map(|(b, members, force)| Op::Seed { b, members, force }),
        6 => (
            0..2usize,
            arb_request(),
            prop_oneof![3 => Just(None), 1 => (0..6u64).prop_map(Some)],
            prop_oneof![2 => Just(None), 1 => (0..4usize).prop_map(Some)],
        )
            .prop_map(|(b, req, expected, fail_at)| Op::Upgrade { b, req, expected, fail_at }),
        1 => (0..2usize, arb_request(), 1..3usize).prop_map(|(b, req, after)| Op::Crash { b, req, after }),
        1 => Just(Op::Recover),
    ]
}

fn arb_ops() -> impl Strategy<Value = Vec<Op>> {
    // `None` stands for a retry of an earlier upgrade (same bundle, request and expected
    // epoch), which random requests would almost never produce.
    let slot = prop_oneof![8 => arb_op().prop_map(Some), 1 => Just(None)];
    (prop::collection::vec((slot, any::<prop::sample::Index>()), 1..24)).prop_map(|slots| {
        // Every run starts by seeding b0, so most upgrades have something to work on.
        let mut ops = vec![Op::Seed { b: 0, members: vec!["a", "b"], force: false }];
        for (op, pick) in slots {
            match op {
                Some(op) => ops.push(op),
                None => {
                    let earlier: Vec<&Op> = ops.iter().filter(|o| matches!(o, Op::Upgrade { .. })).collect();
                    if !earlier.is_empty() {
                        let retry = earlier[pick.index(earlier.len())].clone();
                        ops.push(retry);
                    }
                }
            }
        }
        ops
    })
}

// ---- the naive reference model -------------------------------------------------------

type Names = BTreeSet<String>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Failed,
    RolledBack,
    Committed,
}

#[derive(Debug, Clone, Default)]
struct ModelBundle {
    members: Names,
    epoch: u64,
    events: usize,
    recorded: BTreeMap<String, (RuntimeUpgradeRequest, End)>,
    // (upgrade id, request, valid?)
    in_flight: Option<(String, RuntimeUpgradeRequest, bool)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Refused,
    Recorded,
    Ended(End),
    InFlight,
}

fn names<T: ToString>(v: &[T]) -> Names {
    v.iter().map(ToString::to_string).collect()
}

fn same_request(a: &RuntimeUpgradeRequest, b: &RuntimeUpgradeRequest) -> bool {
    a.plan == b.plan
        && a.contract == b.contract
        && names(&a.carried_publications) == names(&b.carried_publications)
        && names(&a.invalidated_publications) == names(&b.invalidated_publications)
        && names(&a.carried_obligations) == names(&b.carried_obligations)
        && names(&a.invalidated_obligations) == names(&b.invalidated_obligations)
}

/// Every rule, written as plainly as possible; only whether the request is valid.
fn naive_valid(req: &RuntimeUpgradeRequest, active: &Names) -> bool {
    let steps = &req.plan.steps;
    let step_members = |s: &UpgradeStep| names(&s.next_members);
    let cp = names(&req.carried_publications);
    let ip = names(&req.invalidated_publications);
    let co = names(&req.carried_obligations);
    let io = names(&req.invalidated_obligations);
    if steps.is_empty() || cp.iter().any(|p| ip.contains(p)) || co.iter().any(|o| io.contains(o)) {
        return false;
    }
    if req.contract.ownership_continuity_required {
        let mut before = active.clone();
        for s in steps {
            let next = step_members(s);
            if next.iter().all(|x| !before.contains(x)) {
                return false;
            }
            before = next;
        }
    }
    if req.contract.pending_effects == PendingEffectTreatment::InvalidateBlocked
        && co.is_empty()
        && io.is_empty()
    {
        return false;
    }
    if req.contract.publication_continuity == PublicationContinuity::Preserve && !ip.is_empty() {
        return false;
    }
    if steps.iter().any(|s| s.next_members.is_empty()) {
        return false;
    }
    let ids: BTreeSet<_> = steps.iter().map(|s| s.step_id.to_string()).collect();
    if ids.len() != steps.len() {
        return false;
    }
    steps.iter().all(|s| {
        let obs = s.placements.clone().unwrap_or_default();
        let roles: BTreeSet<_> = obs.iter().map(|o| o.role.to_string()).collect();
        roles.len() == obs.len()
            && obs.iter().all(|o| {
                step_members(s).contains(o.role.as_str())
                    && matches!(&o.placement, Placement::Remote { endpoint } if !endpoint.is_empty())
            })
    })
}

#[derive(Debug, Default)]
struct Model {
    bundles: BTreeMap<usize, ModelBundle>,
}

impl Model {
    fn seed(&mut self, b: usize, members: &[&str], force: bool) -> Expect {
        let members = names(members);
        if members.is_empty() {
            return Expect::Refused;
        }
        let mb = self.bundles.entry(b).or_default();
        if mb.in_flight.is_some() || (mb.events > 0 && !force) {
            return Expect::Refused;
        }
        mb.members = members;
        // Epochs count from 0 at the first seeding.
        mb.epoch = if mb.events == 0 { 0 } else { mb.epoch + 1 };
        mb.events += 1;
        Expect::Ended(End::Committed)
    }

    /// `stop_after`: phases journaled before a crash (None: run to the end).
    fn upgrade(
        &mut self,
        b: usize,
        req: &RuntimeUpgradeRequest,
        expected: Option<u64>,
        fail_at: Option<usize>,
        stop_after: Option<usize>,
    ) -> Expect {
        let mb = self.bundles.entry(b).or_default();
        let id = req.upgrade_id.to_string();
        if let Some((recorded, _)) = mb.recorded.get(&id) {
            return if same_request(recorded, req) { Expect::Recorded } else { Expect::Refused };
        }
        if mb.in_flight.is_some() || mb.members.is_empty() || expected.is_some_and(|e| e != mb.epoch) {
            return Expect::Refused;
        }
        let valid = naive_valid(req, &mb.members);
        let crashed = match stop_after {
            Some(1) => true,
            Some(_) => valid,
            None => false,
        };
        if crashed {
            mb.in_flight = Some((id, req.clone(), valid));
            return Expect::InFlight;
        }
        let end = if !valid {
            End::Failed
        } else if fail_at.is_some_and(|k| k < req.plan.steps.len()) {
            End::RolledBack
        } else {
            let n = req.plan.steps.len();
            mb.members = req.plan.steps.last().map(|s| names(&s.next_members)).unwrap_or_default();
            mb.epoch += n as u64;
            mb.events += n;
            End::Committed
        };
        mb.recorded.insert(id, (req.clone(), end));
        Expect::Ended(end)
    }

    fn recover(&mut self) -> usize {
        let mut n = 0;
        for mb in self.bundles.values_mut() {
            if let Some((id, req, valid)) = mb.in_flight.take() {
                mb.recorded.insert(id, (req, if valid { End::RolledBack } else { End::Failed }));
                n += 1;
            }
        }
        n
    }
}

fn b(i: usize) -> BundleId {
    bundle(BUNDLES[i])
}

/// Runs one op on the harness and the model and checks they agree.
fn step_both(h: &mut Harness, model: &mut Model, op: &Op) -> Result<(), TestCaseError> {
    let before = h.clone();
    let (bi, expect, result) = match op {
        Op::Seed { b: bi, members, force } => {
            let expect = model.seed(*bi, members, *force);
            let r = h.seed(&b(*bi), members, *force).map(|()| None);
            (*bi, expect, r)
        }
        Op::Upgrade { b: bi, req, expected, fail_at } => {
            let expect = model.upgrade(*bi, req, *expected, *fail_at, None);
            (*bi, expect, h.upgrade(&b(*bi), req, *expected, *fail_at).map(Some))
        }
        Op::Crash { b: bi, req, after } => {
            let expect = model.upgrade(*bi, req, None, None, Some(*after));
            (*bi, expect, h.upgrade_until(&b(*bi), req, None, None, Stop::AfterPhases(*after)).map(Some))
        }
        Op::Recover => {
            let n = model.recover();
            prop_assert_eq!(h.recover(), n);
            prop_assert!(h.book.recovery_facts().is_empty());
            return Ok(());
        }
    };
    let bundle = b(bi);
    match expect {
        Expect::Refused => {
            prop_assert!(result.is_err(), "expected a refusal, got {:?}", result);
            prop_assert!(!matches!(result, Err(UpgradeError::Invalid { .. })), "refusal was journaled");
            prop_assert_eq!(&h.book, &before.book);
            prop_assert_eq!(h.journal.len(), before.journal.len());
        }
        Expect::Recorded => {
            let x = result.map_err(|e| TestCaseError::fail(format!("expected the record, got {e}")))?;
            prop_assert_eq!(Some(&x.unwrap()), before.book.execution(&bundle, &x_id(op)));
            prop_assert_eq!(&h.book, &before.book);
            prop_assert_eq!(h.journal.len(), before.journal.len());
        }
        Expect::InFlight => {
            prop_assert!(result.is_ok());
            prop_assert_eq!(h.book.in_flight(&bundle).map(|x| x.upgrade_id.clone()), Some(x_id(op)));
        }
        Expect::Ended(end) => {
            if let Some(req) = op_request(op) {
                let x = h.book.execution(&bundle, &req.upgrade_id).cloned();
                let x = x.ok_or_else(|| TestCaseError::fail("no execution recorded"))?;
                let outcome = x.outcome();
                match end {
                    End::Failed => {
                        prop_assert_eq!(outcome, Some(UpgradePhase::Failed));
                        prop_assert!(
                            matches!(result, Err(UpgradeError::Invalid { .. })),
                            "not reported invalid"
                        );
                        prop_assert!(x.reason().is_some());
                    }
                    End::RolledBack => prop_assert_eq!(outcome, Some(UpgradePhase::RolledBack)),
                    End::Committed => prop_assert_eq!(outcome, Some(UpgradePhase::CommittedCutover)),
                }
                if end != End::Committed {
                    // A failed or rolled-back upgrade leaves the membership part of the
                    // snapshot exactly as it was, and adds exactly its execution.
                    let (s0, s1) = (before.book.export(&bundle).unwrap(), h.book.export(&bundle).unwrap());
                    prop_assert_eq!(membership_part(&s1), membership_part(&s0));
                    prop_assert_eq!(&s1.executions[..s0.executions.len()], &s0.executions[..]);
                    prop_assert_eq!(s1.executions.len(), s0.executions.len() + 1);
                    prop_assert_eq!(s1.in_flight, None);
                }
            } else {
                prop_assert!(result.is_ok(), "seed refused: {:?}", result);
            }
        }
    }
    // The book agrees with the model on every bundle.
    for (i, mb) in &model.bundles {
        let bundle = b(*i);
        let members: Names =
            h.book.members(&bundle).map(|s| names(&s.iter().collect::<Vec<_>>())).unwrap_or_default();
        prop_assert_eq!(&members, &mb.members);
        prop_assert_eq!(h.book.epoch(&bundle), mb.epoch);
        prop_assert_eq!(h.book.history(&bundle).len(), mb.events);
        prop_assert_eq!(h.book.executions(&bundle).len(), mb.recorded.len());
        prop_assert_eq!(
            h.book.in_flight(&bundle).map(|x| x.upgrade_id.to_string()),
            mb.in_flight.as_ref().map(|(id, _, _)| id.clone())
        );
    }
    Ok(())
}

fn op_request(op: &Op) -> Option<&RuntimeUpgradeRequest> {
    match op {
        Op::Upgrade { req, .. } | Op::Crash { req, .. } => Some(req),
        Op::Seed { .. } | Op::Recover => None,
    }
}

fn x_id(op: &Op) -> UpgradeId {
    op_request(op).map(|r| r.upgrade_id.clone()).unwrap_or_else(|| uid("none"))
}

fn run(h: &mut Harness, ops: &[Op]) {
    for op in ops {
        let _ = match op {
            Op::Seed { b: bi, members, force } => h.seed(&b(*bi), members, *force).map(|()| None),
            Op::Upgrade { b: bi, req, expected, fail_at } => {
                h.upgrade(&b(*bi), req, *expected, *fail_at).map(Some)
            }
            Op::Crash { b: bi, req, after } => {
                h.upgrade_until(&b(*bi), req, None, None, Stop::AfterPhases(*after)).map(Some)
            }
            Op::Recover => {
                h.recover();
                Ok(None)
            }
        };
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// The book agrees with the naive model after every operation; refusals change
    /// nothing; a failed or rolled-back upgrade changes nothing but its own record.
    #[test]
    fn the_book_follows_the_naive_model(ops in arb_ops()) {
        let mut h = Harness::new();
        let mut model = Model::default();
        for op in &ops {
            step_both(&mut h, &mut model, op)?;
        }
    }

    /// Replaying the journal of any run rebuilds an equal book, which serializes to the
    /// same bytes and round-trips.
    #[test]
    fn replaying_the_facts_rebuilds_an_equal_book(ops in arb_ops()) {
        let mut h = Harness::new();
        run(&mut h, &ops);
        let replayed = UpgradeBook::replay(&h.journal);
        prop_assert_eq!(&replayed, &h.book);
        let bytes = postcard::to_allocvec(&h.book).unwrap();
        prop_assert_eq!(&postcard::to_allocvec(&replayed).unwrap(), &bytes);
        prop_assert_eq!(&postcard::from_bytes::<UpgradeBook>(&bytes).unwrap(), &h.book);
        // Facts round-trip too, so the journal can hold them.
        let decoded: Vec<UpgradeFact> = h.journal.iter()
            .map(|f| postcard::from_bytes(&postcard::to_allocvec(f).unwrap()).unwrap())
            .collect();
        prop_assert_eq!(&decoded, &h.journal);
    }

    /// A straight run equals: run a prefix, export every bundle, restore the snapshots
    /// into a fresh book, and continue with the rest.
    #[test]
    fn snapshot_restore_continue_equals_a_straight_run(ops in arb_ops(), split in any::<prop::sample::Index>()) {
        let k = split.index(ops.len() + 1);
        let mut straight = Harness::new();
        run(&mut straight, &ops);

        let mut first = Harness::new();
        run(&mut first, &ops[..k]);
        let mut resumed = Harness::new();
        for bundle in first.book.bundles() {
            let snap = first.book.export(bundle).unwrap();
            prop_assert_eq!(snap.validate(), Ok(()));
            resumed.book.restore(bundle, snap).unwrap();
        }
        prop_assert_eq!(&resumed.book, &first.book);
        run(&mut resumed, &ops[k..]);
        prop_assert_eq!(&resumed.book, &straight.book);
    }

    /// After a crash between any two phases, the recovery facts close the upgrade as
    /// rolled back (failed, if it was invalid), the membership is as before, and the
    /// bundle takes a new upgrade.
    #[test]
    fn recovery_rolls_back_an_interrupted_upgrade(
        ops in arb_ops(),
        req in arb_request(),
        after in 1..3usize,
    ) {
        // An id no earlier op used, so the upgrade really starts.
        let mut req = req;
        req.upgrade_id = uid("interrupted");
        let mut h = Harness::new();
        run(&mut h, &ops);
        h.recover();
        let bundle = b(0);
        let before = h.book.export(&bundle).unwrap();
        let valid = req.validate(&before.active_members).is_ok();
        // An invalid request is never admitted: its only gap is between staged and failed.
        let after = if valid { after } else { 1 };
        let x = h.upgrade_until(&bundle, &req, None, None, Stop::AfterPhases(after)).unwrap();
        prop_assert_eq!(x.phases.len(), after);
        prop_assert_eq!(x.outcome(), None);
        // Restart: rebuild from the journal, then recover.
        let mut restarted = Harness { book: UpgradeBook::replay(&h.journal), journal: h.journal.clone() };
        prop_assert_eq!(restarted.recover(), 1);
        let x = restarted.book.execution(&bundle, &req.upgrade_id).unwrap().clone();
        let want = if valid { UpgradePhase::RolledBack } else { UpgradePhase::Failed };
        prop_assert_eq!(x.outcome(), Some(want));
        let after_snap = restarted.book.export(&bundle).unwrap();
        prop_assert_eq!(membership_part(&after_snap), membership_part(&before));
        prop_assert_eq!(after_snap.validate(), Ok(()));
        prop_assert!(restarted.book.recovery_facts().is_empty());
        let next = request("fresh", vec![step("s1", &["a", "b", "c", "d"])]);
        let mut next = next;
        next.contract.ownership_continuity_required = false;
        let done = restarted.upgrade(&bundle, &next, Some(before.epoch), None).unwrap();
        prop_assert_eq!(done.outcome(), Some(UpgradePhase::CommittedCutover));
    }

    /// Whatever the plan, a failed or rolled-back upgrade leaves the snapshot identical
    /// but for its own execution record.
    #[test]
    fn a_failed_or_rolled_back_upgrade_leaves_the_snapshot_identical(
        ops in arb_ops(),
        req in arb_request(),
        fail_at in 0..4usize,
    ) {
        let mut h = Harness::new();
        run(&mut h, &ops);
        h.recover();
        let bundle = b(0);
        let before = h.book.export(&bundle).unwrap();
        // Some step of a valid plan always fails.
        let fail_at = fail_at % req.plan.steps.len().max(1);
        let result = h.upgrade(&bundle, &req, None, Some(fail_at));
        let Some(x) = h.book.execution(&bundle, &req.upgrade_id).cloned() else {
            // Refused before anything was written.
            prop_assert!(result.is_err());
            prop_assert_eq!(h.book.export(&bundle).unwrap(), before);
            return Ok(());
        };
        prop_assume!(x.outcome() != Some(UpgradePhase::CommittedCutover));
        let mut after = h.book.export(&bundle).unwrap();
        if before.executions.iter().all(|e| e.upgrade_id != req.upgrade_id) {
            prop_assert_eq!(after.executions.pop(), Some(x));
        }
        prop_assert_eq!(after, before);
    }
}
