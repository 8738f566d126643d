//! The rules of following a journal: `wait_for_head` and the [`Tail`] built on it.

// Test code: a rule violation is reported by panicking, which is what a test harness expects.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use reconf_core::Fact;

use super::support::{commit, fresh, head, read_all, reopen, sample_fact};
use super::JournalFactory;
use crate::journal::{ExpectedHead, JournalEffects, JournalRecord, Sequence};
use crate::tail::Tail;

/// How long a wait that must not finish is given to finish anyway.
const QUIET: Duration = Duration::from_millis(100);
/// How long a wait that must finish may take (a shared backend's notification crosses a
/// network round trip or two).
const PROMPT: Duration = Duration::from_secs(10);

async fn waits_quietly<J: JournalEffects + ?Sized>(j: &J, after: Sequence, rule: &str) {
    if let Ok(outcome) = tokio::time::timeout(QUIET, j.wait_for_head(after)).await {
        panic!("{rule}: wait_for_head({after}) returned {outcome:?} although the head is not past {after}");
    }
}

async fn wait_promptly<J: JournalEffects + ?Sized>(j: &J, after: Sequence, rule: &str) -> Sequence {
    match tokio::time::timeout(PROMPT, j.wait_for_head(after)).await {
        Ok(Ok(h)) => h,
        Ok(Err(e)) => panic!("{rule}: wait_for_head({after}) failed: {e}"),
        Err(_) => {
            panic!("{rule}: wait_for_head({after}) did not return within {PROMPT:?} of the head passing it")
        }
    }
}

/// `wait_for_head` waits while the head is not past its argument, wakes for a commit made
/// while it waits, returns at once when the head is already past, and never reports a head
/// the journal does not hold.
pub async fn wait_for_head_wakes_on_commits<F: JournalFactory>(factory: &F) {
    const RULE: &str = "wait_for_head_wakes_on_commits";
    let journal = Arc::new(fresh(factory, RULE).await);
    waits_quietly(&*journal, 0, RULE).await;

    let waiter = {
        let j = Arc::clone(&journal);
        tokio::spawn(async move { tokio::time::timeout(PROMPT, j.wait_for_head(0)).await })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    commit(&*journal, vec![sample_fact(1), sample_fact(2)], ExpectedHead::Empty, RULE).await;
    let woke = match waiter.await {
        Ok(Ok(Ok(h))) => h,
        Ok(Ok(Err(e))) => panic!("{RULE}: a waiting wait_for_head(0) failed: {e}"),
        Ok(Err(_)) => {
            panic!("{RULE}: a waiting wait_for_head(0) was not woken by a commit within {PROMPT:?}")
        }
        Err(e) => panic!("{RULE}: the waiting task failed: {e}"),
    };
    assert!((1..=2).contains(&woke), "{RULE}: wait_for_head(0) woke with head {woke}, but the head is 2");

    assert_eq!(wait_promptly(&*journal, 1, RULE).await, 2, "{RULE}: wait_for_head(1) with head 2");
    waits_quietly(&*journal, 2, RULE).await;
    assert_eq!(head(&*journal, RULE).await, Some(2), "{RULE}: waiting must not change the head");
}

/// A writer lands 60 commits of 1–3 facts while two tails follow: one kept for the whole
/// run, one dropped and made again from its next sequence every few records (a consumer
/// resuming after a reconnect). Both deliver every record exactly once, in order, with the
/// journal's facts; after reopening (where supported) a tail from 1 delivers them again.
pub async fn tail_delivers_every_record_once_in_order<F: JournalFactory>(factory: &F) {
    const RULE: &str = "tail_delivers_every_record_once_in_order";
    const COMMITS: u64 = 60;
    let journal = Arc::new(fresh(factory, RULE).await);
    let total: u64 = (0..COMMITS).map(|n| 1 + n % 3).sum();

    let writer = {
        let j = Arc::clone(&journal);
        tokio::spawn(async move {
            for n in 0..COMMITS {
                let batch: Vec<Fact> = (0..1 + n % 3).map(|i| sample_fact(u128::from(n * 4 + i))).collect();
                commit(&*j, batch, ExpectedHead::Any, RULE).await;
                if n % 4 == 0 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        })
    };
    let steady = {
        let j = Arc::clone(&journal);
        tokio::spawn(async move {
            let mut tail = Tail::new(j, 1);
            let mut got = Vec::new();
            while (got.len() as u64) < total {
                got.extend(next(&mut tail, 5).await);
            }
            got
        })
    };
    let resuming = {
        let j = Arc::clone(&journal);
        tokio::spawn(async move {
            let mut got: Vec<JournalRecord> = Vec::new();
            while (got.len() as u64) < total {
                let mut tail = Tail::new(Arc::clone(&j), got.len() as u64 + 1);
                got.extend(next(&mut tail, 3).await);
            }
            got
        })
    };
    let joined = tokio::time::timeout(PROMPT * 3, async {
        writer.await.expect("writer task");
        (steady.await.expect("tail task"), resuming.await.expect("tail task"))
    })
    .await;
    let Ok((steady, resuming)) = joined else {
        panic!("{RULE}: the tails did not deliver all {total} records within {:?}", PROMPT * 3);
    };
    let log = read_all(&*journal, RULE).await;
    assert_eq!(log.len() as u64, total, "{RULE}: the writer's commits are not all in the journal");
    for (name, got) in [("a steady tail", &steady), ("a resuming tail", &resuming)] {
        assert_eq!(got.len() as u64, total, "{RULE}: {name} delivered more records than were written");
        for (i, (delivered, stored)) in got.iter().zip(&log).enumerate() {
            assert!(
                delivered == stored,
                "{RULE}: {name}'s record {} is {delivered:?}, the journal holds {stored:?}",
                i + 1
            );
        }
    }

    let Ok(journal) = Arc::try_unwrap(journal) else {
        panic!("{RULE}: the journal is still shared after every task finished");
    };
    if let Some(reopened) = reopen(factory, journal, RULE).await {
        let reopened = Arc::new(reopened);
        let mut tail = Tail::new(Arc::clone(&reopened), 1);
        let mut again = Vec::new();
        while (again.len() as u64) < total {
            again.extend(next(&mut tail, 64).await);
        }
        assert!(again == log, "{RULE}: a tail of the reopened journal delivered other records");
        let waiter = tokio::spawn(async move { next(&mut tail, 64).await });
        commit(&*reopened, vec![sample_fact(9_999)], ExpectedHead::At(total), RULE).await;
        let fresh_records = tokio::time::timeout(PROMPT, waiter).await;
        let Ok(Ok(fresh_records)) = fresh_records else {
            panic!("{RULE}: a tail of the reopened journal was not woken by a new commit");
        };
        assert_eq!(
            fresh_records.iter().map(|r| r.sequence).collect::<Vec<_>>(),
            [total + 1],
            "{RULE}: after reopening, the tail must deliver the new record and nothing else"
        );
    }
}

async fn next<J: JournalEffects>(tail: &mut Tail<J>, limit: usize) -> Vec<JournalRecord> {
    let from = tail.next_sequence();
    match tokio::time::timeout(PROMPT, tail.next(limit)).await {
        Ok(Ok(records)) => records,
        Ok(Err(e)) => panic!("tail_delivers_every_record_once_in_order: the tail failed at {from}: {e}"),
        Err(_) => panic!(
            "tail_delivers_every_record_once_in_order: the tail waited {PROMPT:?} at {from} while records were being written"
        ),
    }
}
