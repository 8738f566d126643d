//! `reconf simulate`: the main job.
//!
//! Opens `--sessions` fresh sessions spread over `--authorities` authorities and the
//! shipped bundles, then sends `--delegations` requests from `--concurrency` callers: plain
//! delegations, live handoffs (an owner is attached, then handed over together with the
//! delegation) and a fraction of deliberately invalid requests that must be rejected with
//! their expected typed error. Each caller owns a disjoint share of the sessions, so every
//! outcome is predictable: an invalid request accepted or a valid one rejected is counted
//! as unexpected and fails the run. Ends with the full coherence audit.

mod summary;
mod worker;

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reconf_runtime::{AuthorityId, BundleId, SessionId};
use reconf_runtime::{ReconfigurationManager, DEFAULT_MAILBOX_CAPACITY};
use tokio::task::JoinSet;

use self::summary::{PerManager, Summary};
use self::worker::{Assigned, Env, Tally};
use crate::cli::SimulateArgs;
use crate::data::{Access, Store};
use crate::error::CliError;

/// Upper bounds that keep a mistyped argument from exhausting memory.
const MAX_AUTHORITIES: usize = 1_000_000;
const MAX_SESSIONS: usize = 10_000_000;
const MAX_DELEGATIONS: usize = 1_000_000_000;
const MAX_CONCURRENCY: usize = 65_536;
const MAX_MANAGERS: usize = 64;

pub(crate) async fn run(dir: &Store, args: SimulateArgs) -> Result<(), CliError> {
    validate(&args)?;
    if let Some(addr) = args.metrics_listen {
        // Spawned on this runtime; it serves until the process exits.
        metrics_exporter_prometheus::PrometheusBuilder::new()
            .with_http_listener(addr)
            .install()
            .map_err(|e| CliError::MetricsListen { addr, reason: e.to_string() })?;
        crate::output::note!("metrics on http://{addr}/metrics");
    }
    let started = Instant::now();
    let seed = args.seed.unwrap_or_else(|| rand::rng().random());
    let mailbox = args.concurrency.min(args.sessions.max(1)).max(DEFAULT_MAILBOX_CAPACITY);
    if args.managers > 1 && !dir.is_shared() {
        return Err(CliError::InvalidArguments(
            "--managers needs --etcd: a RocksDB journal belongs to one process and one manager".to_owned(),
        ));
    }
    let mut managers = Vec::with_capacity(args.managers);
    for _ in 0..args.managers {
        managers.push(dir.open_manager(Access::Create, |b| b.mailbox_capacity(mailbox)).await?);
    }
    let result = simulate(&managers, &args, seed).await;
    let mut closed = Ok(());
    for m in &managers {
        closed = closed.and(m.shutdown().await);
    }
    let mut summary = result?;
    closed?;
    summary.data_dir = dir.describe();
    summary.journal.size_bytes = dir.size_bytes().await?;
    summary.elapsed_seconds = started.elapsed().as_secs_f64();
    summary.print(args.json)?;
    summary.verdict()
}

fn validate(a: &SimulateArgs) -> Result<(), CliError> {
    let bad = |m: String| Err(CliError::InvalidArguments(m));
    if a.authorities < 2 || a.authorities > MAX_AUTHORITIES {
        return bad(format!(
            "--authorities must be between 2 and {MAX_AUTHORITIES} (a delegation needs a receiver), got {}",
            a.authorities
        ));
    }
    for (flag, value, min, max) in [
        ("--sessions", a.sessions, 0, MAX_SESSIONS),
        ("--delegations", a.delegations, 0, MAX_DELEGATIONS),
        ("--concurrency", a.concurrency, 1, MAX_CONCURRENCY),
        ("--managers", a.managers, 1, MAX_MANAGERS),
    ] {
        if value < min || value > max {
            return bad(format!("{flag} must be between {min} and {max}, got {value}"));
        }
    }
    if a.delegations > 0 && a.sessions == 0 {
        return bad("--delegations needs at least one session (--sessions 0 given)".to_owned());
    }
    for (flag, f) in [("--invalid-fraction", a.invalid_fraction), ("--handoff-fraction", a.handoff_fraction)]
    {
        if !(0.0..=1.0).contains(&f) {
            return bad(format!("{flag} must be between 0 and 1, got {f}"));
        }
    }
    if a.invalid_fraction + a.handoff_fraction > 1.0 {
        return bad(format!(
            "--invalid-fraction + --handoff-fraction must not exceed 1, got {}",
            a.invalid_fraction + a.handoff_fraction
        ));
    }
    Ok(())
}

/// The shipped bundles the sessions run (the manager registers the linked manifests when
/// it opens), or, in a binary without manifests, whatever bundles the journal holds.
fn bundles(manager: &ReconfigurationManager) -> Result<Vec<BundleId>, CliError> {
    let mut ids: Vec<BundleId> = reconf_runtime::linked_bundles()?
        .into_iter()
        .map(|b| b.id)
        .filter(|id| manager.bundle(id).is_some())
        .collect();
    if ids.is_empty() {
        ids = manager.bundles().into_iter().map(|b| b.id).collect();
    }
    if ids.is_empty() {
        return Err(CliError::InvalidArguments(
            "no bundles are registered and this binary links no manifests".to_owned(),
        ));
    }
    Ok(ids)
}

/// A bundle id nobody registered, for the unknown-bundle requests.
fn unknown_bundle(manager: &ReconfigurationManager) -> Result<BundleId, CliError> {
    let mut n = 0u32;
    loop {
        let id = BundleId::new(format!("sim-unregistered-{n}"))
            .map_err(|source| CliError::InvalidId { flag: "(simulate)", source })?;
        if manager.bundle(&id).is_none() {
            return Ok(id);
        }
        n += 1;
    }
}

fn progress(len: usize, prefix: &'static str, hidden: bool) -> ProgressBar {
    let target = if hidden || !std::io::stderr().is_terminal() {
        ProgressDrawTarget::hidden()
    } else {
        ProgressDrawTarget::stderr()
    };
    let bar = ProgressBar::with_draw_target(Some(len as u64), target).with_prefix(prefix);
    if let Ok(style) =
        ProgressStyle::with_template("{prefix:>10} [{bar:30.cyan/blue}] {pos}/{len} {rate} eta {eta}")
    {
        let style =
            style.progress_chars("=> ").with_key("rate", |s: &ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(w, "{:.0}/s", s.per_sec());
            });
        bar.set_style(style);
    }
    bar
}

async fn join_all<T: 'static>(mut set: JoinSet<T>) -> Result<Vec<T>, CliError> {
    let mut out = Vec::with_capacity(set.len());
    while let Some(r) = set.join_next().await {
        out.push(r.map_err(|e| CliError::Simulation(format!("a caller task failed: {e}")))?);
    }
    Ok(out)
}

async fn simulate(
    managers: &[ReconfigurationManager],
    args: &SimulateArgs,
    seed: u64,
) -> Result<Summary, CliError> {
    let Some(manager) = managers.first() else {
        return Err(CliError::InvalidArguments("--managers must be at least 1".to_owned()));
    };
    // The head when the first manager opened: manifests registered count as this run's facts.
    let head_before = manager.recovery_report().head;
    for m in managers {
        // Each sees the others' registrations before choosing bundles.
        m.sync().await?;
    }
    let bundles = bundles(manager)?;
    let unknown = unknown_bundle(manager)?;
    let authorities: Vec<AuthorityId> =
        (0..args.authorities).map(|i| AuthorityId::from_label(&format!("sim-{i:03}"))).collect();
    let envs: Vec<Arc<Env>> = managers
        .iter()
        .map(|m| {
            Arc::new(Env {
                manager: m.clone(),
                authorities: authorities.clone(),
                unknown_bundle: unknown.clone(),
                bundles: bundles.clone(),
                invalid_fraction: args.invalid_fraction,
                handoff_fraction: args.handoff_fraction,
                print_acks: args.print_acks,
            })
        })
        .collect();
    let env_of = |caller: usize| Arc::clone(&envs[caller % envs.len()]);
    let callers = args.concurrency.min(args.sessions.max(1));

    // Fresh random session ids, dealt round-robin to callers, authorities and bundles.
    let mut shares: Vec<Vec<Assigned>> = (0..callers).map(|_| Vec::new()).collect();
    for k in 0..args.sessions {
        shares[k % callers].push(Assigned {
            session: SessionId::new_random(),
            bundle: bundles[k % bundles.len()].clone(),
            holder: authorities[k % authorities.len()],
        });
    }

    let bar = progress(args.sessions, "opening", args.json);
    let opening = Instant::now();
    let mut set = JoinSet::new();
    for (i, share) in shares.into_iter().enumerate() {
        set.spawn(worker::open_sessions(env_of(i), share, bar.clone()));
    }
    let mut tally = Tally::default();
    let mut shares = Vec::with_capacity(callers);
    for (share, t) in join_all(set).await? {
        tally.merge(t);
        shares.push(share);
    }
    let open_time = opening.elapsed();
    bar.finish_and_clear();

    let bar = progress(args.delegations, "delegating", args.json);
    let delegating = Instant::now();
    let mut set = JoinSet::new();
    for (i, share) in shares.into_iter().enumerate() {
        let count = args.delegations / callers + usize::from(i < args.delegations % callers);
        let rng = StdRng::seed_from_u64(seed ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let (env, bar, m) = (env_of(i), bar.clone(), i % managers.len());
        set.spawn(async move { (m, worker::delegate(env, share, count, rng, bar).await) });
    }
    let mut accepted = vec![0u64; managers.len()];
    for (m, t) in join_all(set).await? {
        accepted[m] += t.plain + t.handoffs;
        tally.merge(t);
    }
    let delegate_time = delegating.elapsed();
    bar.finish_and_clear();

    // Every manager follows the journal to its end; all must then hold the same state.
    let mut per_manager = Vec::with_capacity(managers.len());
    let mut reference = None;
    for (i, m) in managers.iter().enumerate() {
        m.sync().await?;
        let snapshot = m.state_snapshot().to_snapshot();
        match &reference {
            None => reference = Some(snapshot),
            Some(r) if *r != snapshot => {
                return Err(CliError::Simulation(format!(
                    "manager {i}'s state differs from manager 0's after both followed the journal to its end"
                )));
            }
            Some(_) => {}
        }
        per_manager.push(PerManager::new(i, accepted[i], delegate_time, &m.stats()));
    }
    let audit = manager.verify_coherence().await;
    let stats = manager.stats();
    let mut summary = Summary::new(
        args,
        seed,
        tally,
        Timings { open: open_time, delegate: delegate_time, callers },
        head_before,
        &stats,
        &audit,
    );
    summary.set_managers(per_manager);
    Ok(summary)
}

/// Wall time of the two phases, and how many callers ran them.
#[derive(Debug, Clone, Copy)]
pub(super) struct Timings {
    pub(super) open: Duration,
    pub(super) delegate: Duration,
    /// `--concurrency`, capped at the number of sessions (a caller needs sessions to own).
    pub(super) callers: usize,
}
