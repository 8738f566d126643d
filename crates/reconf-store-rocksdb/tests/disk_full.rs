//! Disk full: the journal on a small filesystem that fills up (a tmpfs in a private mount
//! namespace, see `support/small_disk.rs`); and a write error that is not a full disk
//! (a file-size limit), which must not be reported as one.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
#[path = "support/small_disk.rs"]
mod small_disk;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use reconf_effects::{ExpectedHead, JournalEffects, JournalError};

/// Facts per commit.
const BATCH: u64 = 50;

#[test]
fn a_full_disk_refuses_commits_keeps_reads_and_the_same_handle_resumes() {
    if !small_disk::in_worker() {
        small_disk::run_worker("disk_full_worker");
    }
}

/// Not a test on its own: the test above runs it in a private mount namespace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "runs inside a_full_disk_refuses_commits_keeps_reads_and_the_same_handle_resumes"]
async fn disk_full_worker() {
    if !small_disk::in_worker() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mnt = tmp.path();
    small_disk::mount_tmpfs(mnt, "24m");
    let dir = mnt.join("journal");
    let journal = Arc::new(open(&dir));
    // Facts are numbered 1, 2, ... in journal order; a commit carries the next `BATCH`.
    let mut head = 0;
    for _ in 0..10 {
        head = journal.commit(batch(head), ExpectedHead::after(head)).await.unwrap().last;
    }
    let filler = small_disk::fill(mnt);

    // Commits go on into the last free pages, then one hits the full disk.
    let full;
    (head, full) = commit_until_refused(journal.as_ref(), head, "the disk filled up").await;
    assert!(matches!(full, JournalError::StorageFull { .. }), "{full:?}");
    assert!(full.outcome_unknown());
    let acknowledged = head;

    // While the disk stays full: every commit is refused the same way, reads go on.
    for _ in 0..3 {
        let e = journal.commit(batch(head), ExpectedHead::after(head)).await.unwrap_err();
        assert!(matches!(e, JournalError::StorageFull { .. }), "{e:?}");
    }
    assert_contiguous(&journal, acknowledged).await;

    // Space freed: the same handle writes again. The refused commits were written only if
    // RocksDB made them durable, so the head may have moved by whole commits past the
    // acknowledged one, never inside one.
    // Readers run on through the reopen: they wait for it rather than fail, and the reopen
    // waits for their reads to end rather than give up.
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (journal, stop) = (Arc::clone(&journal), Arc::clone(&stop));
            tokio::spawn(async move {
                let mut reads = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let records = journal.read(1, 64).await.unwrap_or_else(|e| panic!("a read failed: {e}"));
                    assert_eq!(records.len(), 64);
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(20)).await;
    std::fs::remove_file(&filler).unwrap();
    let resumed = Instant::now();
    let after = loop {
        match journal.commit(batch(head), ExpectedHead::after(head)).await {
            Ok(c) => break c,
            Err(JournalError::Conflict { actual: Some(actual), .. }) if actual > head => head = actual,
            Err(e) => panic!("the first commit after space was freed failed: {e}"),
        }
    };
    stop.store(true, Ordering::Relaxed);
    let mut reads = 0;
    for r in readers {
        reads += r.await.unwrap();
    }
    assert!(reads > 0);
    let journal = Arc::try_unwrap(journal).unwrap();
    assert_eq!((after.last - acknowledged) % BATCH, 0, "{after:?} after {acknowledged}");
    let head = after.last;
    assert_contiguous(&journal, head).await;
    assert_eq!(journal.verify().await.unwrap().head, Some(head));
    journal.close().await.unwrap();

    let journal = open(&dir);
    assert_eq!(journal.verify().await.unwrap().head, Some(head));
    assert_contiguous(&journal, head).await;
    journal.close().await.unwrap();
    println!(
        "disk full after {acknowledged} acknowledged records; writes resumed {:?} after space was freed, \
         through {reads} concurrent reads; reopened at head {head}",
        resumed.elapsed()
    );
}

/// The `BATCH` facts of the commit after `head`.
fn batch(head: u64) -> Vec<reconf_core::Fact> {
    (1..=BATCH).map(|i| fact(u128::from(head + i))).collect()
}

/// Commits batch after batch from `head` until one is refused: the head of the last one
/// acknowledged, and the refusal (`what` names the refusal that must come).
async fn commit_until_refused(
    journal: &impl JournalEffects,
    mut head: u64,
    what: &str,
) -> (u64, JournalError) {
    for _ in 0..100_000 {
        match journal.commit(batch(head), ExpectedHead::after(head)).await {
            Ok(c) => head = c.last,
            Err(e) => return (head, e),
        }
    }
    panic!("no commit was refused: expected {what}");
}

/// Records `1..=head` are facts `1..=head`, in order.
async fn assert_contiguous(journal: &impl JournalEffects, head: u64) {
    let records = journal.read(1, usize::try_from(head).unwrap()).await.unwrap();
    assert_eq!(records.len() as u64, head);
    for (r, n) in records.iter().zip(1u128..) {
        assert_eq!((r.sequence, fact_id(&r.fact)), (n as u64, n));
    }
}

/// A write that fails for another reason than a full disk is not reported as one (that
/// error tells the operator to free space, which would not help). The failure here is
/// real: the child runs under a 512 KiB file-size limit (`ulimit -f`, with `SIGXFSZ`
/// ignored), so once the write-ahead log reaches it, RocksDB's append fails with EFBIG;
/// and the free-space probe the next commit makes first (1 MiB) fails with EFBIG too.
#[test]
fn a_write_error_that_is_not_a_full_disk_is_ambiguous_not_storage_full() {
    if small_disk::in_worker() {
        return;
    }
    let mut limited = std::process::Command::new("sh");
    limited.args(["-c", "trap '' XFSZ; ulimit -f 1024 && exec \"$@\"", "sh"]);
    let stdout = small_disk::run_in(limited, "file_size_limit_worker", "run `sh` to set a file-size limit");
    assert!(stdout.contains("1 passed"), "the worker ran: {stdout}");
}

/// Not a test on its own: the test above runs it under a file-size limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "runs inside a_write_error_that_is_not_a_full_disk_is_ambiguous_not_storage_full"]
async fn file_size_limit_worker() {
    if !small_disk::in_worker() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let journal = open(dir.path());
    let (head, e) = commit_until_refused(&journal, 0, "the file-size limit's EFBIG").await;
    assert!(e.to_string().contains("File too large"), "the failure is the limit's EFBIG: {e}");
    assert!(
        matches!(e, JournalError::Ambiguous { .. }),
        "a failed write, outcome unknown, not a full disk: {e:?}"
    );
    assert!(e.outcome_unknown());
    assert_contiguous(&journal, head).await;
    let next = journal.commit(batch(head), ExpectedHead::after(head)).await.unwrap_err();
    assert!(matches!(next, JournalError::Storage { .. }), "the probe failed, the disk is not full: {next:?}");
    assert!(next.to_string().contains("probing free space"), "{next}");
    assert_contiguous(&journal, head).await;
    println!("write refused with EFBIG after {head} acknowledged records: {e}");
}
