//! Corrupting and tampering with stored records: every case yields its typed error at the
//! right sequence, through `verify()` and through `read()`, and never a panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;

use common::*;
use rand::{Rng, SeedableRng};
use reconf_effects::{Corruption, ExpectedHead, JournalEffects, JournalError};
use reconf_store_rocksdb::layout::{META_CF, META_FORMAT_KEY, META_HEAD_KEY, RECORD_HEADER_LEN};
use reconf_store_rocksdb::{RocksJournal, RocksJournalOptions};

const RECORDS: u64 = 10;

/// A closed journal holding facts 1..=10, written in three commits.
async fn journal_of_ten() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let journal = open(dir.path());
    journal.commit((1..=3).map(fact).collect(), ExpectedHead::Empty).await.unwrap();
    journal.commit((4..=7).map(fact).collect(), ExpectedHead::At(3)).await.unwrap();
    journal.commit((8..=10).map(fact).collect(), ExpectedHead::At(7)).await.unwrap();
    journal.close().await.unwrap();
    dir
}

fn tamper(path: &Path, f: impl FnOnce(&rocksdb::DB)) {
    let db = raw(path);
    f(&db);
}

fn corrupt(sequence: u64, corruption: Corruption) -> JournalError {
    JournalError::Corrupt { sequence, corruption }
}

/// Asserts that `verify` and every read that covers `at` report `expected`, and that reads
/// entirely before the damage still succeed.
async fn assert_detected(path: &Path, at: u64, expected: JournalError) {
    let journal = open(path);
    assert_eq!(journal.verify().await.unwrap_err(), expected, "verify");
    assert_eq!(journal.read(1, 100).await.unwrap_err(), expected, "read from 1");
    assert_eq!(journal.read(at, 1).await.unwrap_err(), expected, "read of the record itself");
    if at > 1 {
        let before = journal.read(1, usize::try_from(at - 1).unwrap()).await.unwrap();
        assert_eq!(before.len() as u64, at - 1, "records before the damage stay readable");
    }
    journal.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_intact_journal_verifies() {
    let dir = journal_of_ten().await;
    let journal = open(dir.path());
    let report = journal.verify().await.unwrap();
    assert_eq!((report.head, report.records), (Some(RECORDS), RECORDS));
    let records = journal.read(1, 100).await.unwrap();
    assert_eq!(records.iter().map(|r| fact_id(&r.fact)).collect::<Vec<_>>(), (1..=10).collect::<Vec<_>>());
    assert_eq!(journal.read(4, 3).await.unwrap().iter().map(|r| r.sequence).collect::<Vec<_>>(), [4, 5, 6]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_byte_is_a_checksum_mismatch_at_its_sequence() {
    let dir = journal_of_ten().await;
    tamper(dir.path(), |db| {
        let mut frame = get_record(db, 5);
        frame[RECORD_HEADER_LEN + 2] ^= 0x01;
        put_record(db, 5, &frame);
    });
    assert_detected(dir.path(), 5, corrupt(5, Corruption::ChecksumMismatch)).await;
    // A read starting right after the damaged record vouches for its first record with the
    // damaged predecessor's hash, so it must refuse as well.
    let journal = open(dir.path());
    assert_eq!(journal.read(6, 2).await.unwrap_err(), corrupt(5, Corruption::ChecksumMismatch));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_record_is_a_gap_at_its_sequence() {
    let dir = journal_of_ten().await;
    tamper(dir.path(), |db| delete_record(db, 5));
    assert_detected(dir.path(), 5, corrupt(5, Corruption::Gap { found: 6 })).await;
    let journal = open(dir.path());
    assert_eq!(journal.read(6, 2).await.unwrap_err(), corrupt(5, Corruption::Gap { found: 6 }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rewritten_fact_with_a_valid_checksum_breaks_the_chain() {
    let dir = journal_of_ten().await;
    tamper(dir.path(), |db| {
        let original = get_record(db, 5);
        // Same sequence, same stored hash, a different fact, and a checksum that matches.
        let forged = frame(V, 5, stored_hash(&original), &payload(&fact(999)));
        put_record(db, 5, &forged);
    });
    assert_detected(dir.path(), 5, corrupt(5, Corruption::BrokenChain)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rewritten_and_rehashed_record_breaks_the_chain_at_its_successor() {
    let dir = journal_of_ten().await;
    tamper(dir.path(), |db| {
        // The forger recomputes record 5's own hash too; record 6 still names the old one.
        let prev = stored_hash(&get_record(db, 4));
        let p = payload(&fact(999));
        put_record(db, 5, &frame(V, 5, chain(&prev, 5, &p), &p));
    });
    let journal = open(dir.path());
    assert_eq!(journal.verify().await.unwrap_err(), corrupt(6, Corruption::BrokenChain));
    assert_eq!(journal.read(1, 100).await.unwrap_err(), corrupt(6, Corruption::BrokenChain));
    assert_eq!(journal.read(5, 2).await.unwrap_err(), corrupt(6, Corruption::BrokenChain));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rehashed_head_record_disagrees_with_the_metadata_and_is_refused_at_open() {
    let dir = journal_of_ten().await;
    tamper(dir.path(), |db| {
        let prev = stored_hash(&get_record(db, RECORDS - 1));
        let p = payload(&fact(999));
        put_record(db, RECORDS, &frame(V, RECORDS, chain(&prev, RECORDS, &p), &p));
    });
    let err = RocksJournal::open(dir.path(), RocksJournalOptions::default()).unwrap_err();
    assert!(
        matches!(err, JournalError::Corrupt { sequence: RECORDS, corruption: Corruption::Metadata { .. } }),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecodable_fact_with_valid_checksum_and_chain_is_reported() {
    let dir = journal_of_ten().await;
    tamper(dir.path(), |db| {
        let prev = stored_hash(&get_record(db, 4));
        let garbage = [0xff_u8; 7];
        let mut prev = chain(&prev, 5, &garbage);
        put_record(db, 5, &frame(V, 5, prev, &garbage));
        // Re-chain everything after it, head metadata included, so that only the
        // undecodable payload is wrong.
        for sequence in 6..=RECORDS {
            let p = get_record(db, sequence)[RECORD_HEADER_LEN..].to_vec();
            prev = chain(&prev, sequence, &p);
            put_record(db, sequence, &frame(V, sequence, prev, &p));
        }
        let mut head = RECORDS.to_be_bytes().to_vec();
        head.extend_from_slice(&prev);
        let crc = crc32c::crc32c(&head);
        head.extend_from_slice(&crc.to_be_bytes());
        db.put_cf(db.cf_handle(META_CF).unwrap(), META_HEAD_KEY, head).unwrap();
    });
    let journal = open(dir.path());
    let err = journal.verify().await.unwrap_err();
    assert!(
        matches!(err, JournalError::Corrupt { sequence: 5, corruption: Corruption::UndecodableFact { .. } }),
        "{err:?}"
    );
    assert_eq!(journal.read(3, 10).await.unwrap_err(), err);
    assert_eq!(journal.read(6, 10).await.unwrap().len(), 5, "later records chain and decode");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_record_format_version_is_reported() {
    let dir = journal_of_ten().await;
    tamper(dir.path(), |db| {
        let old = get_record(db, 5);
        let forged = frame(V + 7, 5, stored_hash(&old), &old[RECORD_HEADER_LEN..]);
        put_record(db, 5, &forged);
    });
    assert_detected(dir.path(), 5, corrupt(5, Corruption::UnknownFormatVersion { version: V + 7 })).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_moved_to_another_key_is_a_key_mismatch() {
    let dir = journal_of_ten().await;
    tamper(dir.path(), |db| {
        let four = get_record(db, 4);
        put_record(db, 5, &four);
    });
    let journal = open(dir.path());
    let expected = corrupt(4, Corruption::KeyMismatch { key: 5 });
    assert_eq!(journal.verify().await.unwrap_err(), expected);
    assert_eq!(journal.read(1, 100).await.unwrap_err(), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_frame_is_a_bad_frame() {
    let dir = journal_of_ten().await;
    tamper(dir.path(), |db| {
        let old = get_record(db, 5);
        put_record(db, 5, &old[..old.len() - 3]);
    });
    assert_detected(dir.path(), 5, corrupt(5, Corruption::BadFrame)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_head_metadata_is_refused_at_open() {
    let dir = journal_of_ten().await;
    tamper(dir.path(), |db| {
        let meta = db.cf_handle(META_CF).unwrap();
        let mut head = db.get_cf(meta, META_HEAD_KEY).unwrap().unwrap();
        head[7] ^= 0x02;
        db.put_cf(meta, META_HEAD_KEY, head).unwrap();
    });
    let err = RocksJournal::open(dir.path(), RocksJournalOptions::default()).unwrap_err();
    assert!(matches!(err, JournalError::Corrupt { corruption: Corruption::Metadata { .. }, .. }), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_tail_record_is_refused_at_open() {
    let dir = journal_of_ten().await;
    tamper(dir.path(), |db| delete_record(db, RECORDS));
    let err = RocksJournal::open(dir.path(), RocksJournalOptions::default()).unwrap_err();
    let reason = match err {
        JournalError::Corrupt { sequence: RECORDS, corruption: Corruption::Metadata { reason } } => reason,
        other => panic!("{other:?}"),
    };
    // The error says what is missing, not only that something disagrees.
    assert_eq!(reason, format!("head is {RECORDS} but the last record is {}", RECORDS - 1));
}

/// A journal whose format version is gone while its head remains (its records were
/// lost too) is refused for the missing format version, and the refused open writes
/// nothing: it must not stamp a format version onto damaged data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_without_records_or_format_version_is_refused_and_left_as_it_is() {
    let dir = journal_of_ten().await;
    tamper(dir.path(), |db| {
        db.delete_cf(db.cf_handle(META_CF).unwrap(), META_FORMAT_KEY).unwrap();
        for sequence in 1..=RECORDS {
            delete_record(db, sequence);
        }
    });
    let err = RocksJournal::open(dir.path(), RocksJournalOptions::default()).unwrap_err();
    let missing = "records exist but the format version is missing";
    assert_eq!(err, corrupt(0, Corruption::Metadata { reason: missing.into() }));
    let db = raw(dir.path());
    let format = db.get_cf(db.cf_handle(META_CF).unwrap(), META_FORMAT_KEY).unwrap();
    assert_eq!(format, None, "nothing was written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_on_open_refuses_a_damaged_middle() {
    let dir = journal_of_ten().await;
    tamper(dir.path(), |db| delete_record(db, 3));
    let err =
        RocksJournal::open(dir.path(), RocksJournalOptions::default().verify_on_open(true)).unwrap_err();
    assert_eq!(err, corrupt(3, Corruption::Gap { found: 4 }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_format_version_is_refused_at_open() {
    let dir = journal_of_ten().await;
    tamper(dir.path(), |db| {
        db.put_cf(db.cf_handle(META_CF).unwrap(), META_FORMAT_KEY, (V + 1).to_be_bytes()).unwrap();
    });
    let err = RocksJournal::open(dir.path(), RocksJournalOptions::default()).unwrap_err();
    assert_eq!(err, JournalError::UnsupportedFormat { found: V + 1, supported: V });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_format_with_column_families_we_do_not_know_is_refused_cleanly() {
    let dir = journal_of_ten().await;
    tamper(dir.path(), |_| {});
    {
        let mut db = raw(dir.path());
        db.create_cf("from_the_future", &rocksdb::Options::default()).unwrap();
        db.put_cf(db.cf_handle(META_CF).unwrap(), META_FORMAT_KEY, 9_u16.to_be_bytes()).unwrap();
    }
    let err = RocksJournal::open(dir.path(), RocksJournalOptions::default()).unwrap_err();
    assert_eq!(err, JournalError::UnsupportedFormat { found: 9, supported: V });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_damage_is_always_reported_never_accepted_or_panicking() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
    for round in 0..12 {
        let dir = journal_of_ten().await;
        let target = rng.random_range(1..RECORDS); // the head record is checked at open
        tamper(dir.path(), |db| {
            let mut frame = get_record(db, target);
            let flips = rng.random_range(1..=3);
            for _ in 0..flips {
                let at = rng.random_range(0..frame.len());
                frame[at] ^= rng.random_range(1..=255u8);
            }
            if rng.random_bool(0.2) {
                frame.truncate(rng.random_range(0..frame.len()));
            }
            put_record(db, target, &frame);
        });
        let journal = open(dir.path());
        let err = journal.verify().await.unwrap_err();
        match &err {
            JournalError::Corrupt { sequence, .. } => {
                assert_eq!(*sequence, target, "round {round}: {err:?}")
            }
            other => panic!("round {round}: {other:?}"),
        }
        assert!(journal.read(1, 100).await.is_err(), "round {round}: read accepted damage at {target}");
    }
}
