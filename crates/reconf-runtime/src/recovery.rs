//! Rebuilding the state from the journal when a manager opens.

use std::time::{Duration, Instant};

use reconf_core::upgrade::{UpgradeFact, UpgradeId};
use reconf_core::{BundleId, Change, CoherenceReport, Fact, State};
use reconf_effects::JournalEffects;
use serde::{Deserialize, Serialize};

use crate::commit;
use crate::error::{ManagerError, RecoveryError};
use crate::events;
use crate::replay::replay;

/// What `open` found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoveryReport {
    /// The snapshot recovery started from, if one was usable.
    pub snapshot_sequence: Option<u64>,
    /// Records replayed after the snapshot.
    pub records_replayed: u64,
    /// The journal head after recovery.
    pub head: u64,
    /// Wall time taken to rebuild the state.
    pub duration: Duration,
    /// The full coherence audit of the recovered state.
    pub coherence: CoherenceReport,
    /// Generated manifest bundles registered by this open (empty when they already were).
    pub manifests_registered: Vec<BundleId>,
    /// Upgrades found between phases and recorded as rolled back: (bundle, upgrade).
    pub upgrades_rolled_back: Vec<(BundleId, UpgradeId)>,
}

/// Loads the newest usable snapshot, replays the records after it and audits the result.
pub(crate) async fn recover(journal: &dyn JournalEffects) -> Result<(State, RecoveryReport), ManagerError> {
    let started = Instant::now();
    let mut report = RecoveryReport::default();
    let mut state = match journal.latest_snapshot().await.map_err(ManagerError::Journal)? {
        Some(snap) => match postcard::from_bytes::<State>(&snap.bytes) {
            Ok(s) if s.head() == snap.sequence => {
                report.snapshot_sequence = Some(snap.sequence);
                s
            }
            // An unreadable snapshot costs time, not data: the journal holds every record.
            Ok(_) | Err(_) => {
                tracing::warn!(name: events::SNAPSHOT_FAILED, sequence = snap.sequence, "snapshot unusable; replaying the whole journal");
                State::new()
            }
        },
        None => State::new(),
    };
    // Each contiguous page is applied as one batch, so its record lookups overlap.
    report.records_replayed = replay(journal, state.head() + 1, |first, facts| {
        state.apply_batch(first, &facts);
        Ok(())
    })
    .await?;
    report.head = state.head();
    report.coherence = state.verify_coherence();
    for v in &report.coherence.violations {
        tracing::error!(name: events::COHERENCE_VIOLATION, session = ?v.session(), violation = %v);
    }
    report.duration = started.elapsed();
    tracing::info!(
        name: events::RECOVERY_COMPLETED,
        head = report.head,
        snapshot = ?report.snapshot_sequence,
        replayed = report.records_replayed,
        millis = report.duration.as_millis() as u64,
        violations = report.coherence.violations.len()
    );
    Ok((state, report))
}

/// Records every upgrade left between phases as rolled back (or failed, for an invalid
/// plan), as an uncommitted release is rolled back on restart; each resolution goes
/// through the one commit path and is applied once durable. Runs whatever features are on:
/// a journal written by a build with the upgrade executor must recover the same way under
/// one without it.
pub(crate) async fn resolve_interrupted_upgrades(
    state: &mut State,
    journal: &dyn JournalEffects,
) -> Result<Vec<(BundleId, UpgradeId)>, ManagerError> {
    let mut resolved = Vec::new();
    for fact in state.upgrades().recovery_facts() {
        let name = upgrade_of(&fact);
        let facts = [Fact::new(Change::Upgrade(fact))];
        let head = state.head();
        let first = commit::commit(journal, head, &facts)
            .await
            .map_err(|failure| ManagerError::Persist {
                operation: "upgrade recovery",
                source: failure.into_error(head),
            })?
            .first;
        state.apply_batch(first, &facts);
        if let Some((bundle, upgrade)) = name {
            tracing::warn!(name: events::UPGRADE_ROLLED_BACK, bundle = %bundle, upgrade = %upgrade, recovered = true);
            resolved.push((bundle, upgrade));
        }
    }
    Ok(resolved)
}

fn upgrade_of(fact: &UpgradeFact) -> Option<(BundleId, UpgradeId)> {
    fact.artifact().map(|a| (fact.bundle().clone(), a.upgrade_id.clone()))
}

/// What [`audit_journal`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalAudit {
    /// The state rebuilt from record 1 to the head, ignoring snapshots.
    pub state: State,
    /// Records replayed.
    pub records: u64,
    /// The newest snapshot's sequence, checked equal to the replay at that point.
    pub snapshot_checked: Option<u64>,
    /// The full coherence audit of the replayed state.
    pub coherence: CoherenceReport,
}

/// The strictest offline check of a journal: replays every record from the first (no
/// snapshot shortcut), checks there is no gap and the replay reaches the head, checks the
/// newest snapshot equals the replayed state at its sequence, and audits coherence.
/// Backend-level integrity (checksums, hash chain) is the backend's own `verify`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), reconf_runtime::ManagerError> {
/// use reconf_effects::MemoryJournal;
/// let audit = reconf_runtime::audit_journal(&MemoryJournal::new()).await?;
/// assert_eq!(audit.records, 0);
/// assert!(audit.coherence.is_coherent());
/// # Ok(()) }
/// ```
pub async fn audit_journal(journal: &dyn JournalEffects) -> Result<JournalAudit, ManagerError> {
    let snapshot = journal.latest_snapshot().await.map_err(ManagerError::Journal)?;
    let expected_snapshot = match &snapshot {
        Some(s) => Some((
            s.sequence,
            postcard::from_bytes::<State>(&s.bytes).map_err(|e| {
                ManagerError::Recovery(RecoveryError::SnapshotUndecodable {
                    sequence: s.sequence,
                    reason: e.to_string(),
                })
            })?,
        )),
        None => None,
    };
    let head = journal.head().await.map_err(ManagerError::Journal)?.unwrap_or(0);
    let mut state = State::new();
    let mut snapshot_checked = None;
    let records = replay(journal, 1, |first, facts| {
        for (sequence, fact) in (first..).zip(&facts) {
            state.apply(sequence, fact);
            if let Some((seq, snap)) = &expected_snapshot {
                if *seq == sequence {
                    if snap != &state {
                        return Err(ManagerError::Recovery(RecoveryError::SnapshotMismatch {
                            sequence: *seq,
                        }));
                    }
                    snapshot_checked = Some(*seq);
                }
            }
        }
        Ok(())
    })
    .await?;
    if state.head() != head {
        return Err(ManagerError::Recovery(RecoveryError::ShortReplay { ended: state.head(), head }));
    }
    let coherence = state.verify_coherence();
    Ok(JournalAudit { state, records, snapshot_checked, coherence })
}
