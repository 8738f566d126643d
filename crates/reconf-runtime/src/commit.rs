//! The one journal commit every change goes through: commands, live handoffs, upgrade
//! phases and recovery's own facts.
//!
//! A commit expects the head the writer's state has applied, so another writer that got
//! there first is a [`Failure::Conflict`] (catch up, re-check, retry), never a blind write.
//! A commit whose outcome the journal cannot tell ([`JournalError::Ambiguous`]) is resolved
//! by reading back: if the records after the expected head are exactly these facts, the
//! commit landed and is reported as committed. A caller is never told "failed" for a change
//! the journal shows it wrote.

use reconf_core::Fact;
use reconf_effects::{ExpectedHead, JournalEffects, JournalError};

use crate::telemetry::{self, Stopwatch};

/// Why a commit did not land.
pub(crate) enum Failure {
    /// Another writer moved the head past `head` (to `actual`).
    Conflict { actual: Option<u64> },
    /// The journal failed the write (or could not tell, and reading back did not show it).
    Failed(JournalError),
}

/// Commits `facts` after journal sequence `head`; returns the first sequence written.
pub(crate) async fn commit(journal: &dyn JournalEffects, head: u64, facts: &[Fact]) -> Result<u64, Failure> {
    let watch = Stopwatch::start();
    let outcome = journal.commit(facts.to_vec(), ExpectedHead::after(head)).await;
    let first = match outcome {
        Ok(committed) => committed.first,
        Err(JournalError::Conflict { actual, .. }) => return Err(Failure::Conflict { actual }),
        Err(e @ JournalError::Ambiguous { .. }) => match landed(journal, head, facts).await {
            Some(first) => {
                tracing::info!(name: crate::events::COMMIT_RESOLVED, first, facts = facts.len(), "an ambiguous commit landed");
                first
            }
            None => return Err(Failure::Failed(e)),
        },
        Err(e) => return Err(Failure::Failed(e)),
    };
    telemetry::committed(facts.len(), watch);
    Ok(first)
}

/// Whether the records right after `head` are exactly `facts`.
async fn landed(journal: &dyn JournalEffects, head: u64, facts: &[Fact]) -> Option<u64> {
    let first = head + 1;
    let records = journal.read(first, facts.len()).await.ok()?;
    let same = records.len() == facts.len()
        && records.iter().zip(facts).zip(first..).all(|((r, f), seq)| r.sequence == seq && &r.fact == f);
    same.then_some(first)
}
