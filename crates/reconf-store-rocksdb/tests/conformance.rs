//! The `reconf-effects` journal conformance suite, unchanged, on fresh temporary
//! directories, with reopening (close, then open the same path) enabled.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use reconf_effects::testing::{self, FactoryError, JournalFactory};
use reconf_store_rocksdb::{RocksJournal, RocksJournalOptions};

/// Each fresh journal gets its own subdirectory of one temporary directory.
struct Factory {
    root: tempfile::TempDir,
    next: AtomicUsize,
    options: RocksJournalOptions,
}

impl Factory {
    fn new(options: RocksJournalOptions) -> Self {
        Self { root: tempfile::tempdir().unwrap(), next: AtomicUsize::new(0), options }
    }
}

#[async_trait]
impl JournalFactory for Factory {
    type Journal = RocksJournal;

    async fn fresh(&self) -> Result<RocksJournal, FactoryError> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let path = self.root.path().join(format!("journal-{n}"));
        let options = self.options.clone();
        Ok(tokio::task::spawn_blocking(move || RocksJournal::open(path, options)).await??)
    }

    async fn reopen(&self, journal: RocksJournal) -> Result<Option<RocksJournal>, FactoryError> {
        let path = journal.path().to_path_buf();
        journal.close().await?;
        let options = self.options.clone().create_if_missing(false).verify_on_open(true);
        Ok(Some(tokio::task::spawn_blocking(move || RocksJournal::open(path, options)).await??))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_suite() {
    testing::run_all(&Factory::new(RocksJournalOptions::default())).await;
}

/// The same suite with groups of at most one request, so every commit is its own batch
/// and sync: group commit must be an optimisation only.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_suite_without_grouping() {
    let options = RocksJournalOptions::default().max_group(std::num::NonZeroUsize::MIN);
    testing::run_all(&Factory::new(options)).await;
}
