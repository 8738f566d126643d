//! The conformance suite has teeth: journals with one deliberate flaw each are caught by
//! the rule that flaw breaks, while the same naive journal without a flaw passes.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use reconf_core::Fact;
use reconf_effects::testing::{self, FactoryError, JournalFactory};
use reconf_effects::{
    CommitFault, Committed, ExpectedHead, FaultyJournal, HeadSignal, JournalEffects, JournalError,
    JournalRecord, MemoryJournal, Sequence, StoredSnapshot,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flaw {
    None,
    /// Assigns the given sequence's successor instead of it.
    SkipsSequence(Sequence),
    BurnsSequenceOnConflict,
    IgnoresExpectedHead,
    WritesFirstFactOnConflict,
    /// Checks the head, then appends later without holding the lock.
    RacyCheckThenAppend,
    /// Appends a batch one fact at a time where readers can see it.
    VisibleMidBatch,
    SnapshotLastWriteWins,
    AcceptsSnapshotBeyondHead,
    LimitZeroReadsOne,
    ChecksEmptyBatchAfterHead,
    /// `wait_for_head` answers with the current head without waiting.
    WaitDoesNotWait,
    /// `wait_for_head` only sees the head as it was when the journal was made.
    WaitNeverWakes,
    /// A fresh journal already holds a record (a store that was never really emptied).
    FreshHoldsARecord,
    /// Reads return each page newest first.
    ReadsNewestFirst,
    /// Reads return the first two records' facts swapped, under the right sequences.
    ReadsFactsSwapped,
    /// Reads past the first page start from the first record again.
    ReadsIgnoreTheirStart,
    /// Swaps a batch's second fact with the second of an earlier, equally long batch
    /// that `Pair` picks: every position holds a fact of the right index, from the wrong
    /// batch, and the two batches' tags differ in one field only.
    SwapsAcrossBatches(Pair),
}

/// Which earlier batch [`Flaw::SwapsAcrossBatches`] swaps with, read from the tags the
/// suite's concurrency rules put on their facts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pair {
    /// The same commit number of another task.
    OtherTask,
    /// Another commit of the same task.
    SameTask,
}

/// A concurrency rule's fact's task and commit number.
type Origin = (u128, u128);

/// The (task, commit) of a concurrency rule's fact, decoded here independently of the
/// suite from the layout it documents: the fact's session id is `task << 48 | commit <<
/// 32 | index << 16 | len`.
fn task_and_commit(fact: &Fact) -> Option<Origin> {
    let tag = testing::sample_tag(fact)?;
    Some((tag >> 48, (tag >> 32) & 0xffff))
}

#[derive(Debug, Clone)]
struct Log {
    records: Vec<JournalRecord>,
    next: Sequence,
    snapshot: Option<StoredSnapshot>,
    /// Every batch written: its first sequence, length, and its first fact's task and
    /// commit (see [`task_and_commit`]).
    batches: Vec<(Sequence, u64, Option<Origin>)>,
}

impl Log {
    fn head(&self) -> Option<Sequence> {
        self.records.last().map(|r| r.sequence)
    }
}

/// A deliberately naive journal, correct unless given a flaw.
struct Naive {
    flaw: Flaw,
    log: Mutex<Log>,
    writer: tokio::sync::Mutex<()>,
    heads: HeadSignal,
}

impl Naive {
    fn new(flaw: Flaw, log: Log) -> Self {
        let heads = HeadSignal::new(log.head().unwrap_or(0));
        Self { flaw, log: Mutex::new(log), writer: tokio::sync::Mutex::new(()), heads }
    }

    fn lock(&self) -> MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn push(log: &mut Log, sequence: Sequence, fact: Fact) {
        log.records.push(JournalRecord { sequence, fact });
        log.next = sequence + 1;
    }

    async fn append(&self, batch: Vec<Fact>, expected: ExpectedHead) -> Result<Committed, JournalError> {
        if batch.is_empty() && self.flaw != Flaw::ChecksEmptyBatchAfterHead {
            return Err(JournalError::EmptyBatch);
        }
        let len = batch.len() as u64;
        match self.flaw {
            Flaw::RacyCheckThenAppend => {
                let first = {
                    let log = self.lock();
                    let head = log.head();
                    if !expected.matches(head) {
                        return Err(JournalError::Conflict { expected, actual: head });
                    }
                    head.map_or(1, |h| h + 1)
                };
                tokio::time::sleep(Duration::from_millis(1)).await;
                let mut log = self.lock();
                for (fact, sequence) in batch.into_iter().zip(first..) {
                    Self::push(&mut log, sequence, fact);
                }
                Ok(Committed { first, last: first + len - 1 })
            }
            Flaw::VisibleMidBatch => {
                let _writer = self.writer.lock().await;
                let first = {
                    let log = self.lock();
                    let head = log.head();
                    if !expected.matches(head) {
                        return Err(JournalError::Conflict { expected, actual: head });
                    }
                    log.next
                };
                for (i, (fact, sequence)) in batch.into_iter().zip(first..).enumerate() {
                    if i > 0 {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                    Self::push(&mut self.lock(), sequence, fact);
                }
                Ok(Committed { first, last: first + len - 1 })
            }
            flaw => {
                let mut log = self.lock();
                let head = log.head();
                if !expected.matches(head) && flaw != Flaw::IgnoresExpectedHead {
                    if flaw == Flaw::BurnsSequenceOnConflict {
                        log.next += 1;
                    }
                    if let (Flaw::WritesFirstFactOnConflict, Some(fact)) = (flaw, batch.into_iter().next()) {
                        let sequence = log.next;
                        Self::push(&mut log, sequence, fact);
                    }
                    return Err(JournalError::Conflict { expected, actual: head });
                }
                if batch.is_empty() {
                    return Err(JournalError::EmptyBatch);
                }
                let mut first = None;
                for fact in batch {
                    let mut sequence = log.next;
                    if flaw == Flaw::SkipsSequence(sequence) {
                        sequence += 1;
                    }
                    first.get_or_insert(sequence);
                    Self::push(&mut log, sequence, fact);
                }
                let first = first.unwrap_or(1);
                let at = |log: &Log, s: Sequence| log.records.iter().position(|r| r.sequence == s);
                let tag = at(&log, first).and_then(|i| task_and_commit(&log.records[i].fact));
                if let (Flaw::SwapsAcrossBatches(pair), Some((task, commit))) = (flaw, tag) {
                    let partner = log.batches.iter().rev().find(|(_, n, t)| {
                        *n == len
                            && len >= 2
                            && t.is_some_and(|(t, c)| match pair {
                                Pair::OtherTask => t != task && c == commit,
                                Pair::SameTask => t == task && c != commit,
                            })
                    });
                    if let Some((a, b)) =
                        partner.and_then(|(before, _, _)| Some((at(&log, before + 1)?, at(&log, first + 1)?)))
                    {
                        let fact = log.records[a].fact.clone();
                        log.records[a].fact = std::mem::replace(&mut log.records[b].fact, fact);
                    }
                }
                log.batches.push((first, len, tag));
                Ok(Committed { first, last: log.next - 1 })
            }
        }
    }
}

#[async_trait]
impl JournalEffects for Naive {
    async fn commit(&self, batch: Vec<Fact>, expected: ExpectedHead) -> Result<Committed, JournalError> {
        let outcome = self.append(batch, expected).await;
        if self.flaw != Flaw::WaitNeverWakes {
            self.heads.publish(self.lock().head().unwrap_or(0));
        }
        outcome
    }

    async fn read(&self, from: Sequence, limit: usize) -> Result<Vec<JournalRecord>, JournalError> {
        let limit = if self.flaw == Flaw::LimitZeroReadsOne { limit.max(1) } else { limit };
        let from = if self.flaw == Flaw::ReadsIgnoreTheirStart { 1 } else { from };
        let mut page: Vec<JournalRecord> =
            self.lock().records.iter().filter(|r| r.sequence >= from).take(limit).cloned().collect();
        if self.flaw == Flaw::ReadsNewestFirst {
            page.reverse();
        }
        if let (Flaw::ReadsFactsSwapped, [first, second, ..]) = (self.flaw, page.as_mut_slice()) {
            std::mem::swap(&mut first.fact, &mut second.fact);
        }
        Ok(page)
    }

    async fn head(&self) -> Result<Option<Sequence>, JournalError> {
        Ok(self.lock().head())
    }

    async fn write_snapshot(&self, sequence: Sequence, bytes: Vec<u8>) -> Result<(), JournalError> {
        let mut log = self.lock();
        let head = log.head();
        let in_range = sequence >= 1 && head.is_some_and(|h| sequence <= h);
        if !in_range && self.flaw != Flaw::AcceptsSnapshotBeyondHead {
            return Err(JournalError::SnapshotOutOfRange { sequence, head });
        }
        let newer = log.snapshot.as_ref().is_none_or(|s| sequence >= s.sequence);
        if newer || self.flaw == Flaw::SnapshotLastWriteWins {
            log.snapshot = Some(StoredSnapshot { sequence, bytes });
        }
        Ok(())
    }

    async fn latest_snapshot(&self) -> Result<Option<StoredSnapshot>, JournalError> {
        Ok(self.lock().snapshot.clone())
    }

    async fn wait_for_head(&self, after: Sequence) -> Result<Sequence, JournalError> {
        if self.flaw == Flaw::WaitDoesNotWait {
            return Ok(self.lock().head().unwrap_or(0));
        }
        // Published after the fact, from whatever the log holds: a correct notification may
        // be late or repeated, never ahead of the log.
        let head = self.lock().head().unwrap_or(0);
        if self.flaw != Flaw::WaitNeverWakes {
            self.heads.publish(head);
        }
        Ok(self.heads.wait_past(after).await)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reopen {
    Unsupported,
    Faithful,
    LosesLastCommit,
}

struct Factory(Flaw, Reopen);

#[async_trait]
impl JournalFactory for Factory {
    type Journal = Naive;

    async fn fresh(&self) -> Result<Naive, FactoryError> {
        let mut log = Log { records: Vec::new(), next: 1, snapshot: None, batches: Vec::new() };
        if self.0 == Flaw::FreshHoldsARecord {
            Naive::push(&mut log, 1, testing::sample_fact(1));
        }
        Ok(Naive::new(self.0, log))
    }

    async fn reopen(&self, journal: Naive) -> Result<Option<Naive>, FactoryError> {
        let mut log = journal.lock().clone();
        match self.1 {
            Reopen::Unsupported => return Ok(None),
            Reopen::Faithful => {}
            Reopen::LosesLastCommit => {
                if let Some(lost) = log.records.pop() {
                    log.next = lost.sequence;
                }
            }
        }
        Ok(Some(Naive::new(self.0, log)))
    }
}

fn flawed(flaw: Flaw) -> Factory {
    Factory(flaw, Reopen::Faithful)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_naive_journal_without_a_flaw_passes() {
    testing::run_all(&flawed(Flaw::None)).await;
    testing::run_all(&Factory(Flaw::None, Reopen::Unsupported)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[should_panic(expected = "sequences_have_no_gaps: commit 2 should start right after the previous one")]
async fn a_skipped_sequence_is_a_gap() {
    testing::sequences_have_no_gaps(&flawed(Flaw::SkipsSequence(4))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[should_panic(expected = "sequences_have_no_gaps: commit 1 should start right after the previous one")]
async fn a_conflict_must_not_burn_a_sequence() {
    testing::sequences_have_no_gaps(&flawed(Flaw::BurnsSequenceOnConflict)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[should_panic(expected = "expected_head_conflicts: a commit of 1 facts expecting head 1 must fail")]
async fn ignoring_the_expected_head_is_caught() {
    testing::expected_head_conflicts(&flawed(Flaw::IgnoresExpectedHead)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[should_panic(expected = "batches_are_atomic: a failed batch must not move the head")]
async fn a_partly_written_failed_batch_is_caught() {
    testing::batches_are_atomic(&flawed(Flaw::WritesFirstFactOnConflict)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[should_panic(expected = "empty_batch_is_rejected")]
async fn an_empty_batch_must_be_rejected_before_the_head_check() {
    testing::empty_batch_is_rejected(&flawed(Flaw::ChecksEmptyBatchAfterHead)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[should_panic(expected = "read_pages: read(3, 0) returned 1 records")]
async fn a_zero_limit_must_read_nothing() {
    testing::read_pages(&flawed(Flaw::LimitZeroReadsOne)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[should_panic(expected = "snapshots: after writing a snapshot at 4, latest should be at 5")]
async fn latest_snapshot_is_the_highest_not_the_newest() {
    testing::snapshots(&flawed(Flaw::SnapshotLastWriteWins)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[should_panic(expected = "snapshots: write_snapshot(1) must fail")]
async fn a_snapshot_beyond_the_head_is_refused() {
    testing::snapshots(&flawed(Flaw::AcceptsSnapshotBeyondHead)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[should_panic(expected = "reopen_preserves_acknowledged_state: head after reopening")]
async fn losing_an_acknowledged_commit_on_reopen_is_caught() {
    testing::reopen_preserves_acknowledged_state(&Factory(Flaw::None, Reopen::LosesLastCommit)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[should_panic(
    expected = "concurrent_expected_head_commits_serialize: concurrent commits were assigned overlapping"
)]
async fn a_racy_expected_head_check_is_caught() {
    testing::concurrent_expected_head_commits_serialize(&flawed(Flaw::RacyCheckThenAppend)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
// Depending on the interleaving, the duplicates show up as overlapping ranges or as one
// task's commits out of order; either is this rule's violation.
#[should_panic(expected = "concurrent_commits_land_exactly_once: ")]
async fn racy_appends_are_caught() {
    testing::concurrent_commits_land_exactly_once(&flawed(Flaw::RacyCheckThenAppend)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[should_panic(expected = "readers_never_see_partial_batches: a read saw only")]
async fn a_half_visible_batch_is_caught() {
    testing::readers_never_see_partial_batches(&flawed(Flaw::VisibleMidBatch)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[should_panic(
    expected = "sequences_start_at_one: a commit of 1 facts expecting any head failed: journal commit outcome unknown"
)]
async fn written_but_reported_failed_is_caught() {
    testing::run_all(&|| {
        let journal = FaultyJournal::new(MemoryJournal::new());
        journal.fault_commits_by_chance(1.0, 0, CommitFault::WrittenButReportedFailed);
        journal
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[should_panic(expected = "journal storage failed: injected fault")]
async fn refused_commits_are_caught() {
    testing::run_all(&|| {
        let journal = FaultyJournal::new(MemoryJournal::new());
        journal.fail_nth_commit(2);
        journal
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[should_panic(
    expected = "wait_for_head_wakes_on_commits: wait_for_head(0) returned Ok(0) although the head is not past 0"
)]
async fn a_wait_that_does_not_wait_is_caught() {
    testing::wait_for_head_wakes_on_commits(&flawed(Flaw::WaitDoesNotWait)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[should_panic(
    expected = "wait_for_head_wakes_on_commits: a waiting wait_for_head(0) was not woken by a commit"
)]
async fn a_wait_that_misses_commits_is_caught() {
    testing::wait_for_head_wakes_on_commits(&flawed(Flaw::WaitNeverWakes)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[should_panic(expected = "fresh_journal_is_empty: a fresh journal must have no head")]
async fn a_fresh_journal_that_is_not_empty_is_caught() {
    testing::fresh_journal_is_empty(&flawed(Flaw::FreshHoldsARecord)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[should_panic(expected = "commits_are_read_back_in_order: ")]
async fn records_read_back_out_of_order_are_caught() {
    testing::commits_are_read_back_in_order(&flawed(Flaw::ReadsNewestFirst)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[should_panic(expected = "tail_delivers_every_record_once_in_order: the tail failed at")]
async fn a_journal_that_a_tail_cannot_follow_is_caught() {
    testing::tail_delivers_every_record_once_in_order(&flawed(Flaw::ReadsIgnoreTheirStart)).await;
}

// Two flaws, since each field of a fact's tag must tell batches apart on its own: a swap
// between tasks at the same commit number is seen only through the task, one within a
// task only through the commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[should_panic(expected = "readers_never_see_partial_batches: record")]
async fn facts_swapped_between_tasks_are_caught() {
    testing::readers_never_see_partial_batches(&flawed(Flaw::SwapsAcrossBatches(Pair::OtherTask))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[should_panic(expected = "readers_never_see_partial_batches: record")]
async fn facts_swapped_between_commits_of_one_task_are_caught() {
    testing::readers_never_see_partial_batches(&flawed(Flaw::SwapsAcrossBatches(Pair::SameTask))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[should_panic(expected = "commits_are_read_back_in_order: record 1 holds the wrong fact")]
async fn records_read_back_with_the_wrong_facts_are_caught() {
    testing::commits_are_read_back_in_order(&flawed(Flaw::ReadsFactsSwapped)).await;
}
