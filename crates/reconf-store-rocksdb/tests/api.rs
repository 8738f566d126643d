//! Behaviour beyond the conformance suite: snapshot retention and integrity, options,
//! and reads outside a Tokio runtime.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::future::Future;
use std::num::NonZeroUsize;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use common::*;
use reconf_effects::{Corruption, ExpectedHead, JournalEffects, JournalError, StoredSnapshot};
use reconf_store_rocksdb::layout::SNAPSHOTS_CF;
use reconf_store_rocksdb::{RocksJournal, RocksJournalOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_newest_snapshots_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let options = RocksJournalOptions::default().snapshots_to_keep(NonZeroUsize::new(2).unwrap());
    let journal = RocksJournal::open(dir.path(), options.clone()).unwrap();
    journal.commit((1..=6).map(fact).collect(), ExpectedHead::Empty).await.unwrap();
    for sequence in [1, 2, 5, 3, 4] {
        journal.write_snapshot(sequence, vec![u8::try_from(sequence).unwrap(); 3]).await.unwrap();
    }
    assert_eq!(
        journal.latest_snapshot().await.unwrap(),
        Some(StoredSnapshot { sequence: 5, bytes: vec![5; 3] })
    );
    journal.close().await.unwrap();
    let kept = || {
        let db = raw(dir.path());
        let cf = db.cf_handle(SNAPSHOTS_CF).unwrap();
        db.iterator_cf(cf, rocksdb::IteratorMode::Start)
            .map(|item| u64::from_be_bytes(item.unwrap().0.as_ref().try_into().unwrap()))
            .collect::<Vec<u64>>()
    };
    assert_eq!(kept(), [4, 5]);

    // A reopened journal knows the snapshots it holds: the next one still leaves two.
    let journal = RocksJournal::open(dir.path(), options).unwrap();
    journal.write_snapshot(6, vec![6; 3]).await.unwrap();
    journal.close().await.unwrap();
    assert_eq!(kept(), [5, 6]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_snapshot_is_reported_not_returned() {
    let dir = tempfile::tempdir().unwrap();
    let journal = open(dir.path());
    journal.commit(vec![fact(1), fact(2)], ExpectedHead::Empty).await.unwrap();
    journal.write_snapshot(2, b"state at two".to_vec()).await.unwrap();
    journal.close().await.unwrap();
    {
        let db = raw(dir.path());
        let cf = db.cf_handle(SNAPSHOTS_CF).unwrap();
        let mut value = db.get_cf(cf, key(2)).unwrap().unwrap();
        let last = value.len() - 1;
        value[last] ^= 0x10;
        db.put_cf(cf, key(2), value).unwrap();
    }
    let journal = open(dir.path());
    let err = journal.latest_snapshot().await.unwrap_err();
    assert!(
        matches!(err, JournalError::Corrupt { sequence: 2, corruption: Corruption::Metadata { .. } }),
        "{err:?}"
    );
    // The records themselves are intact.
    assert_eq!(journal.verify().await.unwrap().records, 2);
}

#[test]
fn opening_a_missing_journal_without_create_is_a_storage_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = RocksJournal::open(
        dir.path().join("absent"),
        RocksJournalOptions::default().create_if_missing(false),
    )
    .unwrap_err();
    assert!(matches!(err, JournalError::Storage { .. }), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_journal_releases_the_database() {
    let dir = tempfile::tempdir().unwrap();
    for round in 0..3u64 {
        let journal = open(dir.path());
        let head = journal.head().await.unwrap();
        assert_eq!(head, round.checked_sub(1).map(|_| round));
        journal.commit(vec![fact(u128::from(round))], ExpectedHead::from_head(head)).await.unwrap();
        drop(journal); // no close(): Drop alone must let the next open take the lock
    }
}

/// A minimal executor with no Tokio runtime, to exercise the journal's fallback of running
/// blocking reads on a thread of their own.
fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::park();
    }
}

#[test]
fn works_without_a_tokio_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let journal = open(dir.path());
    block_on(async {
        journal.commit(vec![fact(1), fact(2)], ExpectedHead::Empty).await.unwrap();
        let records = journal.read(0, 10).await.unwrap();
        assert_eq!(records.iter().map(|r| r.sequence).collect::<Vec<_>>(), [1, 2]);
        journal.write_snapshot(2, b"s".to_vec()).await.unwrap();
        assert_eq!(journal.latest_snapshot().await.unwrap().unwrap().sequence, 2);
        assert_eq!(journal.verify().await.unwrap().head, Some(2));
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_held_open_is_in_use_not_a_storage_failure() {
    let dir = tempfile::tempdir().unwrap();
    let first = RocksJournal::open(dir.path(), RocksJournalOptions::default()).unwrap();
    let err = RocksJournal::open(dir.path(), RocksJournalOptions::default()).unwrap_err();
    assert_eq!(err, JournalError::InUse { path: dir.path().display().to_string() });
    assert_eq!(err.to_string(), format!("journal at {} is in use by another process", dir.path().display()));
    first.close().await.unwrap();
    RocksJournal::open(dir.path(), RocksJournalOptions::default()).unwrap();
}

/// "In use" is said only for the directory lock: any other I/O failure at open (here
/// RocksDB's `CURRENT` file is a directory) is a storage error naming the path.
#[test]
fn an_unreadable_journal_is_a_storage_failure_not_in_use() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("CURRENT")).unwrap();
    let err = RocksJournal::open(dir.path(), RocksJournalOptions::default()).unwrap_err();
    match &err {
        JournalError::Storage { reason } => {
            assert!(reason.contains(&dir.path().display().to_string()), "{reason}");
            assert!(reason.contains("CURRENT"), "{reason}");
        }
        other => panic!("expected a storage error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fact_of_a_newer_schema_is_named_with_both_versions() {
    let dir = tempfile::tempdir().unwrap();
    let journal = RocksJournal::open(dir.path(), RocksJournalOptions::default()).unwrap();
    let bundle = reconf_core::ComposedBundle::new(reconf_core::BundleId::new("x").unwrap());
    let newer = reconf_core::Fact {
        schema_version: reconf_core::FACT_SCHEMA_VERSION + 3,
        change: reconf_core::Change::BundleRegistered { bundle },
    };
    journal.commit(vec![newer], ExpectedHead::Empty).await.unwrap();
    assert_eq!(
        journal.read(1, 10).await.unwrap_err(),
        JournalError::NewerFact {
            sequence: 1,
            found: reconf_core::FACT_SCHEMA_VERSION + 3,
            supported: reconf_core::FACT_SCHEMA_VERSION
        }
    );
}

/// Found by a sampled `cargo mutants` run: each option setter sets its own field, and the
/// handle's `Debug` names the path.
#[test]
fn option_setters_set_their_field_and_debug_names_the_journal() {
    let n = |v| NonZeroUsize::new(v).unwrap();
    let o = RocksJournalOptions::default()
        .create_if_missing(false)
        .verify_on_open(true)
        .max_group(n(7))
        .queue_capacity(n(9))
        .snapshots_to_keep(n(3));
    assert!(!o.create_if_missing && o.verify_on_open);
    assert_eq!((o.max_group, o.queue_capacity, o.snapshots_to_keep), (n(7), n(9), n(3)));
    assert_ne!(o, RocksJournalOptions::default());

    let dir = tempfile::tempdir().unwrap();
    let journal = RocksJournal::open(dir.path(), RocksJournalOptions::default()).unwrap();
    let shown = format!("{journal:?}");
    assert!(shown.contains("RocksJournal") && shown.contains(&dir.path().display().to_string()), "{shown}");
}

/// The on-disk layout promises LZ4 for the records column family (the one that grows).
/// RocksDB writes the options each column family was opened with into the directory's
/// newest `OPTIONS-*` file; read them back. (The small families get RocksDB's default,
/// which is LZ4 as well while LZ4 is the only codec built in.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_are_stored_lz4_compressed() {
    let dir = tempfile::tempdir().unwrap();
    let journal = open(dir.path());
    journal.commit(vec![fact(1)], ExpectedHead::Empty).await.unwrap();
    journal.close().await.unwrap();
    let number = |p: &std::path::Path| {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        name.strip_prefix("OPTIONS-").and_then(|n| n.parse::<u64>().ok())
    };
    let newest = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| number(p).is_some())
        .max_by_key(|p| number(p))
        .expect("RocksDB writes an OPTIONS file");
    let text = std::fs::read_to_string(newest).unwrap();
    let section = text.split("[CFOptions \"records\"]").nth(1).expect("a records section");
    let section = section.split("\n[").next().unwrap();
    let compression = section.lines().map(str::trim).find_map(|l| l.strip_prefix("compression="));
    assert_eq!(compression, Some("kLZ4Compression"));
}

/// Every acknowledged commit was synced to disk before its answer: RocksDB's own count of
/// write-ahead-log syncs (its `rocksdb.dbstats` property) grows with every commit. A
/// commit answered before its sync would survive a process kill (the page cache keeps
/// it) but not a power cut, which no other test here can tell apart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_commit_is_synced_before_it_is_answered() {
    let dir = tempfile::tempdir().unwrap();
    let journal = open(dir.path());
    let syncs = |journal: &RocksJournal| {
        let stats = journal.property("rocksdb.dbstats").unwrap().expect("RocksDB keeps DB stats");
        let line = stats.lines().find(|l| l.starts_with("Cumulative WAL:")).expect("a WAL line");
        // "Cumulative WAL: 3 writes, 3 syncs, 1.00 writes per sync, written: ..."
        let count = line.split(',').nth(1).and_then(|p| p.trim().strip_suffix(" syncs")).unwrap();
        count.parse::<u64>().unwrap()
    };
    let before = syncs(&journal);
    let mut head = None;
    for n in 0..10u128 {
        // One at a time, so each commit is a group of its own.
        head = Some(journal.commit(vec![fact(n)], ExpectedHead::from_head(head)).await.unwrap().last);
        assert!(syncs(&journal) - before > n as u64, "commit {n} was answered before a sync");
    }
    assert_eq!(journal.property("no.such.property").unwrap(), None);
}
