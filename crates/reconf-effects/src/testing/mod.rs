//! The journal conformance suite: every [`JournalEffects`] backend runs it.
//!
//! Modelled on openraft's `Suite::test_all`: one public function per rule of the journal
//! contract, each starting from fresh journals made by a [`JournalFactory`], and
//! [`run_all`] to run every rule. A violation panics with a message that starts with the
//! rule's name, as test code should.
//!
//! The suite needs a multi-thread tokio runtime, so concurrent commits really race:
//!
//! ```
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 4)]
//! # async fn main() {
//! use reconf_effects::{testing, MemoryJournal};
//! testing::run_all(&MemoryJournal::new).await;
//! # }
//! ```
//!
//! A persistent backend implements [`JournalFactory::reopen`] so the suite can also check
//! that acknowledged state survives closing and opening the journal again.

mod concurrency;
mod rules;
mod support;
mod tailing;

use std::error::Error;

use async_trait::async_trait;

pub use concurrency::{
    concurrent_commits_land_exactly_once, concurrent_expected_head_commits_serialize,
    readers_never_see_partial_batches,
};
pub use rules::{
    batches_are_atomic, commits_are_read_back_in_order, empty_batch_is_rejected, expected_head_conflicts,
    fresh_journal_is_empty, read_pages, reopen_preserves_acknowledged_state, sequences_have_no_gaps,
    sequences_start_at_one, snapshots,
};
pub use support::{sample_fact, sample_tag};
pub use tailing::{tail_delivers_every_record_once_in_order, wait_for_head_wakes_on_commits};

use crate::journal::JournalEffects;

/// What a factory may fail with (opening a directory, say).
pub type FactoryError = Box<dyn Error + Send + Sync>;

/// Makes the journals the suite tests.
///
/// Any `Fn() -> J` closure or function is a factory of non-persistent journals, so an
/// in-memory backend runs the suite with `run_all(&MyJournal::new)`. A persistent backend
/// writes a factory that also reopens; here a memory journal stands in, "persisting" by
/// keeping an independent copy:
///
/// ```
/// use async_trait::async_trait;
/// use reconf_effects::testing::{self, FactoryError, JournalFactory};
/// use reconf_effects::MemoryJournal;
///
/// struct Reopening;
///
/// #[async_trait]
/// impl JournalFactory for Reopening {
///     type Journal = MemoryJournal;
///
///     async fn fresh(&self) -> Result<MemoryJournal, FactoryError> {
///         Ok(MemoryJournal::new()) // a backend would open a new temporary directory here
///     }
///
///     async fn reopen(&self, journal: MemoryJournal) -> Result<Option<MemoryJournal>, FactoryError> {
///         Ok(Some(journal.fork())) // a backend would drop `journal`, then open its directory again
///     }
/// }
///
/// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
/// # async fn main() {
/// testing::reopen_preserves_acknowledged_state(&Reopening).await;
/// # }
/// ```
#[async_trait]
pub trait JournalFactory: Send + Sync {
    /// The backend under test.
    type Journal: JournalEffects + 'static;

    /// A new, empty journal, independent of every other one this factory made.
    async fn fresh(&self) -> Result<Self::Journal, FactoryError>;

    /// Closes `journal` and opens the same store again, as a restarted process would.
    /// `Ok(None)` means the backend does not persist, and the suite skips reopen checks;
    /// that is the default.
    async fn reopen(&self, journal: Self::Journal) -> Result<Option<Self::Journal>, FactoryError> {
        drop(journal);
        Ok(None)
    }
}

#[async_trait]
impl<F, J> JournalFactory for F
where
    F: Fn() -> J + Send + Sync,
    J: JournalEffects + 'static,
{
    type Journal = J;

    async fn fresh(&self) -> Result<J, FactoryError> {
        Ok(self())
    }
}

/// Runs every rule, each on fresh journals.
pub async fn run_all<F: JournalFactory>(factory: &F) {
    fresh_journal_is_empty(factory).await;
    sequences_start_at_one(factory).await;
    commits_are_read_back_in_order(factory).await;
    sequences_have_no_gaps(factory).await;
    batches_are_atomic(factory).await;
    empty_batch_is_rejected(factory).await;
    expected_head_conflicts(factory).await;
    read_pages(factory).await;
    snapshots(factory).await;
    reopen_preserves_acknowledged_state(factory).await;
    concurrent_commits_land_exactly_once(factory).await;
    concurrent_expected_head_commits_serialize(factory).await;
    readers_never_see_partial_batches(factory).await;
    wait_for_head_wakes_on_commits(factory).await;
    tail_delivers_every_record_once_in_order(factory).await;
}
