//! The conformance suite on the in-memory journal and on the fault injector with nothing
//! armed (which must be invisible).

use std::sync::Arc;

use async_trait::async_trait;
use reconf_effects::testing::{self, FactoryError, JournalFactory};
use reconf_effects::{FaultyJournal, JournalEffects, MemoryJournal};

/// Stands in for a persistent backend: reopening keeps an independent copy of exactly what
/// was acknowledged, so the reopen rules run against the memory journal too.
struct ForkOnReopen;

#[async_trait]
impl JournalFactory for ForkOnReopen {
    type Journal = MemoryJournal;

    async fn fresh(&self) -> Result<MemoryJournal, FactoryError> {
        Ok(MemoryJournal::new())
    }

    async fn reopen(&self, journal: MemoryJournal) -> Result<Option<MemoryJournal>, FactoryError> {
        Ok(Some(journal.fork()))
    }
}

macro_rules! each_rule {
    ($($rule:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn $rule() {
            testing::$rule(&ForkOnReopen).await;
        }
    )*};
}

each_rule!(
    fresh_journal_is_empty,
    sequences_start_at_one,
    commits_are_read_back_in_order,
    sequences_have_no_gaps,
    batches_are_atomic,
    empty_batch_is_rejected,
    expected_head_conflicts,
    read_pages,
    snapshots,
    reopen_preserves_acknowledged_state,
    concurrent_commits_land_exactly_once,
    concurrent_expected_head_commits_serialize,
    readers_never_see_partial_batches,
    wait_for_head_wakes_on_commits,
    tail_delivers_every_record_once_in_order,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn run_all_with_a_plain_constructor() {
    testing::run_all(&MemoryJournal::new).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shared_and_dyn_handles_pass() {
    testing::run_all(&|| Arc::new(MemoryJournal::new())).await;
    testing::run_all(&|| -> Arc<dyn JournalEffects> { Arc::new(MemoryJournal::new()) }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unarmed_fault_injector_passes() {
    testing::run_all(&|| FaultyJournal::new(MemoryJournal::new())).await;
}

#[tokio::test(flavor = "current_thread")]
#[should_panic(expected = "multi-thread runtime")]
async fn suite_refuses_a_current_thread_runtime() {
    testing::concurrent_commits_land_exactly_once(&MemoryJournal::new).await;
}

#[test]
fn sample_tags_round_trip() {
    for tag in [0u128, 1, 2, 3, u128::from(u64::MAX) << 48] {
        assert_eq!(testing::sample_tag(&testing::sample_fact(tag)), Some(tag));
    }
}
