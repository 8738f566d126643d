//! The rules that need many tasks racing on one journal.

// Test code: a rule violation is reported by panicking, which is what a test harness expects.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use reconf_core::Fact;
use tokio::runtime::{Handle, RuntimeFlavor};

use super::support::{
    assert_log, commit, fresh, head, join, read, read_all, reopen, sample_fact, sample_tag,
};
use super::JournalFactory;
use crate::journal::{Committed, ExpectedHead, JournalEffects, JournalError, JournalRecord, Sequence};

/// 64 tasks × 8 commits of 1–3 facts, expecting any head, on a multi-thread runtime: every
/// commit lands exactly once, the ranges are distinct and gap-free, each task's commits are
/// ordered, and the log reads back exactly (after reopening too, where supported).
pub async fn concurrent_commits_land_exactly_once<F: JournalFactory>(factory: &F) {
    const RULE: &str = "concurrent_commits_land_exactly_once";
    const TASKS: u64 = 64;
    const COMMITS: u64 = 8;
    require_multi_thread(RULE);
    let journal = Arc::new(fresh(factory, RULE).await);
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let j = Arc::clone(&journal);
            tokio::spawn(async move {
                let mut done = Vec::new();
                for n in 0..COMMITS {
                    let len = 1 + (task + n) % 3;
                    let batch: Vec<Fact> = (0..len)
                        .map(|i| sample_fact(Tag { task, commit: n, index: i, len }.encode()))
                        .collect();
                    done.push((commit(&*j, batch.clone(), ExpectedHead::Any, RULE).await, batch));
                }
                done
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        let done = join(task, RULE).await;
        for pair in done.windows(2) {
            assert!(
                pair[0].0.last < pair[1].0.first,
                "{RULE}: one task's later commit {:?} was ordered before its earlier commit {:?}",
                pair[1].0,
                pair[0].0
            );
        }
        all.extend(done);
    }
    let expected = check_ranges_and_read_back(&*journal, all, RULE).await;
    let Ok(journal) = Arc::try_unwrap(journal) else {
        panic!("{RULE}: the journal is still shared after every task finished");
    };
    if let Some(reopened) = reopen(factory, journal, RULE).await {
        assert_log(&read_all(&reopened, RULE).await, &expected, RULE);
    }
}

/// 16 tasks each land 4 commits by optimistic concurrency (read the head, commit expecting
/// it, on conflict retry from the reported head). Every success starts right after the head
/// it expected, every conflict reports a head other than the one expected, and the log is
/// distinct, gap-free and reads back exactly.
pub async fn concurrent_expected_head_commits_serialize<F: JournalFactory>(factory: &F) {
    const RULE: &str = "concurrent_expected_head_commits_serialize";
    const TASKS: u64 = 16;
    const COMMITS: u64 = 4;
    // Each failed attempt means another commit landed in between, so a correct journal
    // needs far fewer attempts than this.
    const MAX_ATTEMPTS: u64 = 10 * TASKS * COMMITS;
    require_multi_thread(RULE);
    let journal = Arc::new(fresh(factory, RULE).await);
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let j = Arc::clone(&journal);
            tokio::spawn(async move {
                let mut done = Vec::new();
                for n in 0..COMMITS {
                    let fact = sample_fact(Tag { task, commit: n, index: 0, len: 1 }.encode());
                    let mut expected = ExpectedHead::from_head(head(&*j, RULE).await);
                    for attempt in 1.. {
                        assert!(attempt <= MAX_ATTEMPTS, "{RULE}: task {task} made no progress in {MAX_ATTEMPTS} attempts");
                        match j.commit(vec![fact.clone()], expected).await {
                            Ok(c) => {
                                let want = match expected {
                                    ExpectedHead::At(h) => h + 1,
                                    _ => 1,
                                };
                                assert_eq!(
                                    c,
                                    Committed { first: want, last: want },
                                    "{RULE}: a commit expecting {expected} must be assigned the next sequence"
                                );
                                done.push((c, vec![fact]));
                                break;
                            }
                            Err(JournalError::Conflict { expected: reported, actual }) => {
                                assert_eq!(reported, expected, "{RULE}: a conflict must echo the expectation");
                                assert!(
                                    !expected.matches(actual),
                                    "{RULE}: conflict expecting {expected} reported a matching head {actual:?}"
                                );
                                expected = ExpectedHead::from_head(actual);
                                tokio::task::yield_now().await;
                            }
                            Err(e) => panic!("{RULE}: commit expecting {expected} failed: {e}"),
                        }
                    }
                }
                done
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(join(task, RULE).await);
    }
    check_ranges_and_read_back(&*journal, all, RULE).await;
}

/// While 8 tasks commit batches of 4 facts, 4 readers repeatedly read the head and then
/// the whole log in one call: every read is gap-free from 1, covers at least the head read
/// before it, and holds whole batches only.
pub async fn readers_never_see_partial_batches<F: JournalFactory>(factory: &F) {
    const RULE: &str = "readers_never_see_partial_batches";
    const WRITERS: u64 = 8;
    const COMMITS: u64 = 8;
    const LEN: u64 = 4;
    const READERS: usize = 4;
    const LIMIT: usize = (WRITERS * COMMITS * LEN) as usize + 1;
    require_multi_thread(RULE);
    let journal = Arc::new(fresh(factory, RULE).await);
    let writers_done = Arc::new(AtomicBool::new(false));

    let readers: Vec<_> = (0..READERS)
        .map(|_| {
            let (j, stop) = (Arc::clone(&journal), Arc::clone(&writers_done));
            tokio::spawn(async move {
                loop {
                    let last_round = stop.load(Ordering::Acquire);
                    let seen_head = head(&*j, RULE).await.unwrap_or(0);
                    let records = read(&*j, 1, LIMIT, RULE).await;
                    check_whole_batches(&records, seen_head, RULE);
                    if last_round {
                        return records.len();
                    }
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    let writers: Vec<_> = (0..WRITERS)
        .map(|task| {
            let j = Arc::clone(&journal);
            tokio::spawn(async move {
                for n in 0..COMMITS {
                    let batch = (0..LEN)
                        .map(|i| sample_fact(Tag { task, commit: n, index: i, len: LEN }.encode()))
                        .collect();
                    commit(&*j, batch, ExpectedHead::Any, RULE).await;
                }
            })
        })
        .collect();
    for writer in writers {
        join(writer, RULE).await;
    }
    writers_done.store(true, Ordering::Release);
    for reader in readers {
        let last_read = join(reader, RULE).await;
        assert_eq!(last_read, LIMIT - 1, "{RULE}: a read after every writer finished must see every record");
    }
}

/// Where a concurrently written fact came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Tag {
    task: u64,
    commit: u64,
    index: u64,
    len: u64,
}

impl Tag {
    fn encode(self) -> u128 {
        (u128::from(self.task) << 48)
            | (u128::from(self.commit & 0xffff) << 32)
            | (u128::from(self.index & 0xffff) << 16)
            | u128::from(self.len & 0xffff)
    }

    fn decode(fact: &Fact) -> Option<Self> {
        let t = sample_tag(fact)?;
        let field = |shift: u32| (t >> shift) as u64 & 0xffff;
        Some(Self { task: (t >> 48) as u64, commit: field(32), index: field(16), len: field(0) })
    }
}

fn require_multi_thread(rule: &str) {
    let Ok(handle) = Handle::try_current() else {
        panic!("{rule}: the conformance suite must run inside a tokio runtime");
    };
    assert!(
        handle.runtime_flavor() != RuntimeFlavor::CurrentThread,
        "{rule}: run the conformance suite on a multi-thread runtime \
         (#[tokio::test(flavor = \"multi_thread\")]) so concurrent commits really race"
    );
}

/// Checks that `commits` have distinct, gap-free ranges covering the whole log and that
/// the log reads back as those batches; returns the log's facts.
async fn check_ranges_and_read_back<J>(
    j: &J,
    mut commits: Vec<(Committed, Vec<Fact>)>,
    rule: &str,
) -> Vec<Fact>
where
    J: JournalEffects + ?Sized,
{
    commits.sort_by_key(|(c, _)| c.first);
    let mut next = 1;
    for (c, _) in &commits {
        assert_eq!(
            c.first, next,
            "{rule}: concurrent commits were assigned overlapping or gapped ranges: expected one starting at {next}, found {c:?}"
        );
        next = c.last + 1;
    }
    assert_eq!(head(j, rule).await, Some(next - 1), "{rule}: head after concurrent commits");
    let expected: Vec<Fact> = commits.into_iter().flat_map(|(_, batch)| batch).collect();
    assert_log(&read_all(j, rule).await, &expected, rule);
    expected
}

fn check_whole_batches(records: &[JournalRecord], seen_head: Sequence, rule: &str) {
    assert!(
        records.len() as u64 >= seen_head,
        "{rule}: head() reported {seen_head} but a later read returned only {} records",
        records.len()
    );
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r.sequence, i as u64 + 1, "{rule}: concurrent read is not gap-free from 1");
    }
    let mut rest = records;
    while let Some(first) = rest.first() {
        let tag = Tag::decode(&first.fact);
        let Some(tag) = tag.filter(|t| t.index == 0 && t.len > 0) else {
            panic!("{rule}: record {} does not start a batch ({tag:?})", first.sequence);
        };
        let len = tag.len as usize;
        assert!(
            rest.len() >= len,
            "{rule}: a read saw only {} of the {len} facts of the batch starting at {}",
            rest.len(),
            first.sequence
        );
        for (i, r) in rest[..len].iter().enumerate() {
            assert_eq!(
                Tag::decode(&r.fact),
                Some(Tag { index: i as u64, ..tag }),
                "{rule}: record {} is not part of the batch starting at {} (batch interleaved?)",
                r.sequence,
                first.sequence
            );
        }
        rest = &rest[len..];
    }
}
