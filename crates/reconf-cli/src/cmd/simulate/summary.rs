//! The end-of-run summary, as text or one JSON object.

use reconf_runtime::CoherenceReport;
use reconf_runtime::ManagerStats;
use serde::Serialize;

use super::worker::{Invalid, Tally};
use super::Timings;
use crate::cli::SimulateArgs;
use crate::error::CliError;
use crate::output::{self, say};

/// Unexpected outcomes and violations quoted in the summary.
const QUOTED: usize = 5;

#[derive(Debug, Serialize)]
pub(super) struct Summary {
    pub(super) ok: bool,
    pub(super) seed: u64,
    pub(super) data_dir: String,
    pub(super) config: Config,
    pub(super) open: Open,
    pub(super) delegation: Delegation,
    pub(super) journal: Journal,
    pub(super) live_owners: u64,
    pub(super) state: State,
    pub(super) coherence: Coherence,
    /// One entry per manager that shared the journal in this run.
    pub(super) managers: Vec<PerManager>,
    pub(super) elapsed_seconds: f64,
}

/// One manager's share of a run with several on one journal.
#[derive(Debug, Serialize)]
pub(super) struct PerManager {
    index: usize,
    accepted: u64,
    delegations_per_second: f64,
    group_commits: u64,
    conflicts: u64,
    followed: u64,
}

impl PerManager {
    pub(super) fn new(
        index: usize,
        accepted: u64,
        delegating: std::time::Duration,
        stats: &ManagerStats,
    ) -> Self {
        Self {
            index,
            accepted,
            delegations_per_second: per_second(accepted, delegating.as_secs_f64()),
            group_commits: stats.actor.commits,
            conflicts: stats.actor.conflicts,
            followed: stats.actor.followed,
        }
    }
}

#[derive(Debug, Serialize)]
pub(super) struct Config {
    sessions: usize,
    authorities: usize,
    delegations: usize,
    concurrency: usize,
    invalid_fraction: f64,
    handoff_fraction: f64,
}

#[derive(Debug, Serialize)]
pub(super) struct Open {
    sessions: u64,
    seconds: f64,
    per_second: f64,
}

#[derive(Debug, Serialize)]
pub(super) struct Delegation {
    callers: usize,
    requests: u64,
    accepted: u64,
    plain: u64,
    live_handoffs: u64,
    rejected_as_expected: Rejected,
    unexpected: u64,
    unexpected_examples: Vec<String>,
    seconds: f64,
    delegations_per_second: f64,
    requests_per_second: f64,
    latency_ms: Latency,
}

#[derive(Debug, Serialize)]
pub(super) struct Rejected {
    total: u64,
    wrong_holder: u64,
    self_delegation: u64,
    unknown_bundle: u64,
    bad_boundary: u64,
}

#[derive(Debug, Serialize)]
pub(super) struct Latency {
    p50: f64,
    p99: f64,
    max: f64,
}

#[derive(Debug, Serialize)]
pub(super) struct Journal {
    pub(super) head: u64,
    pub(super) facts_this_run: u64,
    pub(super) group_commits: u64,
    pub(super) size_bytes: u64,
}

#[derive(Debug, Serialize)]
pub(super) struct State {
    sessions: u64,
    native: u64,
    delegated: u64,
    closed: u64,
    authorities: u64,
    bundles: u64,
}

#[derive(Debug, Serialize)]
pub(super) struct Coherence {
    coherent: bool,
    sessions_checked: u64,
    violations: usize,
    first_violations: Vec<String>,
}

/// Nearest-rank percentile of sorted samples, in milliseconds.
fn percentile_ms(sorted_us: &[u64], q: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted_us.len() as f64).ceil() as usize;
    sorted_us[rank.clamp(1, sorted_us.len()) - 1] as f64 / 1000.0
}

fn per_second(n: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        n as f64 / seconds
    } else {
        0.0
    }
}

impl Summary {
    pub(super) fn new(
        args: &SimulateArgs,
        seed: u64,
        mut tally: Tally,
        t: Timings,
        head_before: u64,
        stats: &ManagerStats,
        audit: &CoherenceReport,
    ) -> Self {
        tally.latencies_us.sort_unstable();
        let lat = &tally.latencies_us;
        let r = |k: Invalid| tally.rejected[k as usize];
        let rejected = Rejected {
            total: tally.rejected.iter().sum(),
            wrong_holder: r(Invalid::WrongHolder),
            self_delegation: r(Invalid::SelfDelegation),
            unknown_bundle: r(Invalid::UnknownBundle),
            bad_boundary: r(Invalid::BadBoundary),
        };
        let accepted = tally.plain + tally.handoffs;
        let delegate_s = t.delegate.as_secs_f64();
        let open_s = t.open.as_secs_f64();
        let requests = lat.len() as u64;
        Self {
            ok: tally.unexpected == 0 && audit.is_coherent(),
            seed,
            data_dir: String::new(),
            config: Config {
                sessions: args.sessions,
                authorities: args.authorities,
                delegations: args.delegations,
                concurrency: args.concurrency,
                invalid_fraction: args.invalid_fraction,
                handoff_fraction: args.handoff_fraction,
            },
            open: Open {
                sessions: tally.opened,
                seconds: open_s,
                per_second: per_second(tally.opened, open_s),
            },
            delegation: Delegation {
                callers: t.callers,
                requests,
                accepted,
                plain: tally.plain,
                live_handoffs: tally.handoffs,
                rejected_as_expected: rejected,
                unexpected: tally.unexpected,
                unexpected_examples: tally.examples.iter().take(QUOTED).cloned().collect(),
                seconds: delegate_s,
                delegations_per_second: per_second(accepted, delegate_s),
                requests_per_second: per_second(requests, delegate_s),
                latency_ms: Latency {
                    p50: percentile_ms(lat, 0.50),
                    p99: percentile_ms(lat, 0.99),
                    max: lat.last().map_or(0.0, |m| *m as f64 / 1000.0),
                },
            },
            journal: Journal {
                head: stats.state.head,
                facts_this_run: stats.state.head.saturating_sub(head_before),
                group_commits: stats.actor.commits,
                size_bytes: 0,
            },
            live_owners: stats.live_sessions,
            state: State {
                sessions: stats.state.sessions,
                native: stats.state.native,
                delegated: stats.state.delegated,
                closed: stats.state.closed,
                authorities: stats.state.authorities,
                bundles: stats.state.bundles,
            },
            coherence: Coherence {
                coherent: audit.is_coherent(),
                sessions_checked: audit.sessions_checked,
                violations: audit.violations.len(),
                first_violations: audit.violations.iter().take(QUOTED).map(ToString::to_string).collect(),
            },
            managers: Vec::new(),
            elapsed_seconds: 0.0,
        }
    }

    /// Records each manager's share; the journal's commits are everyone's.
    pub(super) fn set_managers(&mut self, managers: Vec<PerManager>) {
        self.journal.group_commits = managers.iter().map(|m| m.group_commits).sum();
        self.managers = managers;
    }

    pub(super) fn print(&self, json: bool) -> Result<(), CliError> {
        if json {
            return output::print_json(self);
        }
        let c = &self.config;
        let d = &self.delegation;
        let x = &d.rejected_as_expected;
        let j = &self.journal;
        let s = &self.state;
        say!("reconf simulate: seed {}, journal {}", self.seed, self.data_dir)?;
        say!(
            "  sessions opened   {} over {} authorities in {:.2} s ({:.0}/s)",
            self.open.sessions,
            c.authorities,
            self.open.seconds,
            self.open.per_second
        )?;
        say!("  delegations       {} requests from {} callers in {:.2} s", d.requests, d.callers, d.seconds)?;
        say!("    accepted        {} ({} plain, {} live handoffs)", d.accepted, d.plain, d.live_handoffs)?;
        say!(
            "    rejected        {} as expected: wrong holder {}, self-delegation {}, unknown bundle {}, bad boundary {}",
            x.total,
            x.wrong_holder,
            x.self_delegation,
            x.unknown_bundle,
            x.bad_boundary
        )?;
        say!("    unexpected      {}", d.unexpected)?;
        for e in &d.unexpected_examples {
            say!("      {e}")?;
        }
        say!(
            "  throughput        {:.0} delegations/s ({:.0} requests/s)",
            d.delegations_per_second,
            d.requests_per_second
        )?;
        say!(
            "  latency           p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            d.latency_ms.p50,
            d.latency_ms.p99,
            d.latency_ms.max
        )?;
        say!(
            "  journal           head {}, {} facts this run in {} group commits, {} on disk",
            j.head,
            j.facts_this_run,
            j.group_commits,
            output::bytes(j.size_bytes)
        )?;
        if self.managers.len() > 1 {
            for m in &self.managers {
                say!(
                    "  manager {:<9} {} accepted ({:.0}/s), {} group commits, {} conflicts, {} records followed",
                    m.index,
                    m.accepted,
                    m.delegations_per_second,
                    m.group_commits,
                    m.conflicts,
                    m.followed
                )?;
            }
        }
        say!("  live owners       {}", self.live_owners)?;
        say!(
            "  state             {} open sessions ({} native, {} delegated, {} closed), {} authorities, {} bundles",
            s.sessions,
            s.native,
            s.delegated,
            s.closed,
            s.authorities,
            s.bundles
        )?;
        let coh = &self.coherence;
        if coh.coherent {
            say!("  coherence         ok: {} sessions checked, 0 violations", coh.sessions_checked)?;
        } else {
            say!(
                "  coherence         {} violation(s) in {} sessions checked",
                coh.violations,
                coh.sessions_checked
            )?;
            for v in &coh.first_violations {
                say!("      {v}")?;
            }
        }
        say!("  total time        {:.2} s", self.elapsed_seconds)
    }

    /// The run's exit status: unexpected outcomes or an incoherent state fail it.
    pub(super) fn verdict(&self) -> Result<(), CliError> {
        if !self.coherence.coherent {
            return Err(CliError::Incoherent {
                count: self.coherence.violations,
                first: self.coherence.first_violations.first().cloned().unwrap_or_default(),
            });
        }
        if self.delegation.unexpected > 0 {
            return Err(CliError::Simulation(format!(
                "{} unexpected outcome(s); first: {}",
                self.delegation.unexpected,
                self.delegation.unexpected_examples.first().map_or("", String::as_str)
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::percentile_ms;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u64> = (1..=100).map(|i| i * 1000).collect();
        assert_eq!(percentile_ms(&v, 0.50), 50.0);
        assert_eq!(percentile_ms(&v, 0.99), 99.0);
        assert_eq!(percentile_ms(&[7000], 0.99), 7.0);
        assert_eq!(percentile_ms(&[], 0.5), 0.0);
    }
}
