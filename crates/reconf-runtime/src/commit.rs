//! The one journal commit every change goes through: commands, live handoffs, upgrade
//! phases and recovery's own facts.
//!
//! A commit expects the head the writer's state has applied, so another writer that got
//! there first is a [`Failure::Conflict`] (catch up, re-check, retry), never a blind write.
//! A commit whose outcome the journal cannot tell ([`JournalError::Ambiguous`]) is resolved
//! by reading back: if the records after the expected head are exactly these facts, the
//! commit landed and is reported as committed. A caller is never told "failed" for a change
//! the journal shows it wrote.

use reconf_core::{Fact, SessionId};
use reconf_effects::{
    ExpectedHead, JournalEffects, JournalError, OwnerEntry, OwnerRegistryEffects, OwnerTxn, OwnerTxnError,
    OwnerWrite,
};

use crate::telemetry::{self, Stopwatch};

/// Why a commit did not land.
pub(crate) enum Failure {
    /// Another writer moved the head past `head` (to `actual`).
    Conflict { actual: Option<u64> },
    /// The journal failed the write (or could not tell, and reading back did not show it).
    Failed(JournalError),
    /// A live-owner record was not what the write expected: the records found.
    Fenced(Vec<(SessionId, Option<OwnerEntry>)>),
}

impl Failure {
    /// The journal error a caller is answered with, for a commit made after `head`.
    pub(crate) fn into_error(self, head: u64) -> JournalError {
        match self {
            Failure::Failed(e) => e,
            Failure::Conflict { actual } => {
                JournalError::Conflict { expected: ExpectedHead::after(head), actual }
            }
            Failure::Fenced(_) => JournalError::Storage {
                reason: "live-owner records kept changing under this node".to_owned(),
            },
        }
    }
}

/// Where a commit landed.
pub(crate) struct Landed {
    /// The first sequence written.
    pub(crate) first: u64,
    /// The store revision of the write (0 when the backend has none to tell, or the write
    /// was resolved by reading back).
    pub(crate) revision: i64,
}

/// Commits `facts` after journal sequence `head`; returns the first sequence written.
pub(crate) async fn commit(
    journal: &dyn JournalEffects,
    head: u64,
    facts: &[Fact],
) -> Result<Landed, Failure> {
    let watch = Stopwatch::start();
    let outcome = journal.commit(facts.to_vec(), ExpectedHead::after(head)).await;
    let first = match outcome {
        Ok(committed) => committed.first,
        Err(JournalError::Conflict { actual, .. }) => return Err(Failure::Conflict { actual }),
        Err(e) if e.outcome_unknown() => match landed(journal, head, facts).await {
            Some(first) => {
                tracing::info!(name: crate::events::COMMIT_RESOLVED, first, facts = facts.len(), "an ambiguous commit landed");
                first
            }
            None => return Err(Failure::Failed(e)),
        },
        Err(e) => return Err(Failure::Failed(e)),
    };
    telemetry::committed(facts.len(), watch);
    Ok(Landed { first, revision: 0 })
}

/// Commits `facts` after `head` together with `owners`, in one write of the shared
/// registry: the facts and the live-owner changes land together or not at all.
pub(crate) async fn commit_shared(
    registry: &dyn OwnerRegistryEffects,
    journal: &dyn JournalEffects,
    head: u64,
    facts: &[Fact],
    owners: Vec<OwnerWrite>,
) -> Result<Landed, Failure> {
    if owners.is_empty() {
        return commit(journal, head, facts).await;
    }
    let watch = Stopwatch::start();
    let txn = OwnerTxn { head: Some(ExpectedHead::after(head)), facts: facts.to_vec(), owners };
    let landed = match registry.write(txn).await {
        Ok(done) => Landed { first: done.committed.map_or(head + 1, |c| c.first), revision: done.revision },
        Err(OwnerTxnError::Journal(JournalError::Conflict { actual, .. })) => {
            return Err(Failure::Conflict { actual })
        }
        Err(OwnerTxnError::Journal(e)) if e.outcome_unknown() => match landed(journal, head, facts).await {
            Some(first) => {
                tracing::info!(name: crate::events::COMMIT_RESOLVED, first, facts = facts.len(), "an ambiguous commit landed");
                Landed { first, revision: 0 }
            }
            None => return Err(Failure::Failed(e)),
        },
        Err(OwnerTxnError::Journal(e)) => return Err(Failure::Failed(e)),
        Err(OwnerTxnError::Fenced { found }) => return Err(Failure::Fenced(found)),
        // The lease lapsed after the batch was checked: nothing was written; checked again,
        // its handoffs are refused (`LeaseLost`) and the rest commits without them.
        Err(OwnerTxnError::LeaseLost) => return Err(Failure::Fenced(Vec::new())),
        Err(e) => return Err(Failure::Failed(JournalError::Storage { reason: e.to_string() })),
    };
    telemetry::committed(facts.len(), watch);
    Ok(landed)
}

/// Whether the records right after `head` are exactly `facts`.
async fn landed(journal: &dyn JournalEffects, head: u64, facts: &[Fact]) -> Option<u64> {
    let first = head + 1;
    let records = journal.read(first, facts.len()).await.ok()?;
    let same = records.len() == facts.len()
        && records.iter().zip(facts).zip(first..).all(|((r, f), seq)| r.sequence == seq && &r.fact == f);
    same.then_some(first)
}
