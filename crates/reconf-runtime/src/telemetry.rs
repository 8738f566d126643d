//! Recording the [`crate::metrics`] through the `metrics` facade. Without the `metrics`
//! feature every function here is empty and [`Stopwatch`] is zero-sized, so the callers
//! need no `cfg` of their own.

#[cfg(feature = "metrics")]
use crate::metrics as name;
use crate::ManagerError;
use reconf_core::StateStats;

/// Measures one duration when metrics are on; nothing otherwise.
pub(crate) struct Stopwatch {
    #[cfg(feature = "metrics")]
    started: std::time::Instant,
}

impl Stopwatch {
    pub(crate) fn start() -> Self {
        Stopwatch {
            #[cfg(feature = "metrics")]
            started: std::time::Instant::now(),
        }
    }

    /// Records the time since [`start`](Self::start) as one call of `command`.
    pub(crate) fn command(self, command: &'static str) {
        #[cfg(feature = "metrics")]
        ::metrics::histogram!(name::COMMAND_SECONDS, "command" => command).record(self.started.elapsed());
        #[cfg(not(feature = "metrics"))]
        let _ = command;
    }
}

pub(crate) fn batch(commands: usize) {
    #[cfg(feature = "metrics")]
    ::metrics::histogram!(name::BATCH_SIZE).record(commands as f64);
    #[cfg(not(feature = "metrics"))]
    let _ = commands;
}

pub(crate) fn committed(facts: usize, commit: Stopwatch) {
    #[cfg(feature = "metrics")]
    {
        ::metrics::counter!(name::JOURNAL_COMMITS).increment(1);
        ::metrics::counter!(name::JOURNAL_FACTS).increment(facts as u64);
        ::metrics::histogram!(name::COMMIT_SECONDS).record(commit.started.elapsed());
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (facts, commit);
}

pub(crate) fn conflict() {
    #[cfg(feature = "metrics")]
    ::metrics::counter!(name::JOURNAL_CONFLICTS).increment(1);
}

pub(crate) fn batch_failed() {
    #[cfg(feature = "metrics")]
    ::metrics::counter!(name::BATCHES_FAILED).increment(1);
}

/// One answered command: `delegation` says whether it was a delegation, `handoff` whether
/// a live one.
pub(crate) fn answered(delegation: bool, handoff: bool, result: Result<(), &ManagerError>) {
    #[cfg(feature = "metrics")]
    match (delegation, result) {
        (true, Ok(())) => {
            let kind = if handoff { "handoff" } else { "plain" };
            ::metrics::counter!(name::DELEGATIONS_ACCEPTED, "kind" => kind).increment(1);
        }
        (true, Err(e)) => ::metrics::counter!(name::DELEGATIONS_REJECTED, "error" => e.kind()).increment(1),
        (false, Err(e)) => ::metrics::counter!(name::COMMANDS_REJECTED, "error" => e.kind()).increment(1),
        (false, Ok(())) => {}
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (delegation, handoff, result);
}

pub(crate) fn state(stats: &StateStats, live_owners: usize) {
    #[cfg(feature = "metrics")]
    {
        ::metrics::gauge!(name::SESSIONS, "class" => "native").set(stats.native as f64);
        ::metrics::gauge!(name::SESSIONS, "class" => "delegated").set(stats.delegated as f64);
        ::metrics::gauge!(name::SESSIONS, "class" => "closed").set(stats.closed as f64);
        ::metrics::gauge!(name::LIVE_OWNERS).set(live_owners as f64);
        ::metrics::gauge!(name::JOURNAL_HEAD).set(stats.head as f64);
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (stats, live_owners);
}
