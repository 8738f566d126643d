//! Durable journal commits against raw RocksDB synced writes of the same record size, in
//! one process, with 1 writer and with 64 concurrent writers.
//!
//! `cargo bench -p reconf-bench --bench journal`.
//!
//! Baselines (same column-family options as the journal: LZ4 records CF, synced writes,
//! random record bytes of the journal's frame size):
//! - `raw_synced_put`, 1 writer: one `WriteBatch` holding one record, written with
//!   `sync = true` — the floor for a single acknowledged append.
//! - `raw_synced_put`, 64 writers: 64 OS threads each writing its own single-record synced
//!   `WriteBatch`. RocksDB's write-group machinery merges concurrent writes into one WAL
//!   write and one sync per group, so this is RocksDB's own group commit at the same
//!   concurrency: the fair comparison for the journal's group commit.
//! - `raw_batched_64`, informational: one thread writing 64 records per synced batch, the
//!   ideal of perfect batching without any coordination cost.
//!
//! Criterion prints its timings per case. Because a synced write's latency drifts a lot
//! over time on most disks, the journal/raw ratios are then measured separately, in
//! interleaved rounds (raw and journal alternate, order swapped each round), and printed
//! at the end.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, Throughput};
use reconf_bench::{record_len, sample_fact, RawRocks};
use reconf_runtime::{ExpectedHead, Fact, JournalEffects, RocksJournal, RocksJournalOptions};
use tokio::runtime::Runtime;

const WRITERS: u64 = 64;

struct Bench {
    runtime: Runtime,
    journal: Arc<RocksJournal>,
    fact: Fact,
    raw: RawRocks,
    _dir: tempfile::TempDir,
}

impl Bench {
    fn new() -> Self {
        let runtime =
            tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let fact = sample_fact();
        let len = record_len(&fact);
        eprintln!("record size: {len} bytes (frame header and the fact)");
        let dir = tempfile::tempdir().unwrap();
        let journal = Arc::new(RocksJournal::open(dir.path(), RocksJournalOptions::default()).unwrap());
        Self { runtime, journal, fact, raw: RawRocks::new(len).unwrap(), _dir: dir }
    }

    fn raw_one(&self, ops: u64) -> Duration {
        self.raw.one_writer(ops).unwrap()
    }

    fn journal_one(&self, ops: u64) -> Duration {
        self.runtime.block_on(async {
            let start = std::time::Instant::now();
            for _ in 0..ops {
                self.journal.commit(vec![self.fact.clone()], ExpectedHead::Any).await.unwrap();
            }
            start.elapsed()
        })
    }

    /// `per` synced single-record writes from each of 64 threads.
    fn raw_many(&self, per: u64) -> Duration {
        self.raw.many_writers(WRITERS, per).unwrap()
    }

    /// `per` single-fact commits from each of 64 tasks.
    fn journal_many(&self, per: u64) -> Duration {
        self.runtime.block_on(async {
            let start = std::time::Instant::now();
            let mut tasks = tokio::task::JoinSet::new();
            for _ in 0..WRITERS {
                let (journal, fact) = (Arc::clone(&self.journal), self.fact.clone());
                tasks.spawn(async move {
                    for _ in 0..per {
                        journal.commit(vec![fact.clone()], ExpectedHead::Any).await.unwrap();
                    }
                });
            }
            while let Some(done) = tasks.join_next().await {
                done.unwrap();
            }
            start.elapsed()
        })
    }

    /// `per` synced batches of 64 records from one thread.
    fn raw_batched(&self, per: u64) -> Duration {
        self.raw.batched(WRITERS as usize, per).unwrap()
    }
}

/// Runs `f` for `per` rounds of 64 operations covering at least `iters`, and returns the
/// time criterion should see for exactly `iters`.
fn per_writer(iters: u64, f: impl FnOnce(u64) -> Duration) -> Duration {
    let per = iters.div_ceil(WRITERS).max(1);
    f(per).mul_f64(iters as f64 / (per * WRITERS) as f64)
}

fn criterion_benches(c: &mut Criterion, b: &Bench) {
    let mut one = c.benchmark_group("one_writer");
    one.throughput(Throughput::Elements(1));
    one.bench_function("raw_synced_put", |bench| bench.iter_custom(|iters| b.raw_one(iters)));
    one.bench_function("journal_commit", |bench| bench.iter_custom(|iters| b.journal_one(iters)));
    one.finish();

    let mut many = c.benchmark_group("64_writers");
    many.throughput(Throughput::Elements(1));
    many.bench_function("raw_synced_put", |bench| {
        bench.iter_custom(|iters| per_writer(iters, |per| b.raw_many(per)))
    });
    many.bench_function("journal_commit", |bench| {
        bench.iter_custom(|iters| per_writer(iters, |per| b.journal_many(per)))
    });
    many.bench_function("raw_batched_64", |bench| {
        bench.iter_custom(|iters| per_writer(iters, |per| b.raw_batched(per)))
    });
    many.finish();
}

/// Alternates `raw` and `journal` for `rounds` rounds (swapping which goes first) and
/// returns their summed times.
fn paired(rounds: u32, raw: impl Fn() -> Duration, journal: impl Fn() -> Duration) -> (Duration, Duration) {
    let (mut r, mut j) = (Duration::ZERO, Duration::ZERO);
    for round in 0..rounds {
        if round % 2 == 0 {
            r += raw();
            j += journal();
        } else {
            j += journal();
            r += raw();
        }
    }
    (r, j)
}

fn ratios(b: &Bench) {
    const ROUNDS: u32 = 20;
    const ONE_OPS: u64 = 100;
    const MANY_PER: u64 = 50;
    println!("\n== journal vs raw RocksDB, interleaved in {ROUNDS} rounds, same process ==");

    let ops = u64::from(ROUNDS) * ONE_OPS;
    let (raw, journal) = paired(ROUNDS, || b.raw_one(ONE_OPS), || b.journal_one(ONE_OPS));
    let (raw_us, journal_us) =
        (raw.as_secs_f64() * 1e6 / ops as f64, journal.as_secs_f64() * 1e6 / ops as f64);
    let ratio = journal_us / raw_us;
    println!(
        "1 writer, {ops} ops each: journal {journal_us:.1} µs/commit vs raw synced put {raw_us:.1} µs/put = {ratio:.3}x latency ({} the <= 1.5x goal)",
        if ratio <= 1.5 { "meets" } else { "MISSES" }
    );

    let ops = u64::from(ROUNDS) * MANY_PER * WRITERS;
    let (raw, journal) = paired(ROUNDS, || b.raw_many(MANY_PER), || b.journal_many(MANY_PER));
    let (raw_tp, journal_tp) = (ops as f64 / raw.as_secs_f64(), ops as f64 / journal.as_secs_f64());
    let ratio = journal_tp / raw_tp;
    println!(
        "64 writers, {ops} ops each: journal {journal_tp:.0} commits/s vs raw group commit {raw_tp:.0} puts/s = {ratio:.3}x throughput ({} the >= 0.8x goal)",
        if ratio >= 0.8 { "meets" } else { "MISSES" }
    );

    let (batched, journal) = paired(ROUNDS, || b.raw_batched(MANY_PER), || b.journal_many(MANY_PER));
    let (batched_tp, journal_tp) = (ops as f64 / batched.as_secs_f64(), ops as f64 / journal.as_secs_f64());
    println!(
        "64 writers vs ideal batching (one thread, 64 records per sync): journal {journal_tp:.0}/s vs {batched_tp:.0}/s = {:.2}x",
        journal_tp / batched_tp
    );
}

fn main() {
    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .configure_from_args();
    let bench = Bench::new();
    criterion_benches(&mut c, &bench);
    c.final_summary();
    ratios(&bench);
}
