//! The rules a single writer can check: numbering, atomicity, conflicts, paging,
//! snapshots and reopening.

// Test code: a rule violation is reported by panicking, which is what a test harness expects.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use reconf_core::Fact;

use super::support::{
    assert_log, bundle_fact, commit, commit_err, fresh, head, latest_snapshot, read, read_all, reopen,
    reopen_again, sample_fact, write_snapshot, write_snapshot_err,
};
use super::JournalFactory;
use crate::journal::{Committed, ExpectedHead, JournalEffects, JournalError, Sequence, StoredSnapshot};

/// A fresh journal has no head, no records and no snapshot.
pub async fn fresh_journal_is_empty<F: JournalFactory>(factory: &F) {
    const RULE: &str = "fresh_journal_is_empty";
    let j = fresh(factory, RULE).await;
    assert_eq!(head(&j, RULE).await, None, "{RULE}: a fresh journal must have no head");
    assert!(read(&j, 1, 10, RULE).await.is_empty(), "{RULE}: a fresh journal must have no records");
    assert!(read(&j, 0, 10, RULE).await.is_empty(), "{RULE}: a fresh journal must have no records (from 0)");
    assert_eq!(latest_snapshot(&j, RULE).await, None, "{RULE}: a fresh journal must have no snapshot");
}

/// The first record is sequence 1, whether the first commit expects any head or an empty
/// journal, and whatever its size.
pub async fn sequences_start_at_one<F: JournalFactory>(factory: &F) {
    const RULE: &str = "sequences_start_at_one";
    let j = fresh(factory, RULE).await;
    let c = commit(&j, vec![sample_fact(1)], ExpectedHead::Any, RULE).await;
    assert_eq!(c, Committed { first: 1, last: 1 }, "{RULE}: the first single-fact commit");
    assert_eq!(head(&j, RULE).await, Some(1), "{RULE}: head after the first commit");
    assert_log(&read(&j, 1, 1, RULE).await, &[sample_fact(1)], RULE);

    let j = fresh(factory, RULE).await;
    let batch: Vec<Fact> = (10..13).map(sample_fact).collect();
    let c = commit(&j, batch.clone(), ExpectedHead::Empty, RULE).await;
    assert_eq!(c, Committed { first: 1, last: 3 }, "{RULE}: the first three-fact commit");
    assert_log(&read_all(&j, RULE).await, &batch, RULE);
}

/// Records read back in commit order, fact for fact, including every fact kind.
pub async fn commits_are_read_back_in_order<F: JournalFactory>(factory: &F) {
    const RULE: &str = "commits_are_read_back_in_order";
    let j = fresh(factory, RULE).await;
    let mut expected = Vec::new();
    for n in 0..6 {
        let fact = sample_fact(100 - n);
        commit(&j, vec![fact.clone()], ExpectedHead::Any, RULE).await;
        expected.push(fact);
    }
    let batch = vec![bundle_fact(1), sample_fact(7), bundle_fact(2), sample_fact(3)];
    commit(&j, batch.clone(), ExpectedHead::At(6), RULE).await;
    expected.extend(batch);
    assert_log(&read_all(&j, RULE).await, &expected, RULE);
}

/// Consecutive commits get consecutive ranges, and failed commits use no sequence up.
pub async fn sequences_have_no_gaps<F: JournalFactory>(factory: &F) {
    const RULE: &str = "sequences_have_no_gaps";
    let j = fresh(factory, RULE).await;
    let mut expected = Vec::new();
    let mut next: Sequence = 1;
    for (round, len) in [1u128, 2, 3, 1, 5, 1, 4].into_iter().enumerate() {
        let batch: Vec<Fact> = (0..len).map(|i| sample_fact(round as u128 * 10 + i)).collect();
        let c = commit(&j, batch.clone(), ExpectedHead::Any, RULE).await;
        assert_eq!(
            c.first, next,
            "{RULE}: commit {round} should start right after the previous one (gap?): {c:?}"
        );
        next = c.last + 1;
        expected.extend(batch);

        // A failure of either kind in between must not consume sequences.
        let _ = commit_err(&j, vec![sample_fact(999)], ExpectedHead::Empty, RULE).await;
        let _ = commit_err(&j, Vec::new(), ExpectedHead::Any, RULE).await;
    }
    assert_eq!(head(&j, RULE).await, Some(next - 1), "{RULE}: head after all commits");
    assert_log(&read_all(&j, RULE).await, &expected, RULE);
}

/// A batch is written whole or not at all: a batch that fails (here on an expected-head
/// conflict) leaves no record, and a successful one is contiguous.
pub async fn batches_are_atomic<F: JournalFactory>(factory: &F) {
    const RULE: &str = "batches_are_atomic";
    let j = fresh(factory, RULE).await;
    let first: Vec<Fact> = (0..4).map(sample_fact).collect();
    assert_eq!(
        commit(&j, first.clone(), ExpectedHead::Empty, RULE).await,
        Committed { first: 1, last: 4 },
        "{RULE}"
    );

    for expected in [ExpectedHead::At(2), ExpectedHead::Empty, ExpectedHead::At(9)] {
        let doomed: Vec<Fact> = (50..53).map(sample_fact).collect();
        let err = commit_err(&j, doomed, expected, RULE).await;
        assert!(
            matches!(err, JournalError::Conflict { .. }),
            "{RULE}: a batch expecting {expected} on head 4 must conflict, got: {err}"
        );
        assert_eq!(head(&j, RULE).await, Some(4), "{RULE}: a failed batch must not move the head");
        assert_log(&read_all(&j, RULE).await, &first, RULE);
    }

    let second: Vec<Fact> = (4..7).map(sample_fact).collect();
    assert_eq!(
        commit(&j, second.clone(), ExpectedHead::At(4), RULE).await,
        Committed { first: 5, last: 7 },
        "{RULE}"
    );
    assert_log(&read_all(&j, RULE).await, &[first, second].concat(), RULE);
}

/// An empty batch is [`JournalError::EmptyBatch`] whatever the expectation, and writes
/// nothing.
pub async fn empty_batch_is_rejected<F: JournalFactory>(factory: &F) {
    const RULE: &str = "empty_batch_is_rejected";
    let j = fresh(factory, RULE).await;
    for expected in [ExpectedHead::Any, ExpectedHead::Empty, ExpectedHead::At(7)] {
        let err = commit_err(&j, Vec::new(), expected, RULE).await;
        assert_eq!(
            err,
            JournalError::EmptyBatch,
            "{RULE}: empty batch expecting {expected} on an empty journal"
        );
    }
    assert_eq!(head(&j, RULE).await, None, "{RULE}: an empty batch must not create a head");

    commit(&j, vec![sample_fact(1)], ExpectedHead::Empty, RULE).await;
    for expected in [ExpectedHead::Any, ExpectedHead::At(1), ExpectedHead::Empty] {
        let err = commit_err(&j, Vec::new(), expected, RULE).await;
        assert_eq!(err, JournalError::EmptyBatch, "{RULE}: empty batch expecting {expected} on head 1");
    }
    assert_log(&read_all(&j, RULE).await, &[sample_fact(1)], RULE);
}

/// A commit whose expected head does not match writes nothing and reports the actual head;
/// a matching one (or `Any`) goes through.
pub async fn expected_head_conflicts<F: JournalFactory>(factory: &F) {
    const RULE: &str = "expected_head_conflicts";
    let j = fresh(factory, RULE).await;
    for expected in [ExpectedHead::At(1), ExpectedHead::At(0)] {
        let err = commit_err(&j, vec![sample_fact(0)], expected, RULE).await;
        assert_eq!(
            err,
            JournalError::Conflict { expected, actual: None },
            "{RULE}: expecting {expected} on empty"
        );
    }
    let mut expected_log = vec![sample_fact(1)];
    commit(&j, vec![sample_fact(1)], ExpectedHead::Empty, RULE).await;

    let err = commit_err(&j, vec![sample_fact(0)], ExpectedHead::Empty, RULE).await;
    assert_eq!(
        err,
        JournalError::Conflict { expected: ExpectedHead::Empty, actual: Some(1) },
        "{RULE}: expecting an empty journal when it is not"
    );

    assert_eq!(commit(&j, vec![sample_fact(2)], ExpectedHead::At(1), RULE).await.first, 2, "{RULE}");
    expected_log.push(sample_fact(2));
    for expected in [ExpectedHead::At(1), ExpectedHead::At(3), ExpectedHead::At(u64::MAX)] {
        let err = commit_err(&j, vec![sample_fact(0)], expected, RULE).await;
        assert_eq!(
            err,
            JournalError::Conflict { expected, actual: Some(2) },
            "{RULE}: expecting {expected} on head 2"
        );
    }

    assert_eq!(commit(&j, vec![sample_fact(3)], ExpectedHead::Any, RULE).await.first, 3, "{RULE}");
    expected_log.push(sample_fact(3));
    assert_log(&read_all(&j, RULE).await, &expected_log, RULE);
}

/// `(from, limit, the records expected as (sequence, fact))`.
type ReadCase = (Sequence, usize, Vec<(Sequence, Fact)>);

/// `read(from, limit)` returns up to `limit` records with sequence `>= from`, in order.
pub async fn read_pages<F: JournalFactory>(factory: &F) {
    const RULE: &str = "read_pages";
    let j = fresh(factory, RULE).await;
    let facts: Vec<Fact> = (0..10).map(sample_fact).collect();
    for chunk in [&facts[..3], &facts[3..6], &facts[6..]] {
        commit(&j, chunk.to_vec(), ExpectedHead::Any, RULE).await;
    }
    let window = |from: usize, to: usize| -> Vec<(Sequence, Fact)> {
        (from..=to).map(|s| (s as Sequence, facts[s - 1].clone())).collect()
    };
    let cases: [ReadCase; 11] = [
        (1, 3, window(1, 3)),
        (4, 3, window(4, 6)),
        (3, 5, window(3, 7)),
        (7, 100, window(7, 10)),
        (10, 5, window(10, 10)),
        (0, 2, window(1, 2)),
        (1, usize::MAX, window(1, 10)),
        (3, 0, Vec::new()),
        (11, 5, Vec::new()),
        (1_000, 5, Vec::new()),
        (u64::MAX, usize::MAX, Vec::new()),
    ];
    for (from, limit, want) in cases {
        let got: Vec<(Sequence, Fact)> =
            read(&j, from, limit, RULE).await.into_iter().map(|r| (r.sequence, r.fact)).collect();
        let got_seqs: Vec<Sequence> = got.iter().map(|(s, _)| *s).collect();
        let want_seqs: Vec<Sequence> = want.iter().map(|(s, _)| *s).collect();
        assert_eq!(got_seqs, want_seqs, "{RULE}: read({from}, {limit}) returned the wrong sequences");
        assert!(
            got == want,
            "{RULE}: read({from}, {limit}) returned the right sequences with the wrong facts"
        );
    }

    let mut paged = Vec::new();
    let mut from = 1;
    loop {
        let page = read(&j, from, 4, RULE).await;
        assert!(page.len() <= 4, "{RULE}: read(_, 4) returned {} records", page.len());
        let Some(last) = page.last() else { break };
        from = last.sequence + 1;
        paged.extend(page);
    }
    assert_log(&paged, &facts, RULE);
}

/// Snapshots: only sequences `1..=head` are accepted (otherwise
/// [`JournalError::SnapshotOutOfRange`], nothing stored); the latest is the one with the
/// highest sequence, not the last written; rewriting a sequence replaces it; snapshots
/// never change the records.
pub async fn snapshots<F: JournalFactory>(factory: &F) {
    const RULE: &str = "snapshots";
    let j = fresh(factory, RULE).await;
    let err = write_snapshot_err(&j, 1, b"x".to_vec(), RULE).await;
    assert_eq!(
        err,
        JournalError::SnapshotOutOfRange { sequence: 1, head: None },
        "{RULE}: snapshot on empty journal"
    );

    let facts: Vec<Fact> = (0..5).map(sample_fact).collect();
    commit(&j, facts.clone(), ExpectedHead::Empty, RULE).await;
    for sequence in [0, 6, u64::MAX] {
        let err = write_snapshot_err(&j, sequence, b"x".to_vec(), RULE).await;
        assert_eq!(
            err,
            JournalError::SnapshotOutOfRange { sequence, head: Some(5) },
            "{RULE}: snapshot at {sequence}"
        );
    }
    assert_eq!(latest_snapshot(&j, RULE).await, None, "{RULE}: a refused snapshot must not be stored");

    let big: Vec<u8> = (0..256 * 1024).map(|i| (i % 251) as u8).collect();
    let steps: [(Sequence, Vec<u8>, Sequence, Vec<u8>); 5] = [
        (3, b"three".to_vec(), 3, b"three".to_vec()),
        (5, b"five".to_vec(), 5, b"five".to_vec()),
        (4, b"four".to_vec(), 5, b"five".to_vec()),
        (5, big.clone(), 5, big.clone()),
        (1, Vec::new(), 5, big),
    ];
    for (sequence, bytes, want_seq, want_bytes) in steps {
        let size = bytes.len();
        if let Err(e) = j.write_snapshot(sequence, bytes).await {
            panic!("{RULE}: write_snapshot({sequence}, {size} bytes) on head 5 failed: {e}");
        }
        let got = latest_snapshot(&j, RULE).await;
        assert_eq!(
            got.as_ref().map(|s| (s.sequence, s.bytes.len())),
            Some((want_seq, want_bytes.len())),
            "{RULE}: after writing a snapshot at {sequence}, latest should be at {want_seq}"
        );
        assert!(
            got == Some(StoredSnapshot { sequence: want_seq, bytes: want_bytes }),
            "{RULE}: latest snapshot bytes differ from what was written at {want_seq}"
        );
    }
    assert_eq!(head(&j, RULE).await, Some(5), "{RULE}: snapshots must not move the head");
    assert_log(&read_all(&j, RULE).await, &facts, RULE);
}

/// Where the backend persists: acknowledged commits and snapshots survive reopening,
/// refused ones do not appear, the head is right, and appending continues without a gap.
/// Skipped when [`JournalFactory::reopen`] returns `None`.
pub async fn reopen_preserves_acknowledged_state<F: JournalFactory>(factory: &F) {
    const RULE: &str = "reopen_preserves_acknowledged_state";
    let Some(j) = reopen(factory, fresh(factory, RULE).await, RULE).await else { return };
    assert_eq!(head(&j, RULE).await, None, "{RULE}: a reopened empty journal must stay empty");
    assert_eq!(latest_snapshot(&j, RULE).await, None, "{RULE}: a reopened empty journal has no snapshot");

    let mut expected: Vec<Fact> = (0..3).map(sample_fact).collect();
    commit(&j, expected.clone(), ExpectedHead::Empty, RULE).await;
    commit(&j, vec![bundle_fact(3)], ExpectedHead::At(3), RULE).await;
    expected.push(bundle_fact(3));
    let _ = commit_err(&j, vec![sample_fact(99)], ExpectedHead::At(1), RULE).await;
    write_snapshot(&j, 2, b"two".to_vec(), RULE).await;

    let j = reopen_again(factory, j, RULE).await;
    assert_eq!(head(&j, RULE).await, Some(4), "{RULE}: head after reopening");
    assert_log(&read_all(&j, RULE).await, &expected, RULE);
    assert_eq!(
        latest_snapshot(&j, RULE).await,
        Some(StoredSnapshot { sequence: 2, bytes: b"two".to_vec() }),
        "{RULE}: snapshot after reopening"
    );

    let more = vec![sample_fact(4), sample_fact(5)];
    assert_eq!(
        commit(&j, more.clone(), ExpectedHead::At(4), RULE).await,
        Committed { first: 5, last: 6 },
        "{RULE}: appending after reopening must continue at head + 1"
    );
    expected.extend(more);
    let err = commit_err(&j, vec![sample_fact(99)], ExpectedHead::At(4), RULE).await;
    assert_eq!(err, JournalError::Conflict { expected: ExpectedHead::At(4), actual: Some(6) }, "{RULE}");
    write_snapshot(&j, 6, b"six".to_vec(), RULE).await;

    let j = reopen_again(factory, j, RULE).await;
    assert_eq!(head(&j, RULE).await, Some(6), "{RULE}: head after the second reopen");
    assert_log(&read_all(&j, RULE).await, &expected, RULE);
    assert_eq!(
        latest_snapshot(&j, RULE).await,
        Some(StoredSnapshot { sequence: 6, bytes: b"six".to_vec() }),
        "{RULE}: snapshot after the second reopen"
    );
    let err = write_snapshot_err(&j, 7, b"x".to_vec(), RULE).await;
    assert_eq!(
        err,
        JournalError::SnapshotOutOfRange { sequence: 7, head: Some(6) },
        "{RULE}: after reopening"
    );
}
