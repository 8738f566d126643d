//! Rebuilding the state from the journal when a manager opens.

use std::time::{Duration, Instant};

use reconf_core::{BundleId, Change, CoherenceReport, Fact, State};
use reconf_effects::{ExpectedHead, JournalEffects};
use serde::{Deserialize, Serialize};

use crate::actor::READ_PAGE;
use crate::error::{ManagerError, RecoveryError};
use crate::events;

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
    /// Upgrades found between phases and recorded as rolled back.
    pub upgrades_rolled_back: Vec<String>,
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
    loop {
        let from = state.head() + 1;
        let records = journal.read(from, READ_PAGE).await.map_err(ManagerError::Journal)?;
        if records.is_empty() {
            break;
        }
        for r in records {
            let expected = state.head() + 1;
            if r.sequence != expected {
                return Err(ManagerError::Recovery(RecoveryError::Gap { expected, found: r.sequence }));
            }
            state.apply(r.sequence, &r.fact);
            report.records_replayed += 1;
        }
    }
    report.head = state.head();
    report.coherence = state.verify_coherence();
    for v in &report.coherence.violations {
        tracing::error!(name: events::COHERENCE_VIOLATION, session = %v.session(), violation = %v);
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
/// plan), as an uncommitted release is rolled back on restart; each resolution is journaled
/// before it is applied. Runs whatever features are on: a journal written by a build with
/// the upgrade executor must recover the same way under one without it. Returns
/// `bundle/upgrade` names.
pub(crate) async fn resolve_interrupted_upgrades(
    state: &mut State,
    journal: &dyn JournalEffects,
) -> Result<Vec<String>, ManagerError> {
    let mut resolved = Vec::new();
    for fact in state.upgrades().recovery_facts() {
        let name =
            fact.artifact().map_or_else(String::new, |a| format!("{}/{}", fact.bundle(), a.upgrade_id));
        let head = state.head();
        let f = Fact::new(Change::Upgrade(fact));
        let c = journal
            .commit(vec![f.clone()], ExpectedHead::from_head((head > 0).then_some(head)))
            .await
            .map_err(|source| ManagerError::Persist { operation: "upgrade recovery", source })?;
        state.apply(c.first, &f);
        tracing::warn!(name: events::UPGRADE_ROLLED_BACK, upgrade = %name, recovered = true);
        resolved.push(name);
    }
    Ok(resolved)
}
