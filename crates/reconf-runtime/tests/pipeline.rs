//! The actor pipelines commits: commands that arrive while a batch's commit is in flight are
//! checked against the state as that batch will leave it. These tests hold a commit in
//! flight with a gate and check what happens to the batch behind it when the commit fails,
//! conflicts or lands.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reconf_effects::journal::{Committed, JournalRecord, Sequence, StoredSnapshot};
use reconf_runtime::*;
use tokio::sync::{Notify, Semaphore};

/// A journal whose commits, once the gate is closed, wait for a permit each; and while
/// `conflicts` is above zero, each commit is refused as if another writer had got there
/// first (nothing written).
struct Gated {
    inner: FaultyJournal<MemoryJournal>,
    closed: AtomicBool,
    conflicts: AtomicU64,
    permits: Semaphore,
    started: AtomicU64,
    arrived: Notify,
}

impl Gated {
    fn new(inner: MemoryJournal) -> Arc<Self> {
        Arc::new(Self {
            inner: FaultyJournal::new(inner),
            closed: AtomicBool::new(false),
            conflicts: AtomicU64::new(0),
            permits: Semaphore::new(0),
            started: AtomicU64::new(0),
            arrived: Notify::new(),
        })
    }

    /// Waits until `n` commits have reached the gate.
    async fn wait_for(&self, n: u64) {
        while self.started.load(Ordering::SeqCst) < n {
            tokio::time::timeout(Duration::from_secs(10), self.arrived.notified())
                .await
                .expect("commit never came");
        }
    }
}

#[async_trait]
impl JournalEffects for Gated {
    async fn commit(&self, batch: Vec<Fact>, expected: ExpectedHead) -> Result<Committed, JournalError> {
        let conflict = self.conflicts.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        if conflict.is_ok() {
            return Err(JournalError::Conflict { expected, actual: self.inner.head().await? });
        }
        if self.closed.load(Ordering::SeqCst) {
            self.started.fetch_add(1, Ordering::SeqCst);
            self.arrived.notify_waiters();
            self.permits.acquire().await.expect("gate").forget();
        }
        self.inner.commit(batch, expected).await
    }
    async fn read(&self, from: Sequence, limit: usize) -> Result<Vec<JournalRecord>, JournalError> {
        self.inner.read(from, limit).await
    }
    async fn head(&self) -> Result<Option<Sequence>, JournalError> {
        self.inner.head().await
    }
    async fn write_snapshot(&self, sequence: Sequence, bytes: Vec<u8>) -> Result<(), JournalError> {
        self.inner.write_snapshot(sequence, bytes).await
    }
    async fn latest_snapshot(&self) -> Result<Option<StoredSnapshot>, JournalError> {
        self.inner.latest_snapshot().await
    }

    async fn wait_for_head(&self, after: Sequence) -> Result<Sequence, JournalError> {
        self.inner.wait_for_head(after).await
    }
}

fn a(l: &str) -> AuthorityId {
    AuthorityId::from_label(l)
}
fn s(n: u128) -> SessionId {
    SessionId::from_u128(n)
}
fn x() -> BundleId {
    BundleId::new("x").unwrap()
}
fn delegation(n: u128, from: &str, to: &str) -> DelegationRequest {
    DelegationRequest::new(s(n), a(from), a(to), x())
}

const T1: u64 = 1_700_000_000_000;
const T2: u64 = T1 + 60_000;

async fn rig(memory: MemoryJournal) -> (ReconfigurationManager, Arc<Gated>, SimulatedClock) {
    let journal = Gated::new(memory);
    let clock = SimulatedClock::new(T1);
    let m = ManagerBuilder::new()
        .journal_arc(journal.clone())
        .clock(clock.clone())
        .without_manifests()
        .open()
        .await
        .unwrap();
    m.register_bundle(ComposedBundle::new(x())).await.unwrap();
    for n in 1..=3 {
        m.open_session(s(n), a("a"), Some(x())).await.unwrap();
    }
    journal.closed.store(true, Ordering::SeqCst);
    (m, journal, clock)
}

async fn replayed(j: &dyn JournalEffects) -> State {
    let records = j.read(1, 10_000).await.unwrap();
    State::replay(records.iter().map(|r| (r.sequence, &r.fact)))
}

/// Lets the actor take and check what was just sent while the commit waits at the gate.
async fn settle_in() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_batch_behind_a_commit_is_checked_against_what_that_commit_will_leave() {
    let (m, journal, clock) = rig(MemoryJournal::new()).await;
    let first = tokio::spawn({
        let m = m.clone();
        async move { m.delegate_session(delegation(1, "a", "b")).await }
    });
    journal.wait_for(1).await;
    // Valid only once the first delegation lands: `b` holds session 1 only then.
    let second = tokio::spawn({
        let m = m.clone();
        async move { m.delegate_session(delegation(1, "b", "c")).await }
    });
    // Invalid once it lands: `a` no longer holds session 1.
    let third = tokio::spawn({
        let m = m.clone();
        async move { m.delegate_session(delegation(1, "a", "d")).await }
    });
    settle_in().await;
    assert_eq!(m.session(&s(1)).unwrap().holder, a("a"), "nothing is applied before it is durable");
    // Whatever is checked from now on is stamped T2: the second delegation must carry T1,
    // the time it was checked at, while the first was still in flight.
    clock.set(T2);
    journal.permits.add_permits(2);
    let first = first.await.unwrap().unwrap();
    let second = second.await.unwrap().unwrap();
    let third = third.await.unwrap().unwrap_err();
    assert!(matches!(third, ManagerError::Rejected(CommandError::NotActiveHolder { .. })), "{third:?}");
    assert_eq!(second.receipt.sequence, first.receipt.sequence + 1);
    assert_eq!(journal.started.load(Ordering::SeqCst), 2);
    assert_eq!(second.receipt.at_ms, T1, "the second was checked while the first was in flight");
    assert_eq!(m.session(&s(1)).unwrap().holder, a("c"));
    assert_eq!(m.state_snapshot(), replayed(journal.as_ref()).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_commit_refuses_its_batch_and_rechecks_the_one_behind_it() {
    let (m, journal, _) = rig(MemoryJournal::new()).await;
    journal.inner.fail_nth_commit(1);
    let failing = tokio::spawn({
        let m = m.clone();
        async move { m.delegate_session(delegation(1, "a", "b")).await }
    });
    journal.wait_for(1).await;
    // Checked against the failing batch's effects: must be checked again, and refused, since
    // `b` never got session 1.
    let dependent = tokio::spawn({
        let m = m.clone();
        async move { m.delegate_session(delegation(1, "b", "c")).await }
    });
    // Independent of it: must not be lost or failed with it.
    let independent = tokio::spawn({
        let m = m.clone();
        async move { m.delegate_session(delegation(2, "a", "e")).await }
    });
    settle_in().await;
    journal.permits.add_permits(2);
    let failing = failing.await.unwrap().unwrap_err();
    assert!(matches!(failing, ManagerError::Persist { .. }), "{failing:?}");
    let dependent = dependent.await.unwrap().unwrap_err();
    assert!(
        matches!(dependent, ManagerError::Rejected(CommandError::NotActiveHolder { .. })),
        "{dependent:?}"
    );
    let independent = independent.await.unwrap().unwrap();
    assert_eq!(m.session(&s(1)).unwrap().holder, a("a"));
    assert_eq!(m.session(&s(2)).unwrap().holder, a("e"));
    let journal_state = replayed(journal.as_ref()).await;
    assert_eq!(journal_state.session(&s(2)).unwrap().generation, independent.receipt.generation);
    assert_eq!(
        m.state_snapshot(),
        journal_state,
        "every acknowledged change is in the journal, nothing else"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflicting_commit_rechecks_both_batches_after_catching_up() {
    let memory = MemoryJournal::new();
    let (m, journal, _) = rig(memory.clone()).await;
    let gated = tokio::spawn({
        let m = m.clone();
        async move { m.delegate_session(delegation(1, "a", "b")).await }
    });
    journal.wait_for(1).await;
    let behind = tokio::spawn({
        let m = m.clone();
        async move { m.delegate_session(delegation(1, "b", "c")).await }
    });
    settle_in().await;
    // Another writer on the same journal moves the head while the first commit waits.
    let other = ManagerBuilder::new().journal(memory.clone()).without_manifests().open().await.unwrap();
    other.delegate_session(delegation(3, "a", "z")).await.unwrap();
    other.shutdown().await.unwrap();
    journal.permits.add_permits(3);
    let gated = gated.await.unwrap().unwrap();
    let behind = behind.await.unwrap().unwrap();
    assert_eq!(behind.receipt.sequence, gated.receipt.sequence + 1);
    assert_eq!(m.stats().actor.conflicts, 1);
    assert_eq!(m.session(&s(1)).unwrap().holder, a("c"));
    assert_eq!(m.session(&s(3)).unwrap().holder, a("z"), "the other writer's change was caught up");
    assert_eq!(m.state_snapshot(), replayed(journal.as_ref()).await);
}

/// A writer that keeps losing the race retries the first few times at once, then pauses
/// a random while under a cap that doubles (1, 2, 4, 8, 16 ms, then 20 ms), so colliding
/// writers spread out; every retry catches up and re-checks, and the command lands once
/// the conflicts stop. Timed on tokio's paused clock: the pauses are all the time there is.
#[tokio::test(start_paused = true)]
async fn repeated_conflicts_back_off_under_a_doubling_cap() {
    let (m, journal, _clock) = rig(MemoryJournal::new()).await;
    journal.closed.store(false, Ordering::SeqCst);
    let before = m.stats().actor.conflicts;
    journal.conflicts.store(12, Ordering::SeqCst);
    let t = tokio::time::Instant::now();
    let out = m.delegate_session(delegation(1, "a", "b")).await.unwrap();
    let paused = t.elapsed();
    assert_eq!(m.stats().actor.conflicts - before, 12);
    assert_eq!(out.receipt.to, a("b"));
    assert_eq!(m.session(&s(1)).unwrap().holder, a("b"));
    // Retries 4 to 12 pause, under caps 1 + 2 + 4 + 8 + 16 + 4 x 20 = 111 ms; without
    // the doubling they would all be nearly nothing (odds of the real pauses summing to
    // under 5 ms are below one in ten thousand).
    assert!(paused >= Duration::from_millis(5), "{paused:?}");
    assert!(paused <= Duration::from_millis(111), "{paused:?}");
    // The cap starts small: six collisions pause under caps 1 + 2 + 4 = 7 ms (under a flat
    // 20 ms cap their sum would stay below that less than once in a hundred runs).
    journal.conflicts.store(6, Ordering::SeqCst);
    let t = tokio::time::Instant::now();
    m.delegate_session(delegation(1, "b", "c")).await.unwrap();
    let paused = t.elapsed();
    assert!(paused <= Duration::from_millis(7), "{paused:?}");
    // And ends at 20 ms: after 28 collisions the pauses' caps sum to 31 + 20 x 20 = 431 ms;
    // the real pauses average 215 ms and fall under 50 ms about once in ten million runs.
    journal.conflicts.store(28, Ordering::SeqCst);
    let t = tokio::time::Instant::now();
    m.delegate_session(delegation(1, "c", "b")).await.unwrap();
    let paused = t.elapsed();
    assert!(paused >= Duration::from_millis(50), "{paused:?}");
    assert!(paused <= Duration::from_millis(431), "{paused:?}");
    m.delegate_session(delegation(1, "b", "c")).await.unwrap();
    // Exactly: the first paused retry waits at most 1 ms, every time (a cap of 2 ms would
    // stay under 1 ms twenty times in a row once in a million runs).
    let holders = ["c", "d"];
    for i in 0..20 {
        journal.conflicts.store(4, Ordering::SeqCst);
        let t = tokio::time::Instant::now();
        m.delegate_session(delegation(1, holders[i % 2], holders[(i + 1) % 2])).await.unwrap();
        let paused = t.elapsed();
        assert!(paused <= Duration::from_millis(1), "retry {i}: {paused:?}");
    }
}

/// Commands checked while the second of two pipelined batches is in flight see what that
/// batch will change, as the second batch saw the first's: once the first lands, what the
/// second will leave is still the state the next commands are checked against.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_checked_behind_the_second_batch_see_its_effects_too() {
    let (m, journal, _clock) = rig(MemoryJournal::new()).await;
    let spawn = |request: DelegationRequest| {
        let m = m.clone();
        tokio::spawn(async move { m.delegate_session(request).await })
    };
    let first = spawn(delegation(1, "a", "b"));
    journal.wait_for(1).await;
    let second = spawn(delegation(1, "b", "c"));
    settle_in().await;
    // The first lands; the second goes in flight and waits at the gate.
    journal.permits.add_permits(1);
    first.await.unwrap().unwrap();
    journal.wait_for(2).await;
    assert_eq!(m.session(&s(1)).unwrap().holder, a("b"));
    // `b` holds the session now, but not once the second lands.
    let third = spawn(delegation(1, "b", "d"));
    settle_in().await;
    journal.permits.add_permits(2);
    second.await.unwrap().unwrap();
    let third = third.await.unwrap().unwrap_err();
    assert!(matches!(third, ManagerError::Rejected(CommandError::NotActiveHolder { .. })), "{third:?}");
    assert_eq!(m.session(&s(1)).unwrap().holder, a("c"));
    assert_eq!(m.state_snapshot(), replayed(journal.as_ref()).await);
}
