//! Live owners across nodes, on a single-member loopback etcd started by the bench: live
//! handoffs per second across two managers next to plain delegations in the same run (both
//! with 64 callers over the same two managers), and the time from a node's death to its
//! sessions becoming attachable on another node, as a distribution over several deaths.
//!
//! `cargo bench -p reconf-bench --bench owners`. Criterion times one 64-caller round of
//! handoffs; the summary prints both rates, their ratio, and the death-to-attachable
//! figures next to the lease TTL. `RECONF_BENCH_DEATHS` sets how many deaths are timed
//! (default 10).

// Bench code: a failed unwrap is a failed run.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use reconf_bench::workload::{self, Callers};
use reconf_runtime::crates::store_etcd::testing::EtcdCluster;
use reconf_runtime::crates::store_etcd::{EtcdJournal, EtcdJournalOptions};
use reconf_runtime::{
    AuthorityId, DelegationRequest, ExpectedHead, JournalEffects, LinkBoundary, ManagerBuilder, ManagerError,
    OwnedSession, OwnerLabel, ReconfigurationManager,
};
use tokio::runtime::Runtime;

const CALLERS: usize = 64;
/// Sessions per caller that carry a live owner (the handoff workload).
const OWNED_PER_CALLER: usize = 4;
/// Sessions for the plain delegations, after the owned ones.
const PLAIN: usize = 64 * 64;
const AUTHORITIES: usize = 16;

fn options(etcd: &EtcdCluster, prefix: &str, node: &str, ttl: u64) -> EtcdJournalOptions {
    EtcdJournalOptions::new(etcd.endpoints()).prefix(prefix).node(node).lease_ttl(Duration::from_secs(ttl))
}

async fn open(etcd: &EtcdCluster, prefix: &str, node: &str, ttl: u64) -> ReconfigurationManager {
    ManagerBuilder::new()
        .etcd_journal(options(etcd, prefix, node, ttl))
        .mailbox_capacity(2 * CALLERS)
        .without_manifests()
        .snapshot_interval(None)
        .open()
        .await
        .unwrap()
}

/// One caller's live sessions: the handle of each and its holder.
struct Owned {
    handles: Vec<OwnedSession>,
    holders: Vec<usize>,
    step: usize,
}

/// Every caller hands each of its sessions on in turn, `per_caller` times, through the
/// manager that owns them; returns the round's wall time.
async fn handoff_round(
    managers: &[ReconfigurationManager],
    owned: &mut Vec<Owned>,
    authorities: &[AuthorityId],
    per_caller: usize,
) -> Result<Duration, ManagerError> {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (c, mut mine) in std::mem::take(owned).into_iter().enumerate() {
        let m = managers[c % managers.len()].clone();
        let authorities = authorities.to_vec();
        tasks.push(tokio::spawn(async move {
            for _ in 0..per_caller {
                let k = mine.step % mine.handles.len();
                let (from, to) = (mine.holders[k], (mine.holders[k] + 1) % authorities.len());
                let h = &mine.handles[k];
                let request = DelegationRequest::new(
                    h.session(),
                    authorities[from],
                    authorities[to],
                    workload::bundle(),
                );
                let next = OwnerLabel::new(format!("c{c}-{}", mine.step)).unwrap();
                let out = m.delegate_active_session(h, request, next).await?;
                mine.handles[k] = out.owned;
                mine.holders[k] = to;
                mine.step += 1;
            }
            Ok::<_, ManagerError>(mine)
        }));
    }
    for t in tasks {
        owned.push(t.await.map_err(|_| ManagerError::Stopped)??);
    }
    Ok(started.elapsed())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() {
    let rt = Runtime::new().unwrap();
    let mut criterion =
        Criterion::default().configure_from_args().sample_size(10).warm_up_time(Duration::from_secs(1));
    let etcd = EtcdCluster::start(1);
    let authorities = workload::authorities(AUTHORITIES);
    let owned_sessions = CALLERS * OWNED_PER_CALLER;
    let total = owned_sessions + PLAIN;

    // Two managers (nodes) on one journal; caller c's live sessions are attached on
    // manager c % 2, so both nodes hand off concurrently.
    let (managers, mut owned) = rt.block_on(async {
        let facts = workload::setup_facts(total, &authorities).unwrap();
        let j = EtcdJournal::connect(options(&etcd, "/owners", "loader", 10)).await.unwrap();
        for chunk in facts.chunks(4_000) {
            j.commit(chunk.to_vec(), ExpectedHead::Any).await.unwrap();
        }
        let managers =
            vec![open(&etcd, "/owners", "node-a", 10).await, open(&etcd, "/owners", "node-b", 10).await];
        for m in &managers {
            m.sync().await.unwrap();
        }
        let boundary = LinkBoundary::for_bundle(&workload::bundle());
        let mut owned = Vec::new();
        for c in 0..CALLERS {
            let m = &managers[c % 2];
            let mut mine = Owned { handles: Vec::new(), holders: Vec::new(), step: 0 };
            for k in 0..OWNED_PER_CALLER {
                let i = PLAIN + c + k * CALLERS;
                let owner = OwnerLabel::new(format!("c{c}-start")).unwrap();
                mine.handles
                    .push(m.attach_owner(workload::session(i), owner, boundary.clone()).await.unwrap());
                mine.holders.push(i % AUTHORITIES);
            }
            owned.push(mine);
        }
        (managers, owned)
    });

    {
        let mut g = criterion.benchmark_group("etcd_owners");
        let per_caller = 10;
        g.throughput(Throughput::Elements((CALLERS * per_caller) as u64));
        g.measurement_time(Duration::from_secs(10));
        g.bench_function("handoffs_two_managers_64_callers", |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| {
                        rt.block_on(handoff_round(&managers, &mut owned, &authorities, per_caller)).unwrap()
                    })
                    .sum()
            })
        });
        g.finish();
    }

    // The two workloads in turn, same managers, same callers, three rounds each; the best
    // round of each is compared (the loopback etcd's rate moves with the machine).
    let per_caller = 40;
    let mut plain = Callers::new(CALLERS, PLAIN, authorities.clone());
    let (mut best_plain, mut best_handoff) = (0.0f64, 0.0f64);
    for _ in 0..3 {
        let t = rt.block_on(plain.round(&managers, per_caller)).unwrap();
        best_plain = best_plain.max((CALLERS * per_caller) as f64 / t.as_secs_f64());
        let t = rt.block_on(handoff_round(&managers, &mut owned, &authorities, per_caller)).unwrap();
        best_handoff = best_handoff.max((CALLERS * per_caller) as f64 / t.as_secs_f64());
    }
    let stats: Vec<_> = managers.iter().map(|m| m.stats().actor).collect();

    // Death to attachable: a node with a 1 s lease attaches 4 sessions and dies without a
    // word (its manager dropped: no renewal, no revoke); the other node tries to attach them
    // every 5 ms. Each death uses fresh sessions.
    let deaths: usize = std::env::var("RECONF_BENCH_DEATHS").ok().and_then(|v| v.parse().ok()).unwrap_or(10);
    let ttl = 1;
    let mut freed = Vec::new();
    rt.block_on(async {
        let boundary = LinkBoundary::for_bundle(&workload::bundle());
        for d in 0..deaths {
            let victim = open(&etcd, "/owners", &format!("victim-{d}"), ttl).await;
            victim.sync().await.unwrap();
            let sessions: Vec<_> = (0..4).map(|k| workload::session(d * 4 + k)).collect();
            for s in &sessions {
                victim.attach_owner(*s, OwnerLabel::new("doomed").unwrap(), boundary.clone()).await.unwrap();
            }
            managers[0].sync().await.unwrap();
            let died = Instant::now();
            drop(victim);
            let mut left = sessions.clone();
            while !left.is_empty() {
                assert!(died.elapsed() < Duration::from_secs(30), "a dead node's sessions never freed");
                let mut still = Vec::new();
                for s in left {
                    match managers[0]
                        .attach_owner(s, OwnerLabel::new("heir").unwrap(), boundary.clone())
                        .await
                    {
                        Ok(h) => {
                            freed.push(died.elapsed());
                            managers[0].detach_owner(&h).await.ok();
                        }
                        Err(_) => still.push(s),
                    }
                }
                left = still;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    });
    freed.sort();

    println!("\n== live owners on etcd, same run, single-member loopback etcd, 2 managers, 64 callers ==");
    println!("plain delegations (best of 3 rounds):  {best_plain:>8.0}/s");
    println!("live handoffs (best of 3 rounds):      {best_handoff:>8.0}/s");
    println!("handoffs / plain delegations:          {:.2}x", best_handoff / best_plain);
    for (m, s) in stats.iter().enumerate() {
        println!(
            "  manager {m}: {} commits, {} facts ({:.1} per commit), {} conflicts, {} fenced",
            s.commits,
            s.facts,
            s.facts as f64 / s.commits.max(1) as f64,
            s.conflicts,
            s.fenced
        );
    }
    if !freed.is_empty() {
        println!(
            "death to attachable elsewhere ({} sessions of {deaths} deaths, lease TTL {ttl} s): min {:?}, median {:?}, p90 {:?}, max {:?}",
            freed.len(),
            freed[0],
            percentile(&freed, 0.5),
            percentile(&freed, 0.9),
            freed[freed.len() - 1]
        );
    }
    for m in &managers {
        rt.block_on(m.shutdown()).unwrap();
    }
}
