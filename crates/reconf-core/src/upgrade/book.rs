//! The upgrade book: every bundle's membership and upgrade executions, as a pure state
//! machine. Checks read the book and return the facts to write (or a typed error); facts
//! change the book only through [`UpgradeBook::apply`], once they are durable.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ids::BundleId;

use super::error::UpgradeError;
use super::names::{Member, UpgradeId};
use super::snapshot::{MembershipCause, MembershipEvent, UpgradeExecution, UpgradeSnapshot, FIRST_EPOCH};
use super::types::{
    Begin, PhaseArtifact, RollbackCause, RuntimeUpgradeRequest, UpgradeApplied, UpgradeFact, UpgradePhase,
    UpgradeStep, UPGRADE_SCHEMA_VERSION,
};
use super::validation::validate;

/// One bundle's state: its snapshot form plus an index of finished executions by id.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    snap: UpgradeSnapshot,
    // Derived from `snap.executions`, so equal snapshots give equal indexes.
    recorded: BTreeMap<UpgradeId, usize>,
}

impl Entry {
    fn new(snap: UpgradeSnapshot) -> Self {
        let recorded = snap.executions.iter().enumerate().map(|(i, x)| (x.upgrade_id.clone(), i)).collect();
        Self { snap, recorded }
    }

    fn finished(&self, upgrade_id: &UpgradeId) -> Option<&UpgradeExecution> {
        self.recorded.get(upgrade_id).and_then(|&i| self.snap.executions.get(i))
    }

    fn finish(&mut self) {
        if let Some(x) = self.snap.in_flight.take() {
            self.recorded.insert(x.upgrade_id.clone(), self.snap.executions.len());
            self.snap.executions.push(x);
        }
    }
}

/// The membership events a committed cutover of `steps` records, from `epoch` and
/// `members`: one per step. `None` when a step is empty, there are no steps, or the epoch
/// would overflow, none of which a checked upgrade can reach.
fn cutover_events(
    epoch: u64,
    members: &BTreeSet<Member>,
    upgrade_id: &UpgradeId,
    steps: &[UpgradeStep],
) -> Option<Vec<MembershipEvent>> {
    if steps.is_empty() {
        return None;
    }
    let mut events = Vec::with_capacity(steps.len());
    let mut epoch = epoch;
    let mut previous = members.clone();
    for step in steps {
        let next = step.members();
        if next.is_empty() {
            return None;
        }
        epoch = epoch.checked_add(1)?;
        let cause = MembershipCause::Step { upgrade_id: upgrade_id.clone(), step_id: step.step_id.clone() };
        events.push(MembershipEvent::new(epoch, previous, next.clone(), cause));
        previous = next;
    }
    Some(events)
}

/// What seeding or restoring does to a bundle that already has membership history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OnHistory {
    /// Refuse with [`UpgradeError::HistoryExists`].
    Refuse,
    /// Replace it (recorded as forced).
    Replace,
}

/// Every bundle's upgrade state: membership, epoch, history, executions.
///
/// Deterministic and sans-I/O: the `check_*` methods never mutate and return the facts to
/// journal; [`apply`](Self::apply) is total and the only way facts change the book.
/// An upgrade is driven as follows (one fact journaled and applied at a time):
///
/// 1. [`check_begin`](Self::check_begin): [`Begin::AlreadyRecorded`] (done),
///    [`Begin::Invalid`] (write `staged`, then `failed`, report the error) or
///    [`Begin::Staged`] (write it);
/// 2. [`check_admit`](Self::check_admit): write the admitted phase;
/// 3. run each step ([`planned_cutover`](Self::planned_cutover) gives the membership
///    change of each); if step *k* fails, [`check_rollback`](Self::check_rollback) with
///    [`RollbackCause::StepFailed`] and write it;
/// 4. otherwise [`check_commit`](Self::check_commit): write the committed cutover, which
///    moves the membership to the last step's, one epoch per step.
///
/// After a restart, write [`recovery_facts`](Self::recovery_facts).
///
/// It serializes as a map from bundle to [`UpgradeSnapshot`]; deserializing validates
/// every snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpgradeBook {
    bundles: BTreeMap<BundleId, Entry>,
}

impl UpgradeBook {
    /// An empty book: no bundle seeded.
    pub fn new() -> Self {
        Self::default()
    }

    /// Rebuilds a book by applying facts, in order, to an empty one.
    pub fn replay<'a, I>(facts: I) -> Self
    where
        I: IntoIterator<Item = &'a UpgradeFact>,
    {
        let mut book = Self::new();
        for fact in facts {
            book.apply(fact);
        }
        book
    }

    /// A book holding only `bundle`'s state (empty if it has none). A batch checker can
    /// check and apply a batch's upgrade facts for one bundle on it, without cloning the
    /// other bundles' state.
    pub fn scoped(&self, bundle: &BundleId) -> Self {
        Self { bundles: self.bundles.get(bundle).map(|e| (bundle.clone(), e.clone())).into_iter().collect() }
    }

    /// Bundles with upgrade state, sorted.
    pub fn bundles(&self) -> impl Iterator<Item = &BundleId> {
        self.bundles.keys()
    }

    /// A bundle's active members, if it was seeded.
    pub fn members(&self, bundle: &BundleId) -> Option<&BTreeSet<Member>> {
        self.bundles.get(bundle).map(|e| &e.snap.active_members)
    }

    /// A bundle's membership epoch: 0 until seeded, then advanced by each seed and by each
    /// step of each committed upgrade.
    pub fn epoch(&self, bundle: &BundleId) -> u64 {
        self.bundles.get(bundle).map_or(0, |e| e.snap.epoch)
    }

    /// A bundle's membership history, oldest first.
    pub fn history(&self, bundle: &BundleId) -> &[MembershipEvent] {
        self.bundles.get(bundle).map_or(&[], |e| e.snap.history.as_slice())
    }

    /// A bundle's finished executions, in the order they finished.
    pub fn executions(&self, bundle: &BundleId) -> &[UpgradeExecution] {
        self.bundles.get(bundle).map_or(&[], |e| e.snap.executions.as_slice())
    }

    /// The bundle's upgrade in flight (staged or admitted, not finished), if any.
    pub fn in_flight(&self, bundle: &BundleId) -> Option<&UpgradeExecution> {
        self.bundles.get(bundle).and_then(|e| e.snap.in_flight.as_ref())
    }

    /// An upgrade's execution, finished or in flight.
    pub fn execution(&self, bundle: &BundleId, upgrade_id: &UpgradeId) -> Option<&UpgradeExecution> {
        let entry = self.bundles.get(bundle)?;
        entry
            .finished(upgrade_id)
            .or_else(|| entry.snap.in_flight.as_ref().filter(|x| x.upgrade_id == *upgrade_id))
    }

    /// A bundle's state in snapshot form, borrowed.
    pub fn snapshot(&self, bundle: &BundleId) -> Option<&UpgradeSnapshot> {
        self.bundles.get(bundle).map(|e| &e.snap)
    }

    /// Checks seeding `bundle` with `members`. Refused for an empty set, while an upgrade
    /// is in flight, and over existing history unless `on_history` is
    /// [`OnHistory::Replace`].
    pub fn check_seed(
        &self,
        bundle: &BundleId,
        members: impl IntoIterator<Item = Member>,
        on_history: OnHistory,
    ) -> Result<UpgradeFact, UpgradeError> {
        let members: BTreeSet<Member> = members.into_iter().collect();
        if members.is_empty() {
            return Err(UpgradeError::EmptyMembership { bundle: bundle.clone() });
        }
        let mut forced = false;
        if let Some(entry) = self.bundles.get(bundle) {
            if let Some(x) = &entry.snap.in_flight {
                return Err(UpgradeError::UpgradeInFlight {
                    bundle: bundle.clone(),
                    in_flight: x.upgrade_id.clone(),
                });
            }
            if !entry.snap.history.is_empty() {
                if on_history == OnHistory::Refuse {
                    return Err(UpgradeError::HistoryExists {
                        bundle: bundle.clone(),
                        epoch: entry.snap.epoch,
                        members: entry.snap.active_members.clone(),
                    });
                }
                forced = true;
            }
            if entry.snap.epoch == u64::MAX {
                return Err(UpgradeError::EpochExhausted { bundle: bundle.clone() });
            }
        }
        Ok(UpgradeFact::MembershipSeeded { bundle: bundle.clone(), members, forced })
    }

    /// Checks starting `request` on `bundle`, in this order: the request's schema is
    /// supported; a recorded upgrade id returns its execution (or is refused if it was
    /// recorded for a different request) — before the epoch check, so a retry after
    /// success is answered; no other upgrade is in flight; the bundle is seeded; the
    /// bundle is at `expected_epoch`, if given; then the plan rules of
    /// [`validate`].
    pub fn check_begin(
        &self,
        bundle: &BundleId,
        request: &RuntimeUpgradeRequest,
        expected_epoch: Option<u64>,
    ) -> Result<Begin, UpgradeError> {
        let upgrade_id = &request.upgrade_id;
        if request.schema_version > UPGRADE_SCHEMA_VERSION {
            return Err(UpgradeError::UnsupportedSchema {
                upgrade_id: upgrade_id.clone(),
                found: request.schema_version,
                supported: UPGRADE_SCHEMA_VERSION,
            });
        }
        let entry = self.bundles.get(bundle);
        if let Some(recorded) = entry.and_then(|e| e.finished(upgrade_id)) {
            return match recorded.phases.first() {
                Some(staged) if staged.describes(request) => Ok(Begin::AlreadyRecorded(recorded.clone())),
                _ => Err(UpgradeError::UpgradeIdConflict {
                    bundle: bundle.clone(),
                    upgrade_id: upgrade_id.clone(),
                }),
            };
        }
        if let Some(x) = entry.and_then(|e| e.snap.in_flight.as_ref()) {
            return Err(UpgradeError::UpgradeInFlight {
                bundle: bundle.clone(),
                in_flight: x.upgrade_id.clone(),
            });
        }
        let Some(entry) = entry.filter(|e| !e.snap.active_members.is_empty()) else {
            return Err(UpgradeError::NotSeeded { bundle: bundle.clone() });
        };
        if let Some(expected) = expected_epoch {
            if expected != entry.snap.epoch {
                return Err(UpgradeError::EpochMismatch {
                    bundle: bundle.clone(),
                    expected,
                    actual: entry.snap.epoch,
                });
            }
        }
        let staged = PhaseArtifact::staged(request, entry.snap.active_members.clone());
        match validate(&staged, &entry.snap.active_members) {
            Ok(()) => Ok(Begin::Staged(phase_fact(bundle, staged))),
            Err(source) => {
                let failed = staged.to_phase(UpgradePhase::Failed, Some(source.to_string()));
                Ok(Begin::Invalid {
                    staged: phase_fact(bundle, staged),
                    failed: phase_fact(bundle, failed),
                    error: UpgradeError::Invalid {
                        bundle: bundle.clone(),
                        upgrade_id: upgrade_id.clone(),
                        source: Box::new(source),
                    },
                })
            }
        }
    }

    /// The in-flight execution of `upgrade_id` and its last artifact, or why there is none.
    fn in_flight_of(
        &self,
        bundle: &BundleId,
        upgrade_id: &UpgradeId,
    ) -> Result<(&Entry, &PhaseArtifact), UpgradeError> {
        let not_in_flight =
            || UpgradeError::NotInFlight { bundle: bundle.clone(), upgrade_id: upgrade_id.clone() };
        let entry = self.bundles.get(bundle).ok_or_else(not_in_flight)?;
        if let Some(last) =
            entry.snap.in_flight.as_ref().filter(|x| x.upgrade_id == *upgrade_id).and_then(|x| x.last())
        {
            return Ok((entry, last));
        }
        match entry.finished(upgrade_id).and_then(UpgradeExecution::outcome) {
            Some(outcome) => Err(UpgradeError::AlreadyFinished {
                bundle: bundle.clone(),
                upgrade_id: upgrade_id.clone(),
                outcome,
            }),
            None => Err(not_in_flight()),
        }
    }

    fn require_phase(
        bundle: &BundleId,
        last: &PhaseArtifact,
        expected: UpgradePhase,
    ) -> Result<(), UpgradeError> {
        if last.phase == expected {
            Ok(())
        } else {
            Err(UpgradeError::WrongPhase {
                bundle: bundle.clone(),
                upgrade_id: last.upgrade_id.clone(),
                expected,
                actual: last.phase,
            })
        }
    }

    /// Checks admitting a staged upgrade: its steps may then run.
    pub fn check_admit(
        &self,
        bundle: &BundleId,
        upgrade_id: &UpgradeId,
    ) -> Result<UpgradeFact, UpgradeError> {
        let (_, last) = self.in_flight_of(bundle, upgrade_id)?;
        Self::require_phase(bundle, last, UpgradePhase::Staged)?;
        Ok(phase_fact(bundle, last.to_phase(UpgradePhase::Admitted, None)))
    }

    /// The membership change each step of an in-flight upgrade makes, at the epochs a
    /// commit would record: what the runtime's step hooks cut over.
    pub fn planned_cutover(
        &self,
        bundle: &BundleId,
        upgrade_id: &UpgradeId,
    ) -> Result<Vec<MembershipEvent>, UpgradeError> {
        let (entry, last) = self.in_flight_of(bundle, upgrade_id)?;
        cutover_events(entry.snap.epoch, &entry.snap.active_members, upgrade_id, &last.plan.steps)
            .ok_or_else(|| UpgradeError::EpochExhausted { bundle: bundle.clone() })
    }

    /// Checks committing an admitted upgrade whose steps all succeeded.
    pub fn check_commit(
        &self,
        bundle: &BundleId,
        upgrade_id: &UpgradeId,
    ) -> Result<UpgradeFact, UpgradeError> {
        let (entry, last) = self.in_flight_of(bundle, upgrade_id)?;
        Self::require_phase(bundle, last, UpgradePhase::Admitted)?;
        // Admitted plans have non-empty steps, so only epoch overflow can refuse here.
        if cutover_events(entry.snap.epoch, &entry.snap.active_members, upgrade_id, &last.plan.steps)
            .is_none()
        {
            return Err(UpgradeError::EpochExhausted { bundle: bundle.clone() });
        }
        Ok(phase_fact(bundle, last.to_phase(UpgradePhase::CommittedCutover, None)))
    }

    /// Checks rolling back an in-flight upgrade. A failed step needs the upgrade admitted
    /// and must be one of its steps; an abort or recovery may roll back a staged one too.
    pub fn check_rollback(
        &self,
        bundle: &BundleId,
        upgrade_id: &UpgradeId,
        cause: RollbackCause,
    ) -> Result<UpgradeFact, UpgradeError> {
        let (_, last) = self.in_flight_of(bundle, upgrade_id)?;
        if let RollbackCause::StepFailed { step_id, .. } = &cause {
            Self::require_phase(bundle, last, UpgradePhase::Admitted)?;
            if !last.plan.steps.iter().any(|s| s.step_id == *step_id) {
                return Err(UpgradeError::UnknownStep {
                    bundle: bundle.clone(),
                    upgrade_id: upgrade_id.clone(),
                    step_id: step_id.clone(),
                });
            }
        }
        Ok(phase_fact(bundle, last.to_phase(UpgradePhase::RolledBack, Some(cause.to_string()))))
    }

    /// The facts that close every upgrade left in flight, bundles in sorted order: each is
    /// rolled back (as an uncommitted release is on restart), except one interrupted
    /// between staged and failed, which is recorded failed with the same reason.
    pub fn recovery_facts(&self) -> Vec<UpgradeFact> {
        let mut facts = Vec::new();
        for (bundle, entry) in &self.bundles {
            let Some(last) = entry.snap.in_flight.as_ref().and_then(|x| x.last()) else { continue };
            let invalid = match last.phase {
                UpgradePhase::Staged => validate(last, &last.previous_members).err(),
                _ => None,
            };
            let artifact = match invalid {
                Some(e) => last.to_phase(UpgradePhase::Failed, Some(e.to_string())),
                None => last.to_phase(
                    UpgradePhase::RolledBack,
                    Some(RollbackCause::Recovered { interrupted: last.phase }.to_string()),
                ),
            };
            facts.push(phase_fact(bundle, artifact));
        }
        facts
    }

    /// A copy of a bundle's upgrade state, for export.
    pub fn export(&self, bundle: &BundleId) -> Option<UpgradeSnapshot> {
        self.snapshot(bundle).cloned()
    }

    /// Checks replacing a bundle's upgrade state with `snapshot` through the journal: the
    /// snapshot must validate; it is refused while an upgrade is in flight, and over
    /// existing history unless `on_history` is [`OnHistory::Replace`].
    pub fn check_restore(
        &self,
        bundle: &BundleId,
        snapshot: UpgradeSnapshot,
        on_history: OnHistory,
    ) -> Result<UpgradeFact, UpgradeError> {
        snapshot
            .validate()
            .map_err(|source| UpgradeError::InvalidSnapshot { bundle: bundle.clone(), source })?;
        if let Some(entry) = self.bundles.get(bundle) {
            if let Some(x) = &entry.snap.in_flight {
                return Err(UpgradeError::UpgradeInFlight {
                    bundle: bundle.clone(),
                    in_flight: x.upgrade_id.clone(),
                });
            }
            if on_history == OnHistory::Refuse && !entry.snap.history.is_empty() {
                return Err(UpgradeError::HistoryExists {
                    bundle: bundle.clone(),
                    epoch: entry.snap.epoch,
                    members: entry.snap.active_members.clone(),
                });
            }
        }
        Ok(UpgradeFact::SnapshotRestored { bundle: bundle.clone(), snapshot: Box::new(snapshot) })
    }

    /// Validates `snapshot` and installs it as the bundle's upgrade state, replacing any.
    /// This bypasses the journal (for rebuilding a book from exported snapshots); a
    /// journaled restore goes through [`check_restore`](Self::check_restore).
    pub fn restore(&mut self, bundle: &BundleId, snapshot: UpgradeSnapshot) -> Result<(), UpgradeError> {
        snapshot
            .validate()
            .map_err(|source| UpgradeError::InvalidSnapshot { bundle: bundle.clone(), source })?;
        self.bundles.insert(bundle.clone(), Entry::new(snapshot));
        Ok(())
    }

    /// Applies a durable fact. Total and deterministic: every fact has a defined effect,
    /// and a fact that does not fit the book (which a checked fact always does) changes
    /// nothing and reports [`UpgradeApplied::Ignored`], so the book always exports valid
    /// snapshots.
    pub fn apply(&mut self, fact: &UpgradeFact) -> UpgradeApplied {
        match fact {
            UpgradeFact::MembershipSeeded { bundle, members, forced } => {
                self.apply_seed(bundle, members, *forced)
            }
            UpgradeFact::PhaseRecorded { bundle, artifact } => self.apply_phase(bundle, artifact),
            UpgradeFact::SnapshotRestored { bundle, snapshot } => {
                if snapshot.validate().is_err() {
                    return ignored(bundle, "the snapshot does not validate");
                }
                let epoch = snapshot.epoch;
                self.bundles.insert(bundle.clone(), Entry::new(snapshot.as_ref().clone()));
                UpgradeApplied::Restored { bundle: bundle.clone(), epoch }
            }
        }
    }

    fn apply_seed(&mut self, bundle: &BundleId, members: &BTreeSet<Member>, forced: bool) -> UpgradeApplied {
        if members.is_empty() {
            return ignored(bundle, "an empty membership cannot be seeded");
        }
        let entry =
            self.bundles.entry(bundle.clone()).or_insert_with(|| Entry::new(UpgradeSnapshot::unseeded()));
        // The first seeding is epoch 0 (telltale's anchor); each change after it is one more.
        let epoch = if entry.snap.history.is_empty() {
            FIRST_EPOCH
        } else {
            let Some(epoch) = entry.snap.epoch.checked_add(1) else {
                return ignored(bundle, "the membership epoch is exhausted");
            };
            epoch
        };
        let previous = std::mem::replace(&mut entry.snap.active_members, members.clone());
        entry.snap.history.push(MembershipEvent::new(
            epoch,
            previous,
            members.clone(),
            MembershipCause::Seeded { forced },
        ));
        entry.snap.epoch = epoch;
        UpgradeApplied::Seeded { bundle: bundle.clone(), epoch }
    }

    fn apply_phase(&mut self, bundle: &BundleId, artifact: &PhaseArtifact) -> UpgradeApplied {
        use UpgradePhase::{Admitted, CommittedCutover, Failed, RolledBack, Staged};
        let Some(entry) = self.bundles.get_mut(bundle) else {
            return ignored(bundle, "the bundle's membership was never seeded");
        };
        let id = &artifact.upgrade_id;
        let current = entry
            .snap
            .in_flight
            .as_ref()
            .filter(|x| x.upgrade_id == *id)
            .and_then(UpgradeExecution::last_phase);
        match (artifact.phase, current) {
            (Staged, _) => {
                if entry.snap.in_flight.is_some() {
                    return ignored(bundle, "an upgrade is already in flight");
                }
                if entry.recorded.contains_key(id) {
                    return ignored(bundle, "the upgrade id is already recorded");
                }
                entry.snap.in_flight =
                    Some(UpgradeExecution { upgrade_id: id.clone(), phases: vec![artifact.clone()] });
            }
            (Admitted, Some(Staged)) => push(entry, artifact),
            (Failed, Some(Staged)) | (RolledBack, Some(Staged | Admitted)) => {
                push(entry, artifact);
                entry.finish();
            }
            (CommittedCutover, Some(Admitted)) => {
                let Some(events) =
                    cutover_events(entry.snap.epoch, &entry.snap.active_members, id, &artifact.plan.steps)
                else {
                    return ignored(bundle, "the cutover has an empty step or exhausts the epoch");
                };
                push(entry, artifact);
                entry.finish();
                if let Some(last) = events.last() {
                    entry.snap.epoch = last.epoch;
                    entry.snap.active_members = last.next.clone();
                }
                entry.snap.history.extend(events);
            }
            _ => return ignored(bundle, "the phase does not follow the upgrade's last phase"),
        }
        UpgradeApplied::Phase {
            bundle: bundle.clone(),
            upgrade_id: id.clone(),
            phase: artifact.phase,
            epoch: entry.snap.epoch,
        }
    }
}

fn push(entry: &mut Entry, artifact: &PhaseArtifact) {
    if let Some(x) = entry.snap.in_flight.as_mut() {
        x.phases.push(artifact.clone());
    }
}

fn phase_fact(bundle: &BundleId, artifact: PhaseArtifact) -> UpgradeFact {
    UpgradeFact::PhaseRecorded { bundle: bundle.clone(), artifact: Box::new(artifact) }
}

fn ignored(bundle: &BundleId, why: &'static str) -> UpgradeApplied {
    UpgradeApplied::Ignored { bundle: bundle.clone(), why }
}

impl Serialize for UpgradeBook {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.bundles.iter().map(|(b, e)| (b, &e.snap)))
    }
}

impl<'de> Deserialize<'de> for UpgradeBook {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let snapshots = BTreeMap::<BundleId, UpgradeSnapshot>::deserialize(deserializer)?;
        let mut book = Self::new();
        for (bundle, snapshot) in snapshots {
            book.restore(&bundle, snapshot).map_err(serde::de::Error::custom)?;
        }
        Ok(book)
    }
}
