//! Torn writes: a process that dies in the middle of a synced write leaves the write-ahead
//! log ending in a partial entry. The journal must then open at exactly the durable prefix
//! — every commit whose log entry is whole, none that is not, and never a half of one —
//! whatever byte the log was cut at.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};

use common::*;
use reconf_effects::{ExpectedHead, JournalEffects};

const COMMITS: u64 = 6;

/// The newest write-ahead log file of a RocksDB directory.
fn newest_wal(dir: &Path) -> PathBuf {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .expect("a write-ahead log")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            std::fs::copy(&path, to.join(path.file_name().unwrap())).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_cut_at_any_byte_of_its_last_entries_opens_at_the_durable_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let journal = open(dir.path());
    let mut head = 0;
    for c in 0..COMMITS {
        let facts: Vec<_> = (0..3).map(|i| fact(u128::from(c * 3 + i + 1))).collect();
        head = journal.commit(facts, ExpectedHead::after(head)).await.unwrap().last;
    }
    // A crash: nothing is closed or flushed; the commits live in the synced log alone.
    std::mem::forget(journal);
    let wal = newest_wal(dir.path());
    let full = std::fs::read(&wal).unwrap();
    // The last two commits' entries, with room to spare: every cut from here to the end.
    let from = full.len().saturating_sub(1_200);
    let scratch = tempfile::tempdir().unwrap();
    let mut last_head = 0;
    let mut heads = std::collections::BTreeMap::new();
    for cut in from..=full.len() {
        let copy = scratch.path().join(format!("cut-{cut}"));
        copy_dir(dir.path(), &copy);
        std::fs::write(copy.join(wal.file_name().unwrap()), &full[..cut]).unwrap();
        let j = open(&copy);
        let report = j.verify().await.unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
        let h = report.head.unwrap_or(0);
        // Whole commits only (3 facts each), never fewer than at a shorter cut.
        assert_eq!(h % 3, 0, "cut at {cut}: head {h} is inside a commit");
        assert!(h >= last_head, "cut at {cut}: head {h} after {last_head} at a shorter cut");
        let records = j.read(1, h as usize).await.unwrap();
        for (r, n) in records.iter().zip(1u128..) {
            assert_eq!(fact_id(&r.fact), n, "cut at {cut}: record {}", r.sequence);
        }
        last_head = h;
        *heads.entry(h).or_insert(0) += 1;
        j.close().await.unwrap();
        std::fs::remove_dir_all(&copy).unwrap();
    }
    assert_eq!(last_head, head, "the whole log opens at the last commit");
    assert!(heads.len() >= 2, "the cuts reached into the last commit's entry: {heads:?}");
    println!("{} cuts of the log's last {} bytes: heads {heads:?}", full.len() - from + 1, full.len() - from);
}
