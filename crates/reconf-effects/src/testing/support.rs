//! Sample facts and journal calls that turn every unexpected outcome into a panic naming
//! the rule.

// Test code: a rule violation is reported by panicking, which is what a test harness expects.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use reconf_core::{
    AuthorityId, BundleId, CapabilityScope, Change, ComposedBundle, DelegationFact, Fact, SessionId,
};
use tokio::task::JoinHandle;

use super::JournalFactory;
use crate::journal::{
    Committed, ExpectedHead, JournalEffects, JournalError, JournalRecord, Sequence, StoredSnapshot,
};

/// A fact tagged with `tag`, recoverable with [`sample_tag`]. The fact kind cycles with the
/// tag, so backends round-trip every session-bearing kind.
pub fn sample_fact(tag: u128) -> Fact {
    let session = SessionId::from_u128(tag);
    let (a, b) = (AuthorityId::from_label("conformance.a"), AuthorityId::from_label("conformance.b"));
    let bundle = BundleId::new("conformance").expect("a non-empty literal is a valid bundle id");
    // Truncation is fine: the generation is only payload here.
    let generation = tag as u64;
    Fact::new(match tag % 3 {
        0 => Change::SessionOpened { session, authority: a, bundle: Some(bundle), generation },
        1 => Change::SessionDelegated(DelegationFact {
            session,
            from: a,
            to: b,
            context: a.default_context(),
            scope: CapabilityScope::for_bundle(&bundle),
            bundle,
            generation,
            at_ms: 1_700_000_000_000 + generation % 1_000,
        }),
        _ => Change::SessionClosed { session, authority: b },
    })
}

/// The tag of a fact made by [`sample_fact`].
pub fn sample_tag(fact: &Fact) -> Option<u128> {
    fact.session().map(|s| s.as_uuid().as_u128())
}

/// A bundle registration, the largest fact kind.
pub(super) fn bundle_fact(n: u128) -> Fact {
    let id = BundleId::new(format!("conformance-{n}")).expect("a non-empty id is valid");
    let bundle = ComposedBundle::new(id)
        .with_protocol("conformance.protocol")
        .with_export("conformance.out")
        .with_import("conformance.in")
        .with_session(SessionId::from_u128(n));
    Fact::new(Change::BundleRegistered { bundle })
}

/// Asserts the records are exactly `expected`, at sequences 1, 2, ...
pub(super) fn assert_log(records: &[JournalRecord], expected: &[Fact], rule: &str) {
    for (i, (record, fact)) in records.iter().zip(expected).enumerate() {
        let sequence = i as u64 + 1;
        assert_eq!(record.sequence, sequence, "{rule}: records must be numbered 1, 2, ... without gaps");
        assert!(
            record.fact == *fact,
            "{rule}: record {sequence} holds the wrong fact: expected {fact:?}, found {:?}",
            record.fact
        );
    }
    assert_eq!(records.len(), expected.len(), "{rule}: wrong number of records (lost or extra commits?)");
}

pub(super) async fn fresh<F: JournalFactory>(factory: &F, rule: &str) -> F::Journal {
    match factory.fresh().await {
        Ok(j) => j,
        Err(e) => panic!("{rule}: the factory could not make a fresh journal: {e}"),
    }
}

pub(super) async fn reopen<F: JournalFactory>(
    factory: &F,
    journal: F::Journal,
    rule: &str,
) -> Option<F::Journal> {
    match factory.reopen(journal).await {
        Ok(j) => j,
        Err(e) => panic!("{rule}: the factory could not reopen the journal: {e}"),
    }
}

pub(super) async fn reopen_again<F: JournalFactory>(
    factory: &F,
    journal: F::Journal,
    rule: &str,
) -> F::Journal {
    let Some(j) = reopen(factory, journal, rule).await else {
        panic!("{rule}: the factory reopened a journal once, then declined to");
    };
    j
}

pub(super) async fn commit<J>(j: &J, batch: Vec<Fact>, expected: ExpectedHead, rule: &str) -> Committed
where
    J: JournalEffects + ?Sized,
{
    let len = batch.len() as u64;
    match j.commit(batch, expected).await {
        Ok(c) => {
            assert!(
                c.first <= c.last && c.len() == len,
                "{rule}: a commit of {len} facts was assigned {c:?}"
            );
            c
        }
        Err(e) => panic!("{rule}: a commit of {len} facts expecting {expected} failed: {e}"),
    }
}

pub(super) async fn commit_err<J>(j: &J, batch: Vec<Fact>, expected: ExpectedHead, rule: &str) -> JournalError
where
    J: JournalEffects + ?Sized,
{
    let len = batch.len();
    match j.commit(batch, expected).await {
        Ok(c) => {
            panic!("{rule}: a commit of {len} facts expecting {expected} must fail but was assigned {c:?}")
        }
        Err(e) => e,
    }
}

pub(super) async fn head<J: JournalEffects + ?Sized>(j: &J, rule: &str) -> Option<Sequence> {
    match j.head().await {
        Ok(h) => h,
        Err(e) => panic!("{rule}: head() failed: {e}"),
    }
}

pub(super) async fn read<J: JournalEffects + ?Sized>(
    j: &J,
    from: Sequence,
    limit: usize,
    rule: &str,
) -> Vec<JournalRecord> {
    match j.read(from, limit).await {
        Ok(records) => {
            assert!(
                records.len() <= limit,
                "{rule}: read({from}, {limit}) returned {} records",
                records.len()
            );
            records
        }
        Err(e) => panic!("{rule}: read({from}, {limit}) failed: {e}"),
    }
}

/// The whole log, read in pages, checked to be numbered 1, 2, ... without gaps.
pub(super) async fn read_all<J: JournalEffects + ?Sized>(j: &J, rule: &str) -> Vec<JournalRecord> {
    const PAGE: usize = 128;
    let mut all: Vec<JournalRecord> = Vec::new();
    loop {
        let from = all.len() as u64 + 1;
        let page = read(j, from, PAGE, rule).await;
        if page.is_empty() {
            return all;
        }
        for r in page {
            let want = all.len() as u64 + 1;
            assert_eq!(
                r.sequence, want,
                "{rule}: records must be numbered 1, 2, ... without gaps (read from {from})"
            );
            all.push(r);
        }
    }
}

pub(super) async fn write_snapshot<J: JournalEffects + ?Sized>(
    j: &J,
    sequence: Sequence,
    bytes: Vec<u8>,
    rule: &str,
) {
    if let Err(e) = j.write_snapshot(sequence, bytes).await {
        panic!("{rule}: write_snapshot({sequence}) failed: {e}");
    }
}

pub(super) async fn write_snapshot_err<J>(
    j: &J,
    sequence: Sequence,
    bytes: Vec<u8>,
    rule: &str,
) -> JournalError
where
    J: JournalEffects + ?Sized,
{
    match j.write_snapshot(sequence, bytes).await {
        Ok(()) => panic!("{rule}: write_snapshot({sequence}) must fail"),
        Err(e) => e,
    }
}

pub(super) async fn latest_snapshot<J: JournalEffects + ?Sized>(j: &J, rule: &str) -> Option<StoredSnapshot> {
    match j.latest_snapshot().await {
        Ok(s) => s,
        Err(e) => panic!("{rule}: latest_snapshot() failed: {e}"),
    }
}

/// Awaits a task, re-raising its panic so the rule's own message reaches the harness.
pub(super) async fn join<T>(task: JoinHandle<T>, rule: &str) -> T {
    match task.await {
        Ok(v) => v,
        Err(e) => match e.try_into_panic() {
            Ok(payload) => std::panic::resume_unwind(payload),
            Err(e) => panic!("{rule}: a task did not finish: {e}"),
        },
    }
}
