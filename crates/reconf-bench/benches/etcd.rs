//! The manager on an etcd journal next to raw etcd-client transactions, in one run, on a
//! single-member loopback etcd started by the bench: raw compare-and-put transactions
//! (sequential, and 64 concurrent), the manager with 64 callers (1 manager, and 3 managers
//! sharing the journal), and recovery of a large journal from etcd.
//!
//! `cargo bench -p reconf-bench --bench etcd`. Criterion times the raw sequential
//! transaction and one 64-caller round of the manager; the summary prints every rate and
//! the goals: one manager >= 20x the raw sequential rate (group commit turns one etcd round
//! trip into many delegations), three managers together >= 0.7x one, recovery of the
//! journal < 10 s. `RECONF_BENCH_RECOVERY_FACTS` sets the recovery journal's size
//! (default 1e6).

// Bench code: a failed unwrap is a failed run.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use reconf_bench::workload::{self, Callers};
use reconf_runtime::crates::store_etcd::testing::EtcdCluster;
use reconf_runtime::crates::store_etcd::{EtcdJournal, EtcdJournalOptions};
use reconf_runtime::{ExpectedHead, Fact, JournalEffects, ManagerBuilder, ReconfigurationManager};
use tokio::runtime::Runtime;

const CALLERS: usize = 64;
const SESSIONS: usize = 64 * 64;
const AUTHORITIES: usize = 16;

/// The facts of the bench's bundle and `n` open sessions, round-robin over authorities.
fn setup_facts(n: usize) -> Vec<Fact> {
    workload::setup_facts(n, &workload::authorities(AUTHORITIES)).unwrap()
}

fn options(etcd: &EtcdCluster, prefix: &str) -> EtcdJournalOptions {
    EtcdJournalOptions::new(etcd.endpoints()).prefix(prefix)
}

async fn load(journal: &dyn JournalEffects, facts: &[Fact]) {
    for chunk in facts.chunks(4_000) {
        journal.commit(chunk.to_vec(), ExpectedHead::Any).await.unwrap();
    }
}

/// One raw transaction of the journal's shape: compare the head key's value, put a record
/// key and the head. `prev` is the head value this writer last wrote.
async fn raw_txn(kv: &mut etcd_client::KvClient, key: &str, n: u64, prev: &mut Vec<u8>, record: &[u8]) {
    use etcd_client::{Compare, CompareOp, Txn, TxnOp};
    let head = n.to_be_bytes().to_vec();
    let cmp = if prev.is_empty() {
        Compare::version(format!("{key}/head"), CompareOp::Equal, 0)
    } else {
        Compare::value(format!("{key}/head"), CompareOp::Equal, prev.clone())
    };
    let txn = Txn::new().when([cmp]).and_then([
        TxnOp::put(format!("{key}/r/{n:016x}"), record.to_vec(), None),
        TxnOp::put(format!("{key}/head"), head.clone(), None),
    ]);
    let r = kv.txn(txn).await.unwrap();
    assert!(r.succeeded());
    *prev = head;
}

async fn raw_rate(etcd: &EtcdCluster, writers: usize, per_writer: u64) -> f64 {
    let record = vec![7u8; 200];
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let client = etcd_client::Client::connect(etcd.endpoints(), None).await.unwrap();
        let record = record.clone();
        tasks.push(tokio::spawn(async move {
            let mut kv = client.kv_client();
            let mut prev = Vec::new();
            let key = format!("/raw/{w}-{}", rand::random::<u32>());
            for n in 1..=per_writer {
                raw_txn(&mut kv, &key, n, &mut prev, &record).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    (writers as u64 * per_writer) as f64 / started.elapsed().as_secs_f64()
}

async fn open_managers(
    etcd: &EtcdCluster,
    prefix: &str,
    n: usize,
    snapshots: Option<u64>,
) -> Vec<ReconfigurationManager> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(
            ManagerBuilder::new()
                .etcd_journal(options(etcd, prefix))
                .mailbox_capacity(2 * CALLERS)
                .without_manifests()
                .snapshot_interval(snapshots)
                .open()
                .await
                .unwrap(),
        );
    }
    for m in &out {
        m.sync().await.unwrap();
    }
    out
}

/// `n` managers on a fresh journal under `prefix` that already holds `facts`.
async fn loaded_managers(
    etcd: &EtcdCluster,
    prefix: &str,
    n: usize,
    facts: &[Fact],
) -> Vec<ReconfigurationManager> {
    let j = EtcdJournal::connect(options(etcd, prefix)).await.unwrap();
    load(&j, facts).await;
    open_managers(etcd, prefix, n, None).await
}

/// Commits, conflicts and facts written, summed over `managers`.
fn totals(managers: &[ReconfigurationManager]) -> (u64, u64, u64) {
    managers
        .iter()
        .map(|m| m.stats().actor)
        .fold((0, 0, 0), |(c, k, f), s| (c + s.commits, k + s.conflicts, f + s.facts))
}

fn main() {
    let rt = Runtime::new().unwrap();
    let mut criterion =
        Criterion::default().configure_from_args().sample_size(10).warm_up_time(Duration::from_secs(1));
    let etcd = EtcdCluster::start(1);
    let mut lines = Vec::new();

    // Raw baselines.
    {
        let mut g = criterion.benchmark_group("etcd_raw");
        g.throughput(Throughput::Elements(1));
        g.measurement_time(Duration::from_secs(5));
        let client = rt.block_on(etcd_client::Client::connect(etcd.endpoints(), None)).unwrap();
        let mut kv = client.kv_client();
        let mut prev = Vec::new();
        let counter = AtomicU64::new(0);
        g.bench_function("sequential_compare_and_put", |b| {
            b.iter(|| {
                let n = counter.fetch_add(1, Ordering::Relaxed) + 1;
                rt.block_on(raw_txn(&mut kv, "/raw/criterion", n, &mut prev, &[7; 200]));
            })
        });
        g.finish();
    }
    // The loopback etcd's rate moves with what else the machine does: the best of three
    // runs is the baseline, so the ratios are conservative.
    let raw_seq = (0..3).map(|_| rt.block_on(raw_rate(&etcd, 1, 400))).fold(0.0, f64::max);
    let raw_64 = (0..3).map(|_| rt.block_on(raw_rate(&etcd, 64, 40))).fold(0.0, f64::max);
    lines.push(format!("raw etcd txn, sequential (best of 3):            {raw_seq:>9.0}/s"));
    // The journal alone: sequential commits of 32 delegation-sized facts, to tell the
    // journal's cost per round trip from the manager's.
    let journal_commits = rt.block_on(async {
        let j = EtcdJournal::connect(options(&etcd, "/journal-alone")).await.unwrap();
        let batch = setup_facts(31);
        let n = 300;
        let t = Instant::now();
        for _ in 0..n {
            j.commit(batch.clone(), ExpectedHead::Any).await.unwrap();
        }
        n as f64 / t.elapsed().as_secs_f64()
    });
    lines.push(format!(
        "journal alone, sequential commits of 32 facts: {journal_commits:>6.0} commits/s ({:.0} facts/s)",
        journal_commits * 32.0
    ));
    lines.push(format!("raw etcd txn, 64 concurrent writers (best of 3): {raw_64:>9.0}/s"));

    // One manager.
    let facts = setup_facts(SESSIONS);
    let one = rt.block_on(loaded_managers(&etcd, "/bench1", 1, &facts));
    let mut callers = Callers::new(CALLERS, SESSIONS, workload::authorities(AUTHORITIES));
    {
        let mut g = criterion.benchmark_group("etcd_manager");
        let per_caller = 20;
        g.throughput(Throughput::Elements((CALLERS * per_caller) as u64));
        g.measurement_time(Duration::from_secs(10));
        g.bench_function("one_manager_64_callers", |b| {
            b.iter_custom(|iters| {
                (0..iters).map(|_| rt.block_on(callers.round(&one, per_caller)).unwrap()).sum()
            })
        });
        g.finish();
    }
    let per_caller = 100;
    let t = rt.block_on(callers.round(&one, per_caller)).unwrap();
    let one_rate = (CALLERS * per_caller) as f64 / t.as_secs_f64();
    let st = one[0].stats().actor;
    lines.push(format!(
        "manager on etcd, 1 manager, 64 callers: {one_rate:>9.0}/s ({:.1} facts per commit, {:.0} commits/s)",
        st.facts as f64 / st.commits.max(1) as f64,
        st.commits as f64 * one_rate / st.facts.max(1) as f64
    ));

    // Three managers on one journal.
    let three = rt.block_on(loaded_managers(&etcd, "/bench3", 3, &facts));
    let mut callers = Callers::new(CALLERS, SESSIONS, workload::authorities(AUTHORITIES));
    let t = rt.block_on(callers.round(&three, per_caller)).unwrap();
    let three_rate = (CALLERS * per_caller) as f64 / t.as_secs_f64();
    let (commits, conflicts, _) = totals(&three);
    lines.push(format!(
        "manager on etcd, 3 managers, 64 callers: {three_rate:>9.0}/s total; {conflicts} conflicts in {commits} commits ({:.1}%), {:.0} commits/s across the three (the shared head's rate)",
        100.0 * conflicts as f64 / (commits + conflicts).max(1) as f64,
        commits as f64 / t.as_secs_f64()
    ));

    // Three managers again, each with 64 callers of its own (192 in all): the load of
    // three nodes that each serve their own clients, next to the 64 callers shared above.
    // Another workload, so another figure; it shows where the shared head stops scaling
    // when every manager brings full batches.
    let per_node = rt.block_on(loaded_managers(&etcd, "/bench3x64", 3, &facts));
    let mut callers = Callers::new(3 * CALLERS, SESSIONS, workload::authorities(AUTHORITIES));
    let t = rt.block_on(callers.round(&per_node, per_caller)).unwrap();
    let per_node_rate = (3 * CALLERS * per_caller) as f64 / t.as_secs_f64();
    let (commits, conflicts, facts_written) = totals(&per_node);
    lines.push(format!(
        "manager on etcd, 3 managers, 64 callers each: {per_node_rate:>6.0}/s total ({:.2}x one manager); {conflicts} conflicts in {commits} commits ({:.1}%), {:.1} facts per commit, {:.0} commits/s across the three",
        per_node_rate / one_rate,
        100.0 * conflicts as f64 / (commits + conflicts).max(1) as f64,
        facts_written as f64 / commits.max(1) as f64,
        commits as f64 / t.as_secs_f64()
    ));

    // Recovery.
    let n: usize =
        std::env::var("RECONF_BENCH_RECOVERY_FACTS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let big = setup_facts(n);
    let (load_s, recovery) = rt.block_on(async {
        let j = EtcdJournal::connect(options(&etcd, "/recovery").max_commit_bytes(1 << 20)).await.unwrap();
        let t = Instant::now();
        load(&j, &big).await;
        let load_s = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let m = open_managers(&etcd, "/recovery", 1, None).await;
        assert_eq!(m[0].stats().state.head, big.len() as u64);
        (load_s, t.elapsed())
    });
    lines.push(format!(
        "recovery of {} facts from etcd (full replay): {:.2} s (loading them took {load_s:.1} s)",
        big.len(),
        recovery.as_secs_f64()
    ));

    println!("\n== etcd journal, same run, single-member loopback etcd ==");
    for l in &lines {
        println!("{l}");
    }
    let goal = |ok: bool| if ok { "met" } else { "MISSED" };
    let r1 = one_rate / raw_seq;
    let r3 = three_rate / one_rate;
    println!("one manager / raw sequential txn:  {r1:.1}x (goal >= 20x: {})", goal(r1 >= 20.0));
    println!("one manager / raw 64 concurrent:   {:.2}x", one_rate / raw_64);
    println!("three managers / one manager:      {r3:.2}x (goal >= 0.7x: {})", goal(r3 >= 0.7));
    println!("recovery < 10 s:                   {}", goal(recovery < Duration::from_secs(10)));
    for m in one.iter().chain(&three).chain(&per_node) {
        rt.block_on(m.shutdown()).unwrap();
    }
}
