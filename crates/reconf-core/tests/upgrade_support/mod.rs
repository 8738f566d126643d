//! Shared helpers for the upgrade tests: names, requests, and a harness that drives the
//! book the way the runtime does (check, journal, apply, one fact at a time).
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;

use reconf_core::upgrade::*;
use reconf_core::BundleId;

pub fn m(s: &str) -> Member {
    Member::new(s).unwrap()
}

pub fn set(names: &[&str]) -> BTreeSet<Member> {
    names.iter().map(|s| m(s)).collect()
}

pub fn bundle(s: &str) -> BundleId {
    BundleId::new(s).unwrap()
}

pub fn uid(s: &str) -> UpgradeId {
    UpgradeId::new(s).unwrap()
}

pub fn sid(s: &str) -> StepId {
    StepId::new(s).unwrap()
}

pub fn step(id: &str, members: &[&str]) -> UpgradeStep {
    UpgradeStep::new(sid(id), members.iter().map(|s| m(s)))
}

/// A request with the default (strictest) contract.
pub fn request(id: &str, steps: Vec<UpgradeStep>) -> RuntimeUpgradeRequest {
    RuntimeUpgradeRequest::new(
        uid(id),
        UpgradePlan::new(PlanId::new("plan").unwrap(), steps),
        CompatibilityContract::default(),
    )
}

/// Where a simulated runtime stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Run to the end.
    Never,
    /// Crash once this many phases of the upgrade are journaled (1 = staged only).
    AfterPhases(usize),
}

#[derive(Debug, Default, Clone)]
pub struct Harness {
    pub book: UpgradeBook,
    pub journal: Vec<UpgradeFact>,
}

impl Harness {
    pub fn new() -> Self {
        Self::default()
    }

    /// Journals then applies one checked fact; checked facts always fit.
    pub fn write(&mut self, fact: UpgradeFact) -> UpgradeApplied {
        self.journal.push(fact.clone());
        let applied = self.book.apply(&fact);
        assert!(!matches!(applied, UpgradeApplied::Ignored { .. }), "checked fact ignored: {applied:?}");
        applied
    }

    pub fn seed(&mut self, b: &BundleId, members: &[&str], force: bool) -> Result<(), UpgradeError> {
        let fact = self.book.check_seed(
            b,
            members.iter().map(|s| m(s)),
            if force { OnHistory::Replace } else { OnHistory::Refuse },
        )?;
        self.write(fact);
        Ok(())
    }

    /// Runs an upgrade as the runtime would; the step hook fails at step `fail_at`.
    /// Returns the execution (recorded or run), or the error reported to the caller.
    pub fn upgrade(
        &mut self,
        b: &BundleId,
        req: &RuntimeUpgradeRequest,
        expected_epoch: Option<u64>,
        fail_at: Option<usize>,
    ) -> Result<UpgradeExecution, UpgradeError> {
        self.upgrade_until(b, req, expected_epoch, fail_at, Stop::Never)
    }

    pub fn upgrade_until(
        &mut self,
        b: &BundleId,
        req: &RuntimeUpgradeRequest,
        expected_epoch: Option<u64>,
        fail_at: Option<usize>,
        stop: Stop,
    ) -> Result<UpgradeExecution, UpgradeError> {
        let id = &req.upgrade_id;
        let crashed = |h: &Self, n: usize| match stop {
            Stop::AfterPhases(k) if n >= k => Some(h.book.execution(b, id).cloned().unwrap()),
            _ => None,
        };
        match self.book.check_begin(b, req, expected_epoch)? {
            Begin::AlreadyRecorded(x) => Ok(x),
            Begin::Invalid { staged, failed, error } => {
                self.write(staged);
                if let Some(x) = crashed(self, 1) {
                    return Ok(x);
                }
                self.write(failed);
                Err(error)
            }
            Begin::Staged(staged) => {
                self.write(staged);
                if let Some(x) = crashed(self, 1) {
                    return Ok(x);
                }
                let admitted = self.book.check_admit(b, id).unwrap();
                self.write(admitted);
                if let Some(x) = crashed(self, 2) {
                    return Ok(x);
                }
                let cutover = self.book.planned_cutover(b, id).unwrap();
                assert_eq!(cutover.len(), req.plan.steps.len());
                for (k, s) in req.plan.steps.iter().enumerate() {
                    if fail_at == Some(k) {
                        let cause = RollbackCause::StepFailed {
                            step_id: s.step_id.clone(),
                            message: "hook failed".into(),
                        };
                        let fact = self.book.check_rollback(b, id, cause).unwrap();
                        self.write(fact);
                        return Ok(self.book.execution(b, id).cloned().unwrap());
                    }
                }
                let fact = self.book.check_commit(b, id).unwrap();
                self.write(fact);
                Ok(self.book.execution(b, id).cloned().unwrap())
            }
        }
    }

    /// What the runtime does on open: close every upgrade left in flight.
    pub fn recover(&mut self) -> usize {
        let facts = self.book.recovery_facts();
        let n = facts.len();
        for f in facts {
            self.write(f);
        }
        n
    }
}

/// The snapshot without its executions: what a failed or rolled-back upgrade must leave
/// exactly as it was.
pub fn membership_part(s: &UpgradeSnapshot) -> (u64, BTreeSet<Member>, Vec<MembershipEvent>) {
    (s.epoch, s.active_members.clone(), s.history.clone())
}
