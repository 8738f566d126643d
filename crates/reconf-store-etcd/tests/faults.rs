//! The etcd journal under lost replies, restarts, leader kills, tampering and many
//! writers, on real etcd processes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{fact, Mode, Proxy};
use etcd_client::Client;
use reconf_effects::{Corruption, ExpectedHead, JournalEffects, JournalError, Tail};
use reconf_store_etcd::testing::EtcdCluster;
use reconf_store_etcd::{EtcdJournal, EtcdJournalOptions};

fn options(endpoints: Vec<String>, prefix: &str) -> EtcdJournalOptions {
    EtcdJournalOptions::new(endpoints)
        .prefix(prefix)
        .request_timeout(Duration::from_millis(400))
        .resolve_timeout(Duration::from_secs(15))
}

async fn facts_of(journal: &EtcdJournal) -> Vec<reconf_core::Fact> {
    journal.read(1, usize::MAX).await.unwrap().into_iter().map(|r| r.fact).collect()
}

/// A commit whose request reached etcd but whose reply was lost is reported `Ok`, once:
/// the journal fences its base, finds its own commit id, and writes nothing twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lost_reply_of_a_landed_commit_is_resolved_as_committed() {
    let etcd = EtcdCluster::start(1);
    let proxy = Proxy::start(&etcd.endpoint(0)).await;
    let journal =
        Arc::new(EtcdJournal::connect(options(vec![proxy.url.clone()], "/lost-reply")).await.unwrap());
    journal.commit(vec![fact(1)], ExpectedHead::Empty).await.unwrap();

    proxy.set(Mode::DropReplies);
    let pending = {
        let j = Arc::clone(&journal);
        tokio::spawn(async move { j.commit(vec![fact(2), fact(3)], ExpectedHead::At(1)).await })
    };
    // Past the request timeout: the commit is resolving, its fences unanswered too.
    tokio::time::sleep(Duration::from_millis(900)).await;
    proxy.set(Mode::Pass);
    proxy.sever();
    let committed = pending.await.unwrap().unwrap();
    assert_eq!((committed.first, committed.last), (2, 3));
    assert_eq!(journal.stats().resolved_landed, 1, "{:?}", journal.stats());

    let direct = EtcdJournal::connect(options(etcd.endpoints(), "/lost-reply")).await.unwrap();
    assert_eq!(facts_of(&direct).await, [fact(1), fact(2), fact(3)]);
    assert_eq!(direct.verify().await.unwrap().head, Some(3));
}

/// A commit whose request never arrived is fenced off (so it cannot land later) and retried:
/// the caller gets `Ok` and the facts are in the journal exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_commit_that_never_arrived_is_fenced_and_retried() {
    let etcd = EtcdCluster::start(1);
    let proxy = Proxy::start(&etcd.endpoint(0)).await;
    let journal =
        Arc::new(EtcdJournal::connect(options(vec![proxy.url.clone()], "/never-arrived")).await.unwrap());
    journal.commit(vec![fact(1)], ExpectedHead::Empty).await.unwrap();

    proxy.set(Mode::Blackhole);
    let pending = {
        let j = Arc::clone(&journal);
        tokio::spawn(async move { j.commit(vec![fact(2)], ExpectedHead::At(1)).await })
    };
    tokio::time::sleep(Duration::from_millis(900)).await;
    proxy.set(Mode::Pass);
    proxy.sever();
    let committed = pending.await.unwrap().unwrap();
    assert_eq!((committed.first, committed.last), (2, 2));
    let stats = journal.stats();
    assert_eq!((stats.resolved_not_landed, stats.resolved_landed), (1, 0), "{stats:?}");

    let direct = EtcdJournal::connect(options(etcd.endpoints(), "/never-arrived")).await.unwrap();
    assert_eq!(facts_of(&direct).await, [fact(1), fact(2)]);
    // Another writer that saw head 1 before the fence cannot write on top of the fenced
    // head by accident: its compare is on the head value, and it learns the real head.
    direct.commit(vec![fact(3)], ExpectedHead::At(2)).await.unwrap();
    assert_eq!(direct.verify().await.unwrap().head, Some(3));
}

/// When the cluster stays silent for the whole resolve timeout, the answer is honest:
/// `Ambiguous`, never "failed".
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_outcome_that_cannot_be_learnt_is_ambiguous() {
    let etcd = EtcdCluster::start(1);
    let proxy = Proxy::start(&etcd.endpoint(0)).await;
    let opts = options(vec![proxy.url.clone()], "/silent").resolve_timeout(Duration::from_secs(1));
    let journal = EtcdJournal::connect(opts).await.unwrap();
    journal.commit(vec![fact(1)], ExpectedHead::Empty).await.unwrap();
    proxy.set(Mode::DropReplies);
    let err = journal.commit(vec![fact(2)], ExpectedHead::At(1)).await.unwrap_err();
    assert!(err.outcome_unknown(), "{err}");
    assert_eq!(journal.stats().unresolved, 1);
    proxy.set(Mode::Pass);
    proxy.sever();
    // It did land (the requests got through); a fresh read shows it, once.
    let direct = EtcdJournal::connect(options(etcd.endpoints(), "/silent")).await.unwrap();
    assert_eq!(facts_of(&direct).await, [fact(1), fact(2)]);
}

/// Three handles (three separate clients, as three managers would have) race commits
/// expecting any head and commits by optimistic concurrency on one prefix: every
/// acknowledged commit is in the journal exactly once, at the sequences it was told.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_writers_on_one_journal_land_every_commit_once() {
    let etcd = EtcdCluster::start(1);
    let mut writers = Vec::new();
    for w in 0..3u128 {
        let journal = Arc::new(EtcdJournal::connect(options(etcd.endpoints(), "/three")).await.unwrap());
        writers.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for n in 0..40u128 {
                let f = fact(w * 1_000 + n);
                let committed = if n % 2 == 0 {
                    journal.commit(vec![f.clone()], ExpectedHead::Any).await.unwrap()
                } else {
                    loop {
                        let head = journal.head().await.unwrap();
                        match journal.commit(vec![f.clone()], ExpectedHead::from_head(head)).await {
                            Ok(c) => break c,
                            Err(JournalError::Conflict { .. }) => continue,
                            Err(e) => panic!("{e}"),
                        }
                    }
                };
                acked.push((committed.first, f));
            }
            (acked, journal.stats())
        }));
    }
    let mut acked = Vec::new();
    let mut conflicts = 0;
    for w in writers {
        let (a, stats) = w.await.unwrap();
        conflicts += stats.conflicts + stats.cas_retries;
        acked.extend(a);
    }
    let reader = EtcdJournal::connect(options(etcd.endpoints(), "/three")).await.unwrap();
    let log = reader.read(1, usize::MAX).await.unwrap();
    assert_eq!(log.len(), 120);
    for (sequence, f) in &acked {
        assert_eq!(&log[*sequence as usize - 1].fact, f, "acknowledged at {sequence}");
    }
    assert_eq!(reader.verify().await.unwrap().head, Some(120));
    println!("three writers: 120 commits, {conflicts} conflicts or CAS retries");
}

/// A tail keeps delivering every record once, in order, across an etcd restart (the watch
/// reconnects and resumes from its revision).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tail_survives_an_etcd_restart() {
    let mut etcd = EtcdCluster::start(1);
    let writer = EtcdJournal::connect(options(etcd.endpoints(), "/restart")).await.unwrap();
    let follower = Arc::new(EtcdJournal::connect(options(etcd.endpoints(), "/restart")).await.unwrap());
    let tail = {
        let f = Arc::clone(&follower);
        tokio::spawn(async move {
            let mut tail = Tail::new(f, 1);
            let mut got = Vec::new();
            while got.len() < 20 {
                match tail.next(100).await {
                    Ok(records) => got.extend(records),
                    // Reads fail while etcd is down; the tail is unchanged and is asked again.
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
            got
        })
    };
    for n in 0..10 {
        writer.commit(vec![fact(n)], ExpectedHead::Any).await.unwrap();
    }
    etcd.restart(0);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut n = 10;
    while n < 20 {
        match writer.commit(vec![fact(n)], ExpectedHead::Any).await {
            Ok(_) => n += 1,
            Err(e) => {
                assert!(Instant::now() < deadline, "writes did not resume after the restart: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    let got = tokio::time::timeout(Duration::from_secs(20), tail).await.expect("the tail stalled").unwrap();
    let sequences: Vec<u64> = got.iter().map(|r| r.sequence).collect();
    assert_eq!(sequences, (1..=20).collect::<Vec<_>>());
    assert_eq!(got.iter().map(|r| r.fact.clone()).collect::<Vec<_>>(), (0..20).map(fact).collect::<Vec<_>>());
}

/// kill -9 of the leader of a 3-member cluster while four writers commit: writes resume
/// after the re-election, every acknowledged commit is in the journal exactly once at its
/// sequence, and every lost reply was resolved to its true outcome.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_the_leader_loses_no_acknowledged_commit() {
    let mut etcd = EtcdCluster::start(3);
    etcd.wait_for_leader().await;
    let endpoints = etcd.all_endpoints();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..4u128 {
        let journal = Arc::new(EtcdJournal::connect(options(endpoints.clone(), "/leader")).await.unwrap());
        let stop = Arc::clone(&stop);
        writers.push(tokio::spawn(async move {
            let (mut acked, mut failed) = (Vec::new(), Vec::new());
            let mut n = 0u128;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && n < 2_000 {
                let f = fact(w * 100_000 + n);
                n += 1;
                match journal.commit(vec![f.clone()], ExpectedHead::Any).await {
                    Ok(c) => acked.push((c.first, f, Instant::now())),
                    Err(e) => {
                        assert!(!matches!(e, JournalError::Corrupt { .. }), "{e}");
                        failed.push((f, e));
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
            (acked, failed, journal.stats())
        }));
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    let leader = etcd.wait_for_leader().await;
    etcd.kill(leader);
    let killed_at = Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut acked = Vec::new();
    let (mut failed, mut landed, mut not_landed) = (Vec::new(), 0, 0);
    for w in writers {
        let (a, f, stats) = w.await.unwrap();
        acked.extend(a);
        failed.extend(f);
        landed += stats.resolved_landed;
        not_landed += stats.resolved_not_landed;
    }
    let reader = EtcdJournal::connect(options(etcd.endpoints(), "/leader")).await.unwrap();
    let log = reader.read(1, usize::MAX).await.unwrap();
    let mut seen = HashSet::new();
    for (sequence, f, _) in &acked {
        assert_eq!(&log[*sequence as usize - 1].fact, f, "acknowledged at {sequence}");
        assert!(seen.insert(*sequence));
    }
    let after_kill = acked.iter().filter(|(_, _, at)| *at > killed_at + Duration::from_secs(1)).count();
    assert!(after_kill > 0, "no write landed after the leader was killed");
    let unique: HashSet<_> = log.iter().map(|r| format!("{:?}", r.fact)).collect();
    assert_eq!(unique.len(), log.len(), "a fact was written twice");
    // A refusal that is not `Ambiguous` promises nothing was written.
    for (f, e) in failed.iter().filter(|(_, e)| !e.outcome_unknown()) {
        assert!(!unique.contains(&format!("{f:?}")), "refused with {e}, yet written");
    }
    let ambiguous = failed.iter().filter(|(_, e)| e.outcome_unknown()).count();
    let failed_kinds: HashSet<String> =
        failed.iter().map(|(_, e)| e.to_string().chars().take(60).collect()).collect();
    assert_eq!(reader.verify().await.unwrap().head, Some(log.len() as u64));
    println!(
        "leader kill: {} acknowledged ({after_kill} more than 1 s after the kill), {} refused ({ambiguous} ambiguous; {failed_kinds:?}), {} in the journal, lost replies resolved: {landed} landed, {not_landed} fenced; {:?} since the kill",
        acked.len(),
        failed.len(),
        log.len(),
        killed_at.elapsed()
    );
}

async fn raw(etcd: &EtcdCluster) -> etcd_client::KvClient {
    Client::connect(etcd.endpoints(), None).await.unwrap().kv_client()
}

/// A journal written by a newer format is refused at connect, as the RocksDB journal does.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_newer_format_is_refused() {
    let etcd = EtcdCluster::start(1);
    raw(&etcd).await.put("/future/format", 9u16.to_be_bytes().to_vec(), None).await.unwrap();
    let err = EtcdJournal::connect(options(etcd.endpoints(), "/future")).await.unwrap_err();
    assert_eq!(err, JournalError::UnsupportedFormat { found: 9, supported: 1 });
}

/// A flipped byte in a stored record, or a head that does not match its record, is
/// reported as corruption naming the sequence, by `read`, by `verify` and at connect.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tampering_is_detected() {
    let etcd = EtcdCluster::start(1);
    let journal = EtcdJournal::connect(options(etcd.endpoints(), "/tamper")).await.unwrap();
    journal.commit(vec![fact(1), fact(2)], ExpectedHead::Empty).await.unwrap();
    journal.commit(vec![fact(3)], ExpectedHead::At(2)).await.unwrap();
    let mut kv = raw(&etcd).await;
    let key = "/tamper/r/0000000000000002";
    let stored = kv.get(key, None).await.unwrap().kvs()[0].value().to_vec();
    let mut bad = stored.clone();
    let last = bad.len() - 1;
    bad[last] ^= 0x01;
    kv.put(key, bad, None).await.unwrap();
    let err = journal.read(1, 10).await.unwrap_err();
    assert!(matches!(err, JournalError::Corrupt { sequence: 2, .. }), "{err}");
    let err = journal.verify().await.unwrap_err();
    assert!(matches!(err, JournalError::Corrupt { sequence: 2, .. }), "{err}");

    // Restore the record, then rewrite the second fact with its checksum recomputed, as a
    // careful attacker would: the hash chain still catches it.
    kv.put(key, stored, None).await.unwrap();
    assert_eq!(journal.verify().await.unwrap().head, Some(3));
    let head = kv.get("/tamper/head", None).await.unwrap().kvs()[0].value().to_vec();
    let mut wrong = head.clone();
    wrong[8] ^= 0x01;
    kv.put("/tamper/head", wrong, None).await.unwrap();
    let err = EtcdJournal::connect(options(etcd.endpoints(), "/tamper")).await.unwrap_err();
    assert!(matches!(err, JournalError::Corrupt { corruption: Corruption::Metadata { .. }, .. }), "{err}");
}

/// A commit over the size limit is refused whole: nothing is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_oversized_commit_is_refused_not_split() {
    let etcd = EtcdCluster::start(1);
    let journal =
        EtcdJournal::connect(options(etcd.endpoints(), "/big").max_commit_bytes(4096)).await.unwrap();
    let batch: Vec<_> = (0..200).map(fact).collect();
    let err = journal.commit(batch, ExpectedHead::Empty).await.unwrap_err();
    assert!(matches!(err, JournalError::Encode { .. }), "{err}");
    assert_eq!(journal.head().await.unwrap(), None);
}

/// A snapshot larger than one etcd request is stored in parts and read back whole; only
/// the newest are kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn large_snapshots_round_trip() {
    let etcd = EtcdCluster::start(1);
    let journal =
        EtcdJournal::connect(options(etcd.endpoints(), "/snap").snapshots_to_keep(1)).await.unwrap();
    journal.commit(vec![fact(1), fact(2)], ExpectedHead::Empty).await.unwrap();
    let bytes: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    journal.write_snapshot(1, vec![7; 10]).await.unwrap();
    journal.write_snapshot(2, bytes.clone()).await.unwrap();
    let latest = journal.latest_snapshot().await.unwrap().unwrap();
    assert_eq!((latest.sequence, latest.bytes.len()), (2, bytes.len()));
    assert!(latest.bytes == bytes);
    let left = raw(&etcd)
        .await
        .get("/snap/s/", Some(etcd_client::GetOptions::new().with_prefix().with_keys_only()))
        .await
        .unwrap();
    assert_eq!(left.kvs().len(), 1, "older snapshots are pruned");
}

/// A follower whose watch was cut off while the writer went on and etcd compacted its
/// history resumes anyway: etcd refuses the old revision, the follower re-reads the head,
/// and its tail delivers every record once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_watch_resumes_after_compaction() {
    let etcd = EtcdCluster::start(1);
    let proxy = Proxy::start(&etcd.endpoint(0)).await;
    let writer = EtcdJournal::connect(options(etcd.endpoints(), "/compact")).await.unwrap();
    let follower =
        Arc::new(EtcdJournal::connect(options(vec![proxy.url.clone()], "/compact")).await.unwrap());
    writer.commit(vec![fact(0)], ExpectedHead::Empty).await.unwrap();
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(5), follower.wait_for_head(0)).await.unwrap().unwrap(),
        1
    );

    proxy.set(Mode::Blackhole);
    proxy.sever();
    for n in 1..20 {
        writer.commit(vec![fact(n)], ExpectedHead::Any).await.unwrap();
    }
    let mut kv = raw(&etcd).await;
    let revision = kv.get("/compact/head", None).await.unwrap().header().unwrap().revision();
    kv.compact(revision, Some(etcd_client::CompactionOptions::new().with_physical())).await.unwrap();
    let restarts_before = follower.stats().watch_restarts;
    proxy.set(Mode::Pass);
    proxy.sever();

    let woke = tokio::time::timeout(Duration::from_secs(20), follower.wait_for_head(1)).await;
    assert_eq!(woke.expect("the follower never learnt of the new head").unwrap(), 20);
    assert!(follower.stats().watch_restarts > restarts_before);
    let mut tail = Tail::new(Arc::clone(&follower), 1);
    let mut got = Vec::new();
    while got.len() < 20 {
        got.extend(tail.next(100).await.unwrap());
    }
    assert_eq!(got.iter().map(|r| r.fact.clone()).collect::<Vec<_>>(), (0..20).map(fact).collect::<Vec<_>>());
}

/// Reading a page of commits near the size limit works: the reply is larger than the gRPC
/// client's default 4 MiB, and the journal accepts replies as large as a page can be.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pages_of_large_commits_read_back() {
    let etcd = EtcdCluster::start(1);
    let journal = EtcdJournal::connect(options(etcd.endpoints(), "/large")).await.unwrap();
    let per_commit = 9_000u128;
    for c in 0..8u128 {
        let batch: Vec<_> = (0..per_commit).map(|i| fact(c * per_commit + i)).collect();
        journal.commit(batch, ExpectedHead::Any).await.unwrap();
    }
    let records = journal.read(1, usize::MAX).await.unwrap();
    assert_eq!(records.len() as u128, 8 * per_commit);
    assert!(records.iter().zip(0..).all(|(r, n)| r.fact == fact(n)));
    assert_eq!(journal.verify().await.unwrap().records, 8 * per_commit as u64);
}
