//! `reconf verify`: the journal's integrity, then a full replay and coherence audit.

use reconf_runtime::{CoherenceReport, State};

use crate::data::{Access, Journal, Store, Verified};
use crate::error::CliError;
use crate::output::say;

/// Violations printed before the error line.
const SHOWN_VIOLATIONS: usize = 10;

struct Checked {
    journal: Verified,
    snapshot: Option<u64>,
    state: State,
    audit: CoherenceReport,
}

pub(crate) async fn run(dir: &Store) -> Result<(), CliError> {
    let journal = dir.open_journal(Access::Inspect).await?;
    let checked = check(&journal).await;
    let closed = journal.close().await;
    let c = checked?;
    closed?;
    let hash: String = c.journal.chain_hash[..8].iter().map(|b| format!("{b:02x}")).collect();
    say!(
        "journal    ok: {} records, head {}, chain hash {hash}… (frames, checksums, hash chain)",
        c.journal.records,
        c.journal.head.unwrap_or(0)
    )?;
    match c.snapshot {
        Some(s) => say!("snapshot   latest at sequence {s}: equal to the journal replayed to that point")?,
        None => say!("snapshot   none")?,
    }
    let stats = c.state.stats();
    say!(
        "replay     {} facts -> {} open sessions, {} authorities, {} bundles",
        c.journal.records,
        stats.sessions,
        stats.authorities,
        stats.bundles
    )?;
    if c.audit.is_coherent() {
        say!("coherence  ok: {} sessions checked, 0 violations", c.audit.sessions_checked)?;
        return Ok(());
    }
    say!(
        "coherence  {} violation(s) in {} sessions checked:",
        c.audit.violations.len(),
        c.audit.sessions_checked
    )?;
    for v in c.audit.violations.iter().take(SHOWN_VIOLATIONS) {
        say!("  {v}")?;
    }
    Err(CliError::Incoherent {
        count: c.audit.violations.len(),
        first: c.audit.violations.first().map(ToString::to_string).unwrap_or_default(),
    })
}

async fn check(journal: &Journal) -> Result<Checked, CliError> {
    let report = journal.verify().await?;
    // Replays every record from the first (no snapshot shortcut), compares the newest
    // snapshot with the replay at its sequence, and audits coherence.
    let audit = reconf_runtime::audit_journal(journal.effects()).await?;
    Ok(Checked {
        journal: report,
        snapshot: audit.snapshot_checked,
        state: audit.state,
        audit: audit.coherence,
    })
}
