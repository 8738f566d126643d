//! A journal wrapper that injects failures on command, deterministically, so the code above
//! the journal can be tested on every failure path it must survive.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reconf_core::Fact;

use crate::journal::{
    Committed, ExpectedHead, JournalEffects, JournalError, JournalRecord, Sequence, StoredSnapshot,
};

/// What an injected commit fault does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CommitFault {
    /// The commit is refused with [`JournalError::Storage`]; nothing is written.
    Refused,
    /// The commit is written to the inner journal, but the caller gets
    /// [`JournalError::Ambiguous`], as when the reply is lost. If the inner commit itself
    /// fails, its error is returned unchanged: there is nothing written to hide.
    WrittenButReportedFailed,
    /// Nothing is written and the caller gets [`JournalError::Ambiguous`], as when the
    /// request is lost: the other outcome a caller of an ambiguous commit must handle.
    LostButReportedAmbiguous,
}

/// How many operations went through the wrapper and how many faults it injected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultStats {
    /// Calls to `commit`, faulted or not.
    pub commit_calls: u64,
    /// Commit calls that got an injected fault.
    pub commit_faults: u64,
    /// `read`, `head` and `latest_snapshot` calls that got an injected fault.
    pub read_faults: u64,
    /// `write_snapshot` calls that got an injected fault.
    pub snapshot_write_faults: u64,
}

/// Wraps any journal and fails chosen operations with typed errors.
///
/// Faults can be armed at any time through `&self`; "the nth commit" counts from the moment
/// of arming, so a test can set up state first and then break the next step. Chance-based
/// faults come from a [`StdRng`] seeded by the caller, and a random draw is made on every
/// commit (even one that an nth-commit fault already hits), so one seed always yields the
/// same fault pattern.
///
/// ```
/// use reconf_core::{AuthorityId, Change, Fact, SessionId};
/// use reconf_effects::{ExpectedHead, FaultyJournal, JournalEffects, JournalError, MemoryJournal};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), JournalError> {
/// let fact = Fact::new(Change::SessionClosed { session: SessionId::from_u128(1), authority: AuthorityId::from_label("a") });
/// let journal = FaultyJournal::new(MemoryJournal::new());
///
/// journal.ambiguous_nth_commit(1);
/// let err = journal.commit(vec![fact.clone()], ExpectedHead::Empty).await.unwrap_err();
/// assert!(err.outcome_unknown());
/// assert_eq!(journal.head().await?, Some(1), "it was written all the same");
///
/// journal.fail_nth_commit(1);
/// assert!(matches!(journal.commit(vec![fact], ExpectedHead::Any).await, Err(JournalError::Storage { .. })));
/// assert_eq!(journal.head().await?, Some(1), "a refused commit writes nothing");
/// # Ok(())
/// # }
/// ```
pub struct FaultyJournal<J> {
    inner: J,
    plan: Mutex<Plan>,
    /// While true, `wait_for_head` holds back what it learnt (a follower whose
    /// notifications are late).
    held: tokio::sync::watch::Sender<bool>,
}

#[derive(Default)]
struct Plan {
    /// Keyed by the value `stats.commit_calls` will have on the faulted call.
    nth: BTreeMap<u64, CommitFault>,
    chance: Option<Chance>,
    read_failures: u64,
    snapshot_write_failures: u64,
    stats: FaultStats,
}

struct Chance {
    probability: f64,
    fault: CommitFault,
    rng: StdRng,
}

impl<J> FaultyJournal<J> {
    /// Wraps `inner`; nothing is armed, so every operation passes through.
    pub fn new(inner: J) -> Self {
        Self { inner, plan: Mutex::new(Plan::default()), held: tokio::sync::watch::Sender::new(false) }
    }

    fn lock(&self) -> MutexGuard<'_, Plan> {
        // The plan is counters and a queue, each updated in one step, so a poisoned lock
        // still guards a usable plan.
        self.plan.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Refuses the `n`th commit from now (1 = the next one) with a storage error.
    pub fn fail_nth_commit(&self, n: u64) {
        self.fault_nth_commit(n, CommitFault::Refused);
    }

    /// Writes the `n`th commit from now but reports [`JournalError::Ambiguous`].
    pub fn ambiguous_nth_commit(&self, n: u64) {
        self.fault_nth_commit(n, CommitFault::WrittenButReportedFailed);
    }

    /// Injects `fault` into the `n`th commit from now (1 = the next one; 0 is taken as 1).
    /// Arming the same call twice keeps the later fault.
    pub fn fault_nth_commit(&self, n: u64, fault: CommitFault) {
        let mut plan = self.lock();
        let call = plan.stats.commit_calls.saturating_add(n.max(1));
        plan.nth.insert(call, fault);
    }

    /// Refuses each later commit with probability `probability`, drawn from a generator
    /// seeded with `seed`.
    pub fn fail_commits_by_chance(&self, probability: f64, seed: u64) {
        self.fault_commits_by_chance(probability, seed, CommitFault::Refused);
    }

    /// Injects `fault` into each later commit with probability `probability` (at most 0
    /// or NaN: never; at least 1: always), drawn from a generator seeded with `seed`.
    /// Replaces any earlier chance setting.
    pub fn fault_commits_by_chance(&self, probability: f64, seed: u64, fault: CommitFault) {
        self.lock().chance = Some(Chance { probability, fault, rng: StdRng::seed_from_u64(seed) });
    }

    /// Fails the next `n` reads (`read`, `head`, `latest_snapshot`) with a storage error,
    /// replacing any still pending.
    pub fn fail_next_reads(&self, n: u64) {
        self.lock().read_failures = n;
    }

    /// Fails the next `n` snapshot writes with a storage error (nothing stored), replacing
    /// any still pending.
    pub fn fail_next_snapshot_writes(&self, n: u64) {
        self.lock().snapshot_write_failures = n;
    }

    /// Holds back (`true`) or releases (`false`) `wait_for_head`'s answers: while held, a
    /// caller waiting for the head to move is not told, however far it moves, as when a
    /// shared journal's notifications arrive late. Commits, reads and `head` are unaffected.
    pub fn hold_notifications(&self, held: bool) {
        self.held.send_replace(held);
    }

    async fn released(&self) {
        let mut rx = self.held.subscribe();
        // The sender lives in `self`; an error cannot happen while we borrow it.
        let _ = rx.wait_for(|held| !*held).await;
    }

    /// Cancels every armed fault (and releases held notifications); the statistics are kept.
    pub fn disarm(&self) {
        self.held.send_replace(false);
        let mut plan = self.lock();
        let stats = plan.stats;
        *plan = Plan { stats, ..Plan::default() };
    }

    /// What went through so far.
    pub fn stats(&self) -> FaultStats {
        self.lock().stats
    }

    /// The wrapped journal, to inspect what was really written.
    pub fn inner(&self) -> &J {
        &self.inner
    }

    /// Unwraps the journal.
    pub fn into_inner(self) -> J {
        self.inner
    }

    fn next_commit_fault(&self) -> Option<(u64, CommitFault)> {
        let mut plan = self.lock();
        plan.stats.commit_calls += 1;
        let call = plan.stats.commit_calls;
        let by_chance =
            plan.chance.as_mut().and_then(|c| (c.rng.random::<f64>() < c.probability).then_some(c.fault));
        let fault = plan.nth.remove(&call).or(by_chance)?;
        plan.stats.commit_faults += 1;
        Some((call, fault))
    }

    fn read_fault(&self, op: &str) -> Result<(), JournalError> {
        let mut plan = self.lock();
        if plan.read_failures == 0 {
            return Ok(());
        }
        plan.read_failures -= 1;
        plan.stats.read_faults += 1;
        Err(JournalError::Storage { reason: format!("injected fault: {op} failed") })
    }
}

impl<J: fmt::Debug> fmt::Debug for FaultyJournal<J> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultyJournal").field("inner", &self.inner).field("stats", &self.stats()).finish()
    }
}

#[async_trait]
impl<J: JournalEffects> JournalEffects for FaultyJournal<J> {
    async fn commit(&self, batch: Vec<Fact>, expected: ExpectedHead) -> Result<Committed, JournalError> {
        let Some((call, fault)) = self.next_commit_fault() else {
            return self.inner.commit(batch, expected).await;
        };
        match fault {
            CommitFault::Refused => Err(JournalError::Storage {
                reason: format!("injected fault: commit #{call} refused, nothing written"),
            }),
            CommitFault::LostButReportedAmbiguous => Err(JournalError::Ambiguous {
                reason: format!("injected fault: commit #{call} was lost before reaching the journal"),
            }),
            CommitFault::WrittenButReportedFailed => {
                let done = self.inner.commit(batch, expected).await?;
                Err(JournalError::Ambiguous {
                    reason: format!(
                        "injected fault: commit #{call} was written ({}..={}) but its reply was lost",
                        done.first, done.last
                    ),
                })
            }
        }
    }

    async fn read(&self, from: Sequence, limit: usize) -> Result<Vec<JournalRecord>, JournalError> {
        self.read_fault("read")?;
        self.inner.read(from, limit).await
    }

    async fn head(&self) -> Result<Option<Sequence>, JournalError> {
        self.read_fault("head")?;
        self.inner.head().await
    }

    async fn write_snapshot(&self, sequence: Sequence, bytes: Vec<u8>) -> Result<(), JournalError> {
        {
            let mut plan = self.lock();
            if plan.snapshot_write_failures > 0 {
                plan.snapshot_write_failures -= 1;
                plan.stats.snapshot_write_faults += 1;
                return Err(JournalError::Storage {
                    reason: format!("injected fault: snapshot at {sequence} not written"),
                });
            }
        }
        self.inner.write_snapshot(sequence, bytes).await
    }

    async fn latest_snapshot(&self) -> Result<Option<StoredSnapshot>, JournalError> {
        self.read_fault("latest_snapshot")?;
        self.inner.latest_snapshot().await
    }

    async fn wait_for_head(&self, after: Sequence) -> Result<Sequence, JournalError> {
        self.released().await;
        let head = self.inner.wait_for_head(after).await?;
        // Held meanwhile: the news waits until released.
        self.released().await;
        Ok(head)
    }
}

#[cfg(test)]
mod tests {
    use reconf_core::{AuthorityId, Change, SessionId};

    use super::*;
    use crate::MemoryJournal;

    fn fact(n: u128) -> Fact {
        Fact::new(Change::SessionClosed {
            session: SessionId::from_u128(n),
            authority: AuthorityId::from_label("f"),
        })
    }

    fn journal() -> FaultyJournal<MemoryJournal> {
        FaultyJournal::new(MemoryJournal::new())
    }

    /// Commits `count` single facts expecting any head; true where the commit succeeded.
    async fn outcomes(j: &FaultyJournal<MemoryJournal>, count: u128) -> Vec<bool> {
        let mut out = Vec::new();
        for n in 0..count {
            out.push(j.commit(vec![fact(n)], ExpectedHead::Any).await.is_ok());
        }
        out
    }

    #[tokio::test]
    async fn nth_commit_is_refused_and_writes_nothing() {
        let j = journal();
        j.commit(vec![fact(0)], ExpectedHead::Any).await.unwrap();
        j.fail_nth_commit(2);
        j.commit(vec![fact(1)], ExpectedHead::At(1)).await.unwrap();
        let err = j.commit(vec![fact(2), fact(3)], ExpectedHead::At(2)).await.unwrap_err();
        assert!(matches!(err, JournalError::Storage { ref reason } if reason.contains("commit #3")), "{err}");
        assert!(!err.outcome_unknown());
        assert_eq!(j.inner().head().await.unwrap(), Some(2));
        assert_eq!(
            j.commit(vec![fact(2)], ExpectedHead::At(2)).await.unwrap(),
            Committed { first: 3, last: 3 }
        );
        let stats = j.stats();
        assert_eq!((stats.commit_calls, stats.commit_faults), (4, 1));
    }

    #[tokio::test]
    async fn nth_zero_means_next_and_several_can_be_armed() {
        let j = journal();
        j.fail_nth_commit(0);
        j.fail_nth_commit(3);
        assert_eq!(outcomes(&j, 4).await, [false, true, false, true]);
    }

    #[tokio::test]
    async fn chance_faults_are_deterministic_per_seed() {
        let pattern = |seed| async move {
            let j = journal();
            j.fail_commits_by_chance(0.3, seed);
            let out = outcomes(&j, 200).await;
            let ok = out.iter().filter(|o| **o).count() as u64;
            assert_eq!(j.inner().head().await.unwrap().unwrap_or(0), ok, "refused commits wrote nothing");
            out
        };
        let a = pattern(7).await;
        assert_eq!(a, pattern(7).await);
        assert_ne!(a, pattern(8).await);
        let failed = a.iter().filter(|o| !**o).count();
        assert!((30..=90).contains(&failed), "{failed} of 200 failed at p=0.3");
    }

    #[tokio::test]
    async fn chance_extremes_and_nan() {
        for (p, expect_ok) in [(0.0, true), (-1.0, true), (f64::NAN, true), (1.0, false), (2.0, false)] {
            let j = journal();
            j.fail_commits_by_chance(p, 1);
            assert!(outcomes(&j, 20).await.iter().all(|o| *o == expect_ok), "p={p}");
        }
    }

    #[tokio::test]
    async fn nth_faults_do_not_shift_the_chance_pattern() {
        let plain = journal();
        plain.fail_commits_by_chance(0.5, 42);
        let mut expected = outcomes(&plain, 30).await;
        expected[9] = false;

        let both = journal();
        both.fail_commits_by_chance(0.5, 42);
        both.fail_nth_commit(10);
        assert_eq!(outcomes(&both, 30).await, expected);
    }

    #[tokio::test]
    async fn written_but_reported_failed_reaches_the_inner_journal() {
        let j = journal();
        j.ambiguous_nth_commit(1);
        let err = j.commit(vec![fact(1), fact(2)], ExpectedHead::Empty).await.unwrap_err();
        assert!(matches!(err, JournalError::Ambiguous { .. }), "{err}");
        assert!(err.outcome_unknown());
        assert_eq!(j.head().await.unwrap(), Some(2));
        assert_eq!(j.read(1, 10).await.unwrap().len(), 2);

        // Nothing written, nothing to hide: the real error comes back.
        j.ambiguous_nth_commit(1);
        let err = j.commit(vec![fact(3)], ExpectedHead::Empty).await.unwrap_err();
        assert_eq!(err, JournalError::Conflict { expected: ExpectedHead::Empty, actual: Some(2) });
    }

    #[tokio::test]
    async fn ambiguous_by_chance() {
        let j = journal();
        j.fault_commits_by_chance(1.0, 3, CommitFault::WrittenButReportedFailed);
        assert_eq!(outcomes(&j, 5).await, [false; 5]);
        assert_eq!(j.head().await.unwrap(), Some(5));
    }

    #[tokio::test]
    async fn lost_but_reported_ambiguous_writes_nothing() {
        let j = journal();
        j.fault_nth_commit(1, CommitFault::LostButReportedAmbiguous);
        let err = j.commit(vec![fact(1)], ExpectedHead::Any).await.unwrap_err();
        assert!(err.outcome_unknown());
        assert_eq!(j.head().await.unwrap(), None);
    }

    #[tokio::test]
    async fn reads_fail_then_recover() {
        let j = journal();
        j.commit(vec![fact(1)], ExpectedHead::Any).await.unwrap();
        j.write_snapshot(1, vec![1]).await.unwrap();
        j.fail_next_reads(3);
        assert!(matches!(j.head().await, Err(JournalError::Storage { .. })));
        assert!(matches!(j.read(1, 1).await, Err(JournalError::Storage { .. })));
        assert!(matches!(j.latest_snapshot().await, Err(JournalError::Storage { .. })));
        assert_eq!(j.head().await.unwrap(), Some(1));
        assert_eq!(j.stats().read_faults, 3);
    }

    #[tokio::test]
    async fn snapshot_writes_fail_and_store_nothing() {
        let j = journal();
        j.commit(vec![fact(1)], ExpectedHead::Any).await.unwrap();
        j.fail_next_snapshot_writes(1);
        assert!(matches!(j.write_snapshot(1, vec![1]).await, Err(JournalError::Storage { .. })));
        assert_eq!(j.latest_snapshot().await.unwrap(), None);
        j.write_snapshot(1, vec![2]).await.unwrap();
        assert_eq!(j.latest_snapshot().await.unwrap().map(|s| s.bytes), Some(vec![2]));
        assert_eq!(j.stats().snapshot_write_faults, 1);
    }

    #[tokio::test]
    async fn disarm_cancels_everything_but_keeps_stats() {
        let j = journal();
        j.fail_nth_commit(2);
        j.fail_commits_by_chance(1.0, 0);
        j.fail_next_reads(9);
        j.fail_next_snapshot_writes(9);
        assert_eq!(outcomes(&j, 1).await, [false]);
        j.disarm();
        assert_eq!(outcomes(&j, 3).await, [true; 3]);
        assert_eq!(j.head().await.unwrap(), Some(3));
        j.write_snapshot(3, vec![]).await.unwrap();
        assert_eq!(j.stats(), FaultStats { commit_calls: 4, commit_faults: 1, ..FaultStats::default() });
        assert!(format!("{j:?}").starts_with("FaultyJournal { inner: MemoryJournal"));
        assert_eq!(j.into_inner().head().await.unwrap(), Some(3));
    }

    #[tokio::test]
    async fn held_notifications_wait_until_released() {
        let journal = std::sync::Arc::new(FaultyJournal::new(MemoryJournal::new()));
        journal.hold_notifications(true);
        let waiter = {
            let j = std::sync::Arc::clone(&journal);
            tokio::spawn(async move { j.wait_for_head(0).await })
        };
        journal.commit(vec![fact(1)], ExpectedHead::Any).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
        assert!(!waiter.is_finished(), "a held notification was delivered");
        journal.hold_notifications(false);
        assert_eq!(waiter.await.unwrap().unwrap(), 1);
    }
}
