//! `reconf status`: what the journal holds.

use reconf_runtime::FootprintSummary;
use serde::Serialize;

use crate::data::{Access, Store};
use crate::error::CliError;
use crate::output;
use crate::output::say;

/// Authorities listed in the text output (JSON lists all).
const TEXT_AUTHORITIES: usize = 20;

#[derive(Debug, Serialize)]
struct Status {
    data_dir: String,
    journal: Journal,
    bundles: Vec<String>,
    links: u64,
    sessions: Sessions,
    authorities: Vec<Authority>,
    coherence: Coherence,
}

#[derive(Debug, Serialize)]
struct Journal {
    head: u64,
    size_bytes: u64,
    snapshot_sequence: Option<u64>,
    records_replayed_at_open: u64,
}

#[derive(Debug, Serialize)]
struct Sessions {
    open: u64,
    native: u64,
    delegated: u64,
    closed: u64,
}

#[derive(Debug, Serialize)]
struct Authority {
    id: String,
    native: u64,
    delegated_in: u64,
    delegated_out: u64,
    /// The footprint's order-independent digest, 16 hex digits: two journals whose
    /// authorities have equal counts and digests hold the same footprints.
    digest: String,
}

#[derive(Debug, Serialize)]
struct Coherence {
    coherent: bool,
    sessions_checked: u64,
    violations: usize,
}

fn authority(id: reconf_runtime::AuthorityId, s: FootprintSummary) -> Authority {
    Authority {
        id: id.to_string(),
        native: s.native,
        delegated_in: s.delegated_in,
        delegated_out: s.delegated_out,
        digest: format!("{:016x}", s.digest),
    }
}

pub(crate) async fn run(dir: &Store, json: bool) -> Result<(), CliError> {
    let mut status = dir
        .with_manager(Access::Inspect, async |m| {
            let stats = m.stats().state;
            let recovery = m.recovery_report();
            let mut authorities: Vec<Authority> =
                m.authority_summaries().into_iter().map(|(a, s)| authority(a, s)).collect();
            // Busiest first; ties in id order, so the listing is stable.
            authorities.sort_by(|a, b| {
                (b.native + b.delegated_in).cmp(&(a.native + a.delegated_in)).then_with(|| a.id.cmp(&b.id))
            });
            // Recovery ran the full audit on exactly this state.
            let audit = &recovery.coherence;
            Ok(Status {
                data_dir: dir.describe(),
                journal: Journal {
                    head: stats.head,
                    size_bytes: 0,
                    snapshot_sequence: recovery.snapshot_sequence,
                    records_replayed_at_open: recovery.records_replayed,
                },
                bundles: m.bundles().into_iter().map(|b| b.id.to_string()).collect(),
                links: stats.links,
                sessions: Sessions {
                    open: stats.sessions,
                    native: stats.native,
                    delegated: stats.delegated,
                    closed: stats.closed,
                },
                authorities,
                coherence: Coherence {
                    coherent: audit.is_coherent(),
                    sessions_checked: audit.sessions_checked,
                    violations: audit.violations.len(),
                },
            })
        })
        .await?;
    status.journal.size_bytes = dir.size_bytes().await?;
    if json {
        return output::print_json(&status);
    }
    print_text(&status)
}

fn print_text(s: &Status) -> Result<(), CliError> {
    let j = &s.journal;
    say!("data dir     {}", s.data_dir)?;
    let snapshot =
        j.snapshot_sequence.map_or_else(|| "no snapshot".to_owned(), |n| format!("snapshot at {n}"));
    say!("journal      head {}, {} on disk, {snapshot}", j.head, output::bytes(j.size_bytes))?;
    say!(
        "bundles      {} {}",
        s.bundles.len(),
        if s.bundles.is_empty() { String::new() } else { format!("({})", s.bundles.join(", ")) }
    )?;
    say!("links        {}", s.links)?;
    let n = &s.sessions;
    say!(
        "sessions     {} open ({} native, {} delegated), {} closed",
        n.open,
        n.native,
        n.delegated,
        n.closed
    )?;
    say!("authorities  {}", s.authorities.len())?;
    for a in s.authorities.iter().take(TEXT_AUTHORITIES) {
        say!(
            "  {}  native {:>6}  delegated-in {:>6}  delegated-out {:>6}",
            a.id,
            a.native,
            a.delegated_in,
            a.delegated_out
        )?;
    }
    if s.authorities.len() > TEXT_AUTHORITIES {
        say!("  ... and {} more (--json lists all)", s.authorities.len() - TEXT_AUTHORITIES)?;
    }
    let c = &s.coherence;
    if c.coherent {
        say!("coherence    ok: {} sessions checked", c.sessions_checked)?;
    } else {
        say!(
            "coherence    {} violation(s) in {} sessions (run `reconf verify`)",
            c.violations,
            c.sessions_checked
        )?;
    }
    Ok(())
}
