//! The manager on a RocksDB journal whose disk fills up: the delegation that hits the full
//! disk gets a typed error, nothing acknowledged is lost, the journal verifies, and once
//! space is freed the same manager goes on without a restart.
//!
//! The small disk is a tmpfs in a private mount namespace; the harness is the RocksDB
//! journal's own (`reconf-store-rocksdb/tests/support/small_disk.rs`).
#![cfg(feature = "rocksdb")]
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../../reconf-store-rocksdb/tests/support/small_disk.rs"]
mod small_disk;

use std::path::Path;
use std::time::{Duration, Instant};

use reconf_core::*;
use reconf_runtime::*;

const SESSIONS: usize = 16;
const AUTHS: usize = 4;

fn a(i: usize) -> AuthorityId {
    AuthorityId::from_label(&format!("auth-{i}"))
}
fn s(n: usize) -> SessionId {
    SessionId::from_u128(0x00d1_5c00_0000 + n as u128)
}
fn bid() -> BundleId {
    BundleId::new("disk").unwrap()
}

async fn open(dir: &Path) -> ReconfigurationManager {
    ManagerBuilder::new()
        .rocksdb_journal(dir)
        .unwrap()
        .without_manifests()
        .snapshot_interval(Some(40))
        .open()
        .await
        .unwrap()
}

#[test]
fn a_full_disk_refuses_writes_loses_nothing_and_the_same_manager_resumes() {
    if !small_disk::in_worker() {
        small_disk::run_worker("disk_full_worker");
    }
}

/// Not a test on its own: the test above runs it in a private mount namespace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "runs inside a_full_disk_refuses_writes_loses_nothing_and_the_same_manager_resumes"]
async fn disk_full_worker() {
    if !small_disk::in_worker() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mnt = tmp.path();
    small_disk::mount_tmpfs(mnt, "24m");
    let dir = mnt.join("journal");

    let m = open(&dir).await;
    m.register_bundle(ComposedBundle::new(bid())).await.unwrap();
    for n in 0..SESSIONS {
        m.open_session(s(n), a(0), None).await.unwrap();
    }
    // What each acknowledged delegation made true: the session's holder and generation.
    let mut acked: Vec<(SessionId, AuthorityId, u64)> = Vec::new();
    let mut k = 0usize;
    let mut next = |m: &ReconfigurationManager| {
        let n = k % SESSIONS;
        k += 1;
        let from = m.session(&s(n)).unwrap().holder;
        let to = a((1 + (0..AUTHS).position(|i| a(i) == from).unwrap() + k % (AUTHS - 1)) % AUTHS);
        DelegationRequest::new(s(n), from, to, bid())
    };
    for _ in 0..60 {
        let out = m.delegate_session(next(&m)).await.unwrap();
        acked.push((out.receipt.session, out.receipt.to, out.receipt.generation));
    }
    let filler = small_disk::fill(mnt);

    let refused = loop {
        match m.delegate_session(next(&m)).await {
            Ok(out) => acked.push((out.receipt.session, out.receipt.to, out.receipt.generation)),
            Err(e) => break e,
        }
        assert!(acked.len() < 1_000_000, "the disk never filled up");
    };
    assert!(
        matches!(&refused, ManagerError::Persist { source: JournalError::StorageFull { .. }, .. }),
        "{refused:?}"
    );
    println!("refused: {refused}");
    // While the disk stays full, every write is refused the same way and the state is
    // exactly what was acknowledged.
    for _ in 0..3 {
        let e = m.delegate_session(next(&m)).await.unwrap_err();
        assert!(
            matches!(&e, ManagerError::Persist { source: JournalError::StorageFull { .. }, .. }),
            "{e:?}"
        );
    }
    let full_at = acked.len();
    check_acknowledged(&m, &acked);

    std::fs::remove_file(&filler).unwrap();
    let freed = Instant::now();
    let mut resumed = None;
    while freed.elapsed() < Duration::from_secs(10) {
        match m.delegate_session(next(&m)).await {
            Ok(out) => {
                resumed.get_or_insert(freed.elapsed());
                acked.push((out.receipt.session, out.receipt.to, out.receipt.generation));
                if acked.len() >= full_at + 100 {
                    break;
                }
            }
            Err(e) if resumed.is_none() => {
                println!("after freeing space: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("a delegation failed after writes had resumed: {e}"),
        }
    }
    let resumed = resumed.expect("writes resumed within 10 s of freeing space");
    assert_eq!(acked.len(), full_at + 100);
    check_acknowledged(&m, &acked);
    let audit = m.verify_coherence().await;
    assert!(audit.is_coherent(), "{:?}", audit.violations);
    let before = m.state_snapshot();
    m.shutdown().await.unwrap();
    drop(m);

    // What `reconf verify` checks: frames, checksums and hash chain, then a replay.
    let journal = RocksJournal::open(&dir, RocksJournalOptions::default()).unwrap();
    let verified = journal.verify().await.unwrap();
    journal.close().await.unwrap();
    let again = open(&dir).await;
    assert_eq!(again.state_snapshot(), before);
    check_acknowledged(&again, &acked);
    assert!(again.verify_coherence().await.is_coherent());
    again.shutdown().await.unwrap();
    println!(
        "disk full after {full_at} acknowledged delegations; writes resumed {resumed:?} after space was \
         freed; {} acknowledged in all, journal verified at head {:?}, reopened state equal",
        acked.len(),
        verified.head
    );
}

/// Each session's holder and generation are those of its last acknowledged delegation.
fn check_acknowledged(m: &ReconfigurationManager, acked: &[(SessionId, AuthorityId, u64)]) {
    let mut last = std::collections::BTreeMap::new();
    for (session, to, generation) in acked {
        last.insert(*session, (*to, *generation));
    }
    for (session, (to, generation)) in last {
        let record = m.session(&session).unwrap();
        assert_eq!((record.holder, record.generation), (to, generation), "session {session}");
    }
}
