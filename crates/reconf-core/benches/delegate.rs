//! Cost of one delegation (check + apply) at 1e3, 1e5 and 1e6 live sessions over 64
//! authorities, next to a naive clone-and-rescan baseline measured in the same run.
//!
//! Besides criterion's own report, the run ends with a summary of ratios measured in this
//! process: per-delegation cost at each size relative to 1e3, and the naive baseline
//! relative to the indexed core.

// Test and bench code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use reconf_core::{AuthorityId, BundleId, Command, ComposedBundle, Delegation, SessionId, State};

const AUTHORITIES: usize = 64;
/// Delegations per batch in the batched rows: about what the manager's actor takes per
/// journal commit with 64 callers.
const BATCH: usize = 64;

struct Fixture {
    state: State,
    authorities: Vec<AuthorityId>,
    sessions: usize,
    bundle: BundleId,
    cursor: u64,
}

impl Fixture {
    fn new(sessions: usize) -> Self {
        let authorities: Vec<AuthorityId> =
            (0..AUTHORITIES).map(|i| AuthorityId::from_label(&format!("authority-{i}"))).collect();
        let bundle = BundleId::new("bench").unwrap();
        let mut state = State::new();
        let mut seq = 0;
        let mut run = |state: &mut State, cmd: Command| {
            let f = state.check(&cmd, 1_700_000_000_000).unwrap();
            seq += 1;
            state.apply(seq, &f);
        };
        run(&mut state, Command::RegisterBundle(ComposedBundle::new(bundle.clone())));
        for i in 0..sessions {
            run(
                &mut state,
                Command::OpenSession {
                    session: session(i),
                    authority: authorities[i % AUTHORITIES],
                    bundle: None,
                },
            );
        }
        Self { state, authorities, sessions, bundle, cursor: 0x9e37_79b9 }
    }

    /// A pseudo-randomly chosen session and a candidate receiver.
    fn pick(&mut self) -> (SessionId, usize) {
        // An LCG walk: random enough to defeat the caches the way real traffic does.
        self.cursor =
            self.cursor.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        ((session((self.cursor >> 33) as usize % self.sessions)), self.cursor as usize % AUTHORITIES)
    }

    /// The delegation of `session` from `from` to the candidate, or the next authority
    /// when the candidate is `from`.
    fn delegation(&self, session: SessionId, from: AuthorityId, to: usize) -> Delegation {
        let mut to = self.authorities[to];
        if to == from {
            to = self.authorities
                [(self.authorities.iter().position(|a| *a == from).unwrap() + 1) % AUTHORITIES];
        }
        Delegation::new(session, from, to, self.bundle.clone())
    }

    /// One delegation on its own, the way a caller makes one: ask who holds the session,
    /// check the delegation, apply it. (The driver keeps no table of its own: at a
    /// million sessions its random accesses would be timed as the core's.)
    fn delegate_once(&mut self) {
        let (s, to) = self.pick();
        let from = self.state.holder(&s).unwrap();
        let cmd = Command::Delegate(self.delegation(s, from, to));
        let fact = self.state.check(&cmd, 1_700_000_000_000).unwrap();
        let seq = self.state.head() + 1;
        black_box(self.state.apply(seq, &fact));
    }

    /// A batch of delegations the way the manager's actor runs one: prefetch the records,
    /// check in order with one checker (asking it for each holder, so a session picked
    /// twice is delegated twice), apply the facts as one batch.
    fn delegate_batch(&mut self) {
        let picks: Vec<(SessionId, usize)> = (0..BATCH).map(|_| self.pick()).collect();
        self.state.prefetch_sessions(picks.iter().map(|(s, _)| *s));
        let mut checker = self.state.checker();
        let facts: Vec<_> = picks
            .iter()
            .map(|(s, to)| {
                let from = checker.holder(s).unwrap();
                checker.check(&Command::Delegate(self.delegation(*s, from, *to)), 1_700_000_000_000).unwrap()
            })
            .collect();
        let first = self.state.head() + 1;
        black_box(self.state.apply_batch(first, &facts));
    }

    /// The design this project replaces: clone the whole state and rescan it per delegation.
    fn naive_delegate_once(&mut self) {
        let snapshot = self.state.clone();
        black_box(snapshot.full_coherence_scan());
        self.delegate_once();
    }
}

fn session(i: usize) -> SessionId {
    SessionId::from_u128(0x5e55_0000_0000_0000_0000_0000_0000_0000 | i as u128)
}

const SIZES: [usize; 3] = [1_000, 100_000, 1_000_000];

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("delegate");
    g.throughput(Throughput::Elements(1));
    g.sample_size(30).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    for n in SIZES {
        let mut fx = Fixture::new(n);
        g.bench_with_input(BenchmarkId::new("indexed", n), &n, |b, _| b.iter(|| fx.delegate_once()));
    }
    g.throughput(Throughput::Elements(BATCH as u64));
    for n in SIZES {
        let mut fx = Fixture::new(n);
        g.bench_with_input(BenchmarkId::new("indexed_batch64", n), &n, |b, _| b.iter(|| fx.delegate_batch()));
    }
    g.throughput(Throughput::Elements(1));
    let mut fx = Fixture::new(SIZES[0]);
    g.sample_size(10);
    g.bench_with_input(BenchmarkId::new("naive_clone_rescan", SIZES[0]), &SIZES[0], |b, _| {
        b.iter(|| fx.naive_delegate_once())
    });
    g.finish();
}

fn per_op(mut f: impl FnMut(), ops: u32) -> f64 {
    for _ in 0..ops / 10 {
        f();
    }
    let t = Instant::now();
    for _ in 0..ops {
        f();
    }
    t.elapsed().as_nanos() as f64 / f64::from(ops)
}

/// The memory-latency floor: one random lookup in a hash map of `n` session-sized entries
/// whose key depends on the previous lookup's result, as a delegation's chain of index
/// lookups does (independent lookups would overlap in the CPU and hide the latency).
fn probe_floor(n: usize) -> f64 {
    // A stride coprime to n walks one cycle through every entry, so the walk never settles
    // into a cache-sized loop; the hash scatters consecutive ids across the table.
    let stride = (n / 2..n).rev().find(|s| gcd(*s, n) == 1).unwrap_or(1);
    let map: std::collections::HashMap<SessionId, [u64; 3], foldhash::fast::FixedState> =
        (0..n).map(|i| (session(i), [((i + stride) % n) as u64, 0, 0])).collect();
    let mut i = 0usize;
    let ns = per_op(
        || {
            let v = map.get(&session(i)).map_or(0, |v| v[0]);
            i = v as usize % n;
        },
        400_000,
    );
    black_box(i);
    ns
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

fn summary(allocator: &str) {
    println!("\n== delegate: same-run ratios ({allocator}) ==");
    let mut base = None;
    let mut batch_base = None;
    for n in SIZES {
        let mut fx = Fixture::new(n);
        let ns = per_op(|| fx.delegate_once(), 400_000);
        let batched = per_op(|| fx.delegate_batch(), 400_000 / BATCH as u32) / BATCH as f64;
        drop(fx);
        let probe = probe_floor(n);
        let b = *base.get_or_insert(ns);
        let bb = *batch_base.get_or_insert(batched);
        println!(
            "indexed  {n:>9} sessions: {ns:>8.0} ns/delegation  ({:.2}x the 1e3 cost; as much as {:.1} dependent random probes of a {n}-entry map at {probe:.0} ns each)",
            ns / b,
            ns / probe
        );
        println!(
            "batch{BATCH}  {n:>9} sessions: {batched:>8.0} ns/delegation  ({:.2}x the batched 1e3 cost; {:.2}x the single delegation at this size)",
            batched / bb,
            batched / ns
        );
    }
    let mut fx = Fixture::new(SIZES[0]);
    let naive = per_op(|| fx.naive_delegate_once(), 2_000);
    if let Some(b) = base {
        println!(
            "naive    {:>9} sessions: {naive:>8.0} ns/delegation  ({:.0}x the indexed cost)",
            SIZES[0],
            naive / b
        );
    }
}

criterion_group!(benches, bench);

/// Set in the child process that repeats the summary with huge pages.
const HUGEPAGE_CHILD: &str = "RECONF_BENCH_HUGEPAGE_CHILD";

fn main() {
    if std::env::var_os(HUGEPAGE_CHILD).is_some() {
        summary("glibc malloc asking for transparent huge pages");
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
    summary("default allocator settings");
    // At a million sessions most of a delegation is TLB and cache misses. glibc's malloc
    // can back large tables with transparent huge pages (THP is in madvise mode on this
    // kind of machine), which only an environment variable read at start-up turns on: so
    // the same measurement runs again in a child process with it set.
    let Ok(exe) = std::env::current_exe() else { return };
    let status = std::process::Command::new(exe)
        .env(HUGEPAGE_CHILD, "1")
        .env("GLIBC_TUNABLES", "glibc.malloc.hugetlb=1")
        .status();
    if !status.as_ref().is_ok_and(|s| s.success()) {
        println!("(the huge-page run could not be made: {status:?})");
    }
}
