//! Property tests: the indexed core against a deliberately naive reference model that keeps
//! only footprints and answers every question by scanning and cloning.

// Test and bench code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use proptest::prelude::*;
use reconf_core::*;

const AUTHORITIES: usize = 4;
const SESSIONS: u128 = 6;

fn auth(i: usize) -> AuthorityId {
    AuthorityId::from_label(&format!("auth-{i}"))
}
fn sess(i: u128) -> SessionId {
    SessionId::from_u128(i + 1)
}
fn bundle(known: bool) -> BundleId {
    BundleId::new(if known { "known" } else { "unknown" }).unwrap()
}

#[derive(Debug, Clone)]
enum Op {
    Open(u128, usize),
    Delegate(u128, usize, usize, bool),
    Close(u128, usize),
}

fn op() -> impl Strategy<Value = Op> {
    let a = 0..AUTHORITIES;
    let s = 0..SESSIONS;
    prop_oneof![
        1 => (s.clone(), a.clone()).prop_map(|(s, a)| Op::Open(s, a)),
        4 => (s.clone(), a.clone(), a.clone(), prop::bool::weighted(0.9)).prop_map(|(s, f, t, k)| Op::Delegate(s, f, t, k)),
        1 => (s, a).prop_map(|(s, a)| Op::Close(s, a)),
    ]
}

fn command(op: &Op) -> Command {
    match *op {
        Op::Open(s, a) => Command::OpenSession { session: sess(s), authority: auth(a), bundle: None },
        Op::Delegate(s, f, t, k) => Command::Delegate(Delegation::new(sess(s), auth(f), auth(t), bundle(k))),
        Op::Close(s, a) => Command::CloseSession { session: sess(s), authority: auth(a) },
    }
}

/// The naive model: footprints only, every lookup a full scan.
#[derive(Debug, Clone, Default)]
struct Model {
    footprints: BTreeMap<AuthorityId, SessionFootprint>,
    generations: BTreeMap<SessionId, u64>,
}

impl Model {
    fn active_holder(&self, s: SessionId) -> Option<AuthorityId> {
        self.footprints
            .iter()
            .find(|(_, f)| f.native.contains(&s) || f.delegated_in.contains(&s))
            .map(|(a, _)| *a)
    }

    fn fp(&mut self, a: AuthorityId) -> &mut SessionFootprint {
        self.footprints.entry(a).or_default()
    }

    fn forget(&mut self, s: SessionId) {
        for f in self.footprints.values_mut() {
            f.native.remove(&s);
            f.delegated_in.remove(&s);
            f.delegated_out.remove(&s);
        }
    }

    fn holder_error(&self, s: SessionId, who: AuthorityId) -> Result<(), CommandError> {
        let holder = self.active_holder(s).ok_or(CommandError::UnknownSession { session: s })?;
        if holder != who {
            let delegated_out = self.footprints.get(&who).is_some_and(|f| f.delegated_out.contains(&s));
            return Err(CommandError::NotActiveHolder { session: s, authority: who, holder, delegated_out });
        }
        Ok(())
    }

    /// Returns the new generation on success.
    fn run(&mut self, op: &Op) -> Result<u64, CommandError> {
        match *op {
            Op::Open(s, a) => {
                let (s, a) = (sess(s), auth(a));
                if let Some(holder) = self.active_holder(s) {
                    return Err(CommandError::SessionAlreadyHeld { session: s, holder });
                }
                let g = self.generations.get(&s).map_or(1, |g| g + 1);
                self.generations.insert(s, g);
                self.fp(a).native.insert(s);
                Ok(g)
            }
            Op::Delegate(s, f, t, known) => {
                let (s, from, to) = (sess(s), auth(f), auth(t));
                if from == to {
                    return Err(CommandError::SelfDelegation { session: s, authority: from });
                }
                if !known {
                    return Err(CommandError::UnknownBundle { bundle: bundle(false) });
                }
                self.holder_error(s, from)?;
                self.forget(s);
                self.fp(from).delegated_out.insert(s);
                self.fp(to).delegated_in.insert(s);
                let g = self.generations[&s] + 1;
                self.generations.insert(s, g);
                Ok(g)
            }
            Op::Close(s, a) => {
                let (s, a) = (sess(s), auth(a));
                self.holder_error(s, a)?;
                self.forget(s);
                Ok(self.generations[&s])
            }
        }
    }
}

fn outcome_generation(applied: &Applied, state_before_close: Option<u64>) -> u64 {
    match applied {
        Applied::SessionOpened { generation, .. } => *generation,
        Applied::SessionDelegated(r) => r.generation,
        Applied::SessionClosed { .. } => state_before_close.unwrap_or(0),
        other => panic!("unexpected {other:?}"),
    }
}

fn fresh() -> (State, Vec<Fact>) {
    let mut state = State::new();
    let fact = state.check(&Command::RegisterBundle(ComposedBundle::new(bundle(true))), 7).unwrap();
    state.apply(1, &fact);
    (state, vec![fact])
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn core_matches_the_naive_model(ops in prop::collection::vec(op(), 1..120)) {
        let (mut state, mut facts) = fresh();
        let mut model = Model::default();
        for op in &ops {
            let expected = model.run(op);
            let gen_before = match op { Op::Close(s, _) => state.session(&sess(*s)).map(|r| r.generation), _ => None };
            let got = state.check(&command(op), 7).map(|fact| {
                facts.push(fact.clone());
                state.apply(facts.len() as u64, &fact)
            });
            match (&expected, &got) {
                (Ok(g), Ok(applied)) => prop_assert_eq!(*g, outcome_generation(applied, gen_before)),
                (Err(e), Err(g)) => prop_assert_eq!(e, g),
                _ => prop_assert!(false, "op {:?}: model {:?}, core {:?}", op, expected, got),
            }
            for i in 0..AUTHORITIES {
                let a = auth(i);
                let want = model.footprints.get(&a).cloned().unwrap_or_default();
                prop_assert_eq!(state.footprint(&a), want.clone());
                prop_assert_eq!(state.footprint_summary(&a), want.summary());
            }
            let report = state.verify_coherence();
            prop_assert!(report.is_coherent(), "{:?}", report.violations);
            prop_assert_eq!(report, state.full_coherence_scan());
            if let Some(s) = command_session(op) {
                prop_assert!(state.session_coherence(&s).is_ok());
            }
        }
    }

    #[test]
    fn replaying_the_facts_rebuilds_an_equal_state(ops in prop::collection::vec(op(), 1..120)) {
        let (mut state, mut facts) = fresh();
        for op in &ops {
            if let Ok(fact) = state.check(&command(op), 7) {
                facts.push(fact);
                state.apply(facts.len() as u64, facts.last().unwrap());
            }
        }
        let replayed = State::replay(facts.iter().enumerate().map(|(i, f)| (i as u64 + 1, f)));
        prop_assert_eq!(&replayed, &state);
        let snap = postcard::to_allocvec(&state).unwrap();
        prop_assert_eq!(postcard::to_allocvec(&replayed).unwrap(), snap.clone());
        let restored: State = postcard::from_bytes(&snap).unwrap();
        prop_assert_eq!(restored, state);
    }

    #[test]
    fn a_checked_batch_equals_one_by_one(ops in prop::collection::vec(op(), 1..60)) {
        let (base, _) = fresh();
        let mut sequential = base.clone();
        let mut seq_outcomes = Vec::new();
        for op in &ops {
            let r = sequential.check(&command(op), 7);
            if let Ok(f) = &r {
                sequential.apply(sequential.head() + 1, f);
            }
            seq_outcomes.push(r);
        }
        let mut batched = base.clone();
        let batch_outcomes: Vec<_> = {
            let mut checker = base.checker();
            ops.iter().map(|op| checker.check(&command(op), 7)).collect()
        };
        // Applied as one batch, the way the manager applies a durable commit.
        let facts: Vec<Fact> = batch_outcomes.iter().flatten().cloned().collect();
        batched.prefetch_sessions(ops.iter().filter_map(command_session));
        let applied = batched.apply_batch(batched.head() + 1, &facts);
        prop_assert_eq!(applied.len(), facts.len());
        prop_assert_eq!(seq_outcomes, batch_outcomes);
        prop_assert_eq!(&batched, &sequential);
        prop_assert!(batched.verify_coherence().is_coherent());
    }
}

fn command_session(op: &Op) -> Option<SessionId> {
    match *op {
        Op::Open(s, _) | Op::Delegate(s, ..) | Op::Close(s, _) => Some(sess(s)),
    }
}
