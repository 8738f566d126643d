//! The `reconf-effects` journal conformance suite, unchanged, on a real single-member etcd:
//! each fresh journal under its own key prefix, reopening = dropping the client and
//! connecting again.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use reconf_effects::testing::{self, FactoryError, JournalFactory};
use reconf_store_etcd::testing::EtcdCluster;
use reconf_store_etcd::{EtcdJournal, EtcdJournalOptions};

struct Factory {
    etcd: EtcdCluster,
    next: AtomicUsize,
}

#[async_trait]
impl JournalFactory for Factory {
    type Journal = EtcdJournal;

    async fn fresh(&self) -> Result<EtcdJournal, FactoryError> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let options = EtcdJournalOptions::new(self.etcd.endpoints()).prefix(format!("/conformance/{n}"));
        Ok(EtcdJournal::connect(options).await?)
    }

    async fn reopen(&self, journal: EtcdJournal) -> Result<Option<EtcdJournal>, FactoryError> {
        let options = journal.options().clone();
        drop(journal);
        Ok(Some(EtcdJournal::connect(options).await?))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_suite() {
    let factory = Factory { etcd: EtcdCluster::start(1), next: AtomicUsize::new(0) };
    testing::run_all(&factory).await;
}
