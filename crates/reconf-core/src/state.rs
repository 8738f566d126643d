//! The reconfiguration state: indexed sessions, per-authority footprints, bundles, links.
//!
//! Facts are applied with [`State::apply`]; it is total (every fact has a defined effect)
//! and deterministic. Commands are checked separately, see [`crate::check`].

use std::collections::BTreeMap;
use std::num::NonZeroU32;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::bundle::ComposedBundle;
use crate::coherence::{self, CoherenceReport, Violation};
use crate::fact::{Change, DelegationFact, Fact};
use crate::footprint::{FastMap, FootprintIndex, FootprintSummary, SessionClass, SessionFootprint};
use crate::ids::{AuthorityId, BundleId, SessionId};
use crate::receipt::DelegationReceipt;
use crate::upgrade::{UpgradeApplied, UpgradeBook};

/// Interned index of an authority (1-based so `Option<Ix>` costs nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Ix(NonZeroU32);

impl Ix {
    fn slot(self) -> usize {
        (self.0.get() - 1) as usize
    }
}

/// The most authorities one state can intern.
pub const MAX_AUTHORITIES: u64 = u32::MAX as u64 - 1;

/// The compact per-session record: 16 bytes, ids interned. The generation is stored in 32
/// bits (checked commands refuse to go past [`MAX_GENERATION`]); it is `u64` everywhere
/// else, so the wire format does not depend on this choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Record {
    pub(crate) holder: Ix,
    pub(crate) delegator: Option<Ix>,
    pub(crate) bundle: Option<Ix>,
    pub(crate) generation: u32,
}

/// The highest owner generation a session can reach: about four billion delegations of one
/// session.
pub const MAX_GENERATION: u64 = u32::MAX as u64;

/// The stored form of a generation from a fact. Checked commands never exceed the limit;
/// an unchecked fact beyond it saturates, keeping `apply` total.
fn stored_generation(g: u64) -> u32 {
    u32::try_from(g).unwrap_or(u32::MAX)
}

#[derive(Debug, Clone)]
struct AuthorityEntry {
    id: AuthorityId,
    footprint: FootprintIndex,
}

/// A session as seen from outside.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// The active holder.
    pub holder: AuthorityId,
    /// The last delegator, if the session was ever delegated.
    pub delegator: Option<AuthorityId>,
    /// The holder's class: native or delegated-in.
    pub class: SessionClass,
    /// Owner generation: starts at 1, grows with each delegation, never resets.
    pub generation: u64,
    /// The bundle the session runs or was last delegated through.
    pub bundle: Option<BundleId>,
}

/// A link between two bundles.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkRecord {
    /// Left input.
    pub left: BundleId,
    /// Right input.
    pub right: BundleId,
}

/// What applying a fact did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Applied {
    /// A bundle was registered (or replaced, when replaying a duplicate).
    BundleRegistered {
        /// The id.
        bundle: BundleId,
    },
    /// A link was recorded.
    BundlesLinked {
        /// The new bundle's id.
        linked: BundleId,
    },
    /// A session was opened.
    SessionOpened {
        /// The session.
        session: SessionId,
        /// Its generation.
        generation: u64,
    },
    /// A session was delegated.
    SessionDelegated(Box<DelegationReceipt>),
    /// A session was closed (or the close had nothing to remove).
    SessionClosed {
        /// The session.
        session: SessionId,
    },
    /// An upgrade fact was applied to the upgrade book.
    Upgrade(UpgradeApplied),
}

/// Counts for dashboards.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateStats {
    /// Last applied journal sequence.
    pub head: u64,
    /// Registered bundles (linked ones included).
    pub bundles: u64,
    /// Links made.
    pub links: u64,
    /// Authorities ever seen.
    pub authorities: u64,
    /// Open sessions.
    pub sessions: u64,
    /// Open sessions held natively.
    pub native: u64,
    /// Open sessions held by delegation.
    pub delegated: u64,
    /// Closed sessions whose generation is remembered.
    pub closed: u64,
}

/// The whole reconfiguration state. Cheap operations are indexed: a delegation touches one
/// session record and at most three footprints, whatever the number of sessions.
#[derive(Debug, Clone, Default)]
pub struct State {
    head: u64,
    bundles: BTreeMap<BundleId, ComposedBundle>,
    links: BTreeMap<BundleId, LinkRecord>,
    sessions: FastMap<SessionId, Record>,
    // A closed session's last generation, so reopening continues the count.
    retired: FastMap<SessionId, u64>,
    authorities: Vec<AuthorityEntry>,
    authority_ix: FastMap<AuthorityId, Ix>,
    bundle_names: Vec<BundleId>,
    bundle_ix: FastMap<BundleId, Ix>,
    upgrades: UpgradeBook,
}

fn intern<K: Clone + Eq + std::hash::Hash>(
    map: &mut FastMap<K, Ix>,
    len: usize,
    key: &K,
) -> Option<(Ix, bool)> {
    if let Some(ix) = map.get(key) {
        return Some((*ix, false));
    }
    let n = u32::try_from(len).ok()?.checked_add(1)?;
    let ix = Ix(NonZeroU32::new(n)?);
    map.insert(key.clone(), ix);
    Some((ix, true))
}

impl State {
    /// An empty state.
    pub fn new() -> Self {
        Self::default()
    }

    /// The last journal sequence applied.
    pub fn head(&self) -> u64 {
        self.head
    }

    /// A registered bundle.
    pub fn bundle(&self, id: &BundleId) -> Option<&ComposedBundle> {
        self.bundles.get(id)
    }

    /// All bundles, sorted by id.
    pub fn bundles(&self) -> impl Iterator<Item = &ComposedBundle> {
        self.bundles.values()
    }

    /// Every bundle's staged-upgrade state.
    pub fn upgrades(&self) -> &UpgradeBook {
        &self.upgrades
    }

    /// All links, by linked id.
    pub fn links(&self) -> &BTreeMap<BundleId, LinkRecord> {
        &self.links
    }

    pub(crate) fn authority_ix(&self, id: &AuthorityId) -> Option<Ix> {
        self.authority_ix.get(id).copied()
    }

    pub(crate) fn authority_id(&self, ix: Ix) -> AuthorityId {
        // Every Ix stored in the state was handed out by `intern_authority`, so the slot
        // exists; the fallback only keeps this total.
        self.authorities.get(ix.slot()).map(|e| e.id).unwrap_or(AuthorityId([0; 32]))
    }

    pub(crate) fn record(&self, session: &SessionId) -> Option<&Record> {
        self.sessions.get(session)
    }

    pub(crate) fn retired_generation(&self, session: &SessionId) -> Option<u64> {
        self.retired.get(session).copied()
    }

    pub(crate) fn authority_count(&self) -> usize {
        self.authorities.len()
    }

    /// A session's record.
    pub fn session(&self, session: &SessionId) -> Option<SessionRecord> {
        let r = self.sessions.get(session)?;
        Some(SessionRecord {
            holder: self.authority_id(r.holder),
            delegator: r.delegator.map(|d| self.authority_id(d)),
            class: if r.delegator.is_some() { SessionClass::DelegatedIn } else { SessionClass::Native },
            generation: u64::from(r.generation),
            bundle: r.bundle.and_then(|b| self.bundle_names.get(b.slot()).cloned()),
        })
    }

    /// The active holder of a session.
    pub fn holder(&self, session: &SessionId) -> Option<AuthorityId> {
        self.sessions.get(session).map(|r| self.authority_id(r.holder))
    }

    /// An authority's footprint (a sorted copy; empty for an unknown authority).
    pub fn footprint(&self, authority: &AuthorityId) -> SessionFootprint {
        self.authority_ix(authority)
            .and_then(|ix| self.authorities.get(ix.slot()))
            .map(|e| e.footprint.to_footprint())
            .unwrap_or_default()
    }

    /// An authority's footprint summary, in O(1).
    pub fn footprint_summary(&self, authority: &AuthorityId) -> FootprintSummary {
        self.authority_ix(authority)
            .and_then(|ix| self.authorities.get(ix.slot()))
            .map(|e| e.footprint.summary())
            .unwrap_or_default()
    }

    /// Every authority the state has seen, in first-seen order.
    pub fn authorities(&self) -> impl Iterator<Item = AuthorityId> + '_ {
        self.authorities.iter().map(|e| e.id)
    }

    /// Open sessions, in no particular order.
    pub fn session_ids(&self) -> impl Iterator<Item = SessionId> + '_ {
        self.sessions.keys().copied()
    }

    /// Counts.
    pub fn stats(&self) -> StateStats {
        let delegated = self.sessions.values().filter(|r| r.delegator.is_some()).count() as u64;
        StateStats {
            head: self.head,
            bundles: self.bundles.len() as u64,
            links: self.links.len() as u64,
            authorities: self.authorities.len() as u64,
            sessions: self.sessions.len() as u64,
            native: self.sessions.len() as u64 - delegated,
            delegated,
            closed: self.retired.len() as u64,
        }
    }

    fn intern_authority(&mut self, id: &AuthorityId) -> Ix {
        match intern(&mut self.authority_ix, self.authorities.len(), id) {
            Some((ix, fresh)) => {
                if fresh {
                    self.authorities.push(AuthorityEntry { id: *id, footprint: FootprintIndex::default() });
                }
                ix
            }
            // Unreachable through checked commands (they refuse at MAX_AUTHORITIES); for a
            // raw fact beyond the limit the last slot absorbs it, keeping `apply` total.
            None => Ix(NonZeroU32::MAX),
        }
    }

    fn intern_bundle(&mut self, id: &BundleId) -> Option<Ix> {
        let (ix, fresh) = intern(&mut self.bundle_ix, self.bundle_names.len(), id)?;
        if fresh {
            self.bundle_names.push(id.clone());
        }
        Some(ix)
    }

    fn fp(&mut self, ix: Ix) -> Option<&mut FootprintIndex> {
        self.authorities.get_mut(ix.slot()).map(|e| &mut e.footprint)
    }

    fn summary_of(&self, ix: Ix) -> FootprintSummary {
        self.authorities.get(ix.slot()).map(|e| e.footprint.summary()).unwrap_or_default()
    }

    /// Removes a record's footprint entries.
    fn unindex(&mut self, session: SessionId, r: Record) {
        let class = if r.delegator.is_some() { SessionClass::DelegatedIn } else { SessionClass::Native };
        if let Some(fp) = self.fp(r.holder) {
            fp.remove_if(session, class);
        }
        if let Some(d) = r.delegator {
            if let Some(fp) = self.fp(d) {
                fp.remove_if(session, SessionClass::DelegatedOut);
            }
        }
    }

    /// Adds a record's footprint entries.
    fn index(&mut self, session: SessionId, r: Record) {
        let class = if r.delegator.is_some() { SessionClass::DelegatedIn } else { SessionClass::Native };
        if let Some(d) = r.delegator {
            if let Some(fp) = self.fp(d) {
                fp.set(session, SessionClass::DelegatedOut);
            }
        }
        if let Some(fp) = self.fp(r.holder) {
            fp.set(session, class);
        }
    }

    /// Applies a durable fact written at journal `sequence`. Total and deterministic: any
    /// fact has a defined effect, and the same facts in the same order give the same state.
    pub fn apply(&mut self, sequence: u64, fact: &Fact) -> Applied {
        self.head = self.head.max(sequence);
        match &fact.change {
            Change::BundleRegistered { bundle } => {
                self.bundles.insert(bundle.id.clone(), bundle.clone());
                Applied::BundleRegistered { bundle: bundle.id.clone() }
            }
            Change::BundlesLinked { left, right, linked } => {
                self.bundles.insert(linked.id.clone(), linked.clone());
                self.links.insert(linked.id.clone(), LinkRecord { left: left.clone(), right: right.clone() });
                Applied::BundlesLinked { linked: linked.id.clone() }
            }
            Change::SessionOpened { session, authority, bundle, generation } => {
                let holder = self.intern_authority(authority);
                let bundle = bundle.as_ref().and_then(|b| self.intern_bundle(b));
                if let Some(prev) = self.sessions.remove(session) {
                    self.unindex(*session, prev);
                }
                self.retired.remove(session);
                let r =
                    Record { holder, delegator: None, bundle, generation: stored_generation(*generation) };
                self.sessions.insert(*session, r);
                self.index(*session, r);
                Applied::SessionOpened { session: *session, generation: *generation }
            }
            Change::Upgrade(u) => Applied::Upgrade(self.upgrades.apply(u)),
            Change::SessionDelegated(d) => {
                Applied::SessionDelegated(Box::new(self.apply_delegation(sequence, d)))
            }
            Change::SessionClosed { session, .. } => {
                if let Some(prev) = self.sessions.remove(session) {
                    self.unindex(*session, prev);
                    self.retired.insert(*session, u64::from(prev.generation));
                }
                Applied::SessionClosed { session: *session }
            }
        }
    }

    fn apply_delegation(&mut self, sequence: u64, d: &DelegationFact) -> DelegationReceipt {
        let from = self.intern_authority(&d.from);
        let to = self.intern_authority(&d.to);
        let bundle = self.intern_bundle(&d.bundle);
        let from_before = self.summary_of(from);
        let to_before = self.summary_of(to);
        let prev = self.sessions.get(&d.session).copied();
        // Look up every footprint entry this delegation changes before changing any: the
        // lookups do not depend on each other, so at a million sessions their cache misses
        // overlap instead of queueing one behind the other.
        let warm =
            |ix: Option<Ix>| ix.and_then(|ix| self.authorities.get(ix.slot())?.footprint.get(d.session));
        std::hint::black_box((
            warm(prev.map(|p| p.holder)),
            warm(prev.and_then(|p| p.delegator)),
            warm(Some(to)),
        ));
        if let Some(prev) = prev {
            self.unindex(d.session, prev);
        }
        self.retired.remove(&d.session);
        let r =
            Record { holder: to, delegator: Some(from), bundle, generation: stored_generation(d.generation) };
        self.sessions.insert(d.session, r);
        self.index(d.session, r);
        DelegationReceipt {
            session: d.session,
            from: d.from,
            to: d.to,
            bundle: d.bundle.clone(),
            context: d.context,
            sequence,
            generation: d.generation,
            at_ms: d.at_ms,
            from_before,
            from_after: self.summary_of(from),
            to_before,
            to_after: self.summary_of(to),
        }
    }

    /// Checks one session against the footprints of the authorities its record names, in
    /// O(1). This is the incremental check run for the session a command touches.
    pub fn session_coherence(&self, session: &SessionId) -> Result<(), Violation> {
        let Some(r) = self.sessions.get(session) else {
            return Ok(());
        };
        let class = if r.delegator.is_some() { SessionClass::DelegatedIn } else { SessionClass::Native };
        let expect = |ix: Ix, want: SessionClass| -> Result<(), Violation> {
            let found = self.authorities.get(ix.slot()).and_then(|e| e.footprint.get(*session));
            if found == Some(want) {
                Ok(())
            } else {
                Err(Violation::IndexMismatch {
                    session: *session,
                    authority: self.authority_id(ix),
                    expected: Some(want),
                    found,
                })
            }
        };
        expect(r.holder, class)?;
        if let Some(d) = r.delegator {
            expect(d, SessionClass::DelegatedOut)?;
        }
        Ok(())
    }

    /// Full coherence audit of every session. Violations come sorted; one bad session never
    /// hides another.
    pub fn verify_coherence(&self) -> CoherenceReport {
        // Fast proof, O(sessions) lookups and no allocation: if every entry a record implies
        // is in the index with its class, and the index holds no more entries than the
        // records imply, then the index is exactly the records, which can only express one
        // holder and at most one delegator per session. Anything else gets the full scan,
        // which names every violation.
        let implied = self.sessions.len() + self.sessions.values().filter(|r| r.delegator.is_some()).count();
        let held: usize = self.authorities.iter().map(|e| e.footprint.len()).sum();
        if held == implied && self.sessions.keys().all(|s| self.session_coherence(s).is_ok()) {
            return CoherenceReport { sessions_checked: self.sessions.len() as u64, violations: Vec::new() };
        }
        self.full_coherence_scan()
    }

    /// The full scan behind [`verify_coherence`](Self::verify_coherence): the independent
    /// footprint audit plus a cross-check of every entry against the session index.
    pub fn full_coherence_scan(&self) -> CoherenceReport {
        let footprints: Vec<(AuthorityId, SessionFootprint)> =
            self.authorities.iter().map(|e| (e.id, e.footprint.to_footprint())).collect();
        let mut report = coherence::audit(footprints.iter().map(|(a, f)| (*a, f)));
        for (slot, e) in self.authorities.iter().enumerate() {
            for (session, found) in e.footprint.iter() {
                let expected = self.sessions.get(&session).and_then(|r| {
                    let here = |ix: Ix| ix.slot() == slot;
                    if here(r.holder) {
                        Some(if r.delegator.is_some() {
                            SessionClass::DelegatedIn
                        } else {
                            SessionClass::Native
                        })
                    } else if r.delegator.is_some_and(here) {
                        Some(SessionClass::DelegatedOut)
                    } else {
                        None
                    }
                });
                if expected != Some(found) {
                    report.violations.push(Violation::IndexMismatch {
                        session,
                        authority: e.id,
                        expected,
                        found: Some(found),
                    });
                }
            }
        }
        for session in self.sessions.keys() {
            if let Err(v) = self.session_coherence(session) {
                if !report.violations.contains(&v) {
                    report.violations.push(v);
                }
            }
        }
        report.sessions_checked = report.sessions_checked.max(self.sessions.len() as u64);
        report.violations.sort();
        report
    }

    /// Rebuilds a state by replaying facts from an empty one.
    ///
    /// ```
    /// use reconf_core::{AuthorityId, Command, SessionId, State};
    /// let mut state = State::new();
    /// let cmd = Command::OpenSession {
    ///     session: SessionId::from_u128(1),
    ///     authority: AuthorityId::from_label("a"),
    ///     bundle: None,
    /// };
    /// let fact = state.check(&cmd).unwrap();
    /// state.apply(1, &fact);
    /// assert_eq!(State::replay([(1, &fact)]), state);
    /// ```
    pub fn replay<'a, I>(facts: I) -> Self
    where
        I: IntoIterator<Item = (u64, &'a Fact)>,
    {
        let mut s = Self::new();
        for (seq, f) in facts {
            s.apply(seq, f);
        }
        s
    }

    /// The canonical, sorted snapshot of this state.
    pub fn to_snapshot(&self) -> StateSnapshot {
        let mut sessions: Vec<(SessionId, SnapshotRecord)> = self
            .sessions
            .iter()
            .map(|(s, r)| {
                (
                    *s,
                    SnapshotRecord {
                        holder: r.holder.0.get(),
                        delegator: r.delegator.map(|d| d.0.get()),
                        bundle: r.bundle.map(|b| b.0.get()),
                        generation: u64::from(r.generation),
                    },
                )
            })
            .collect();
        sessions.sort_by_key(|(s, _)| *s);
        let mut retired: Vec<(SessionId, u64)> = self.retired.iter().map(|(s, g)| (*s, *g)).collect();
        retired.sort();
        StateSnapshot {
            head: self.head,
            bundles: self.bundles.values().cloned().collect(),
            links: self.links.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            authorities: self.authorities.iter().map(|e| e.id).collect(),
            bundle_names: self.bundle_names.clone(),
            sessions,
            retired,
            upgrades: self.upgrades.clone(),
        }
    }

    /// Rebuilds a state from a snapshot. Interned indexes are validated; a snapshot that
    /// names an index it does not define is rejected.
    pub fn from_snapshot(snap: StateSnapshot) -> Result<Self, SnapshotError> {
        let mut s = Self { head: snap.head, upgrades: snap.upgrades, ..Self::default() };
        for b in snap.bundles {
            s.bundles.insert(b.id.clone(), b);
        }
        s.links = snap.links.into_iter().collect();
        for a in &snap.authorities {
            let (_, fresh) =
                intern(&mut s.authority_ix, s.authorities.len(), a).ok_or(SnapshotError::TooLarge)?;
            if !fresh {
                return Err(SnapshotError::DuplicateAuthority { authority: *a });
            }
            s.authorities.push(AuthorityEntry { id: *a, footprint: FootprintIndex::default() });
        }
        for b in &snap.bundle_names {
            s.intern_bundle(b).ok_or(SnapshotError::TooLarge)?;
        }
        let check = |ix: u32, len: usize, session: SessionId| -> Result<Ix, SnapshotError> {
            NonZeroU32::new(ix)
                .filter(|n| n.get() as usize <= len)
                .map(Ix)
                .ok_or(SnapshotError::BadIndex { session, index: ix })
        };
        for (session, r) in snap.sessions {
            let n = s.authorities.len();
            let rec = Record {
                holder: check(r.holder, n, session)?,
                delegator: r.delegator.map(|d| check(d, n, session)).transpose()?,
                bundle: r.bundle.map(|b| check(b, s.bundle_names.len(), session)).transpose()?,
                generation: u32::try_from(r.generation)
                    .map_err(|_| SnapshotError::GenerationTooLarge { session, generation: r.generation })?,
            };
            if s.sessions.insert(session, rec).is_some() {
                return Err(SnapshotError::DuplicateSession { session });
            }
            s.index(session, rec);
        }
        s.retired = snap.retired.into_iter().collect();
        Ok(s)
    }

    /// Approximate heap bytes held by the session indexes, for memory reports.
    pub fn approx_index_bytes(&self) -> usize {
        let rec = std::mem::size_of::<(SessionId, Record)>() + 1;
        let fpe = std::mem::size_of::<(SessionId, SessionClass)>() + 1;
        self.sessions.capacity() * rec
            + self.retired.capacity() * (std::mem::size_of::<(SessionId, u64)>() + 1)
            + self.authorities.iter().map(|e| e.footprint.capacity() * fpe).sum::<usize>()
    }
}

impl PartialEq for State {
    fn eq(&self, other: &Self) -> bool {
        self.to_snapshot() == other.to_snapshot()
    }
}

impl Eq for State {}

impl Serialize for State {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_snapshot().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for State {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let snap = StateSnapshot::deserialize(deserializer)?;
        Self::from_snapshot(snap).map_err(serde::de::Error::custom)
    }
}

/// A session record inside a snapshot, with interned indexes (1-based).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotRecord {
    /// Index into [`StateSnapshot::authorities`], 1-based.
    pub holder: u32,
    /// Index of the delegator, 1-based.
    pub delegator: Option<u32>,
    /// Index into [`StateSnapshot::bundle_names`], 1-based.
    pub bundle: Option<u32>,
    /// Owner generation.
    pub generation: u64,
}

/// The canonical serialized form of a [`State`]: sorted, so equal states serialize to
/// equal bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateSnapshot {
    /// Last applied sequence.
    pub head: u64,
    /// Bundles sorted by id.
    pub bundles: Vec<ComposedBundle>,
    /// Links sorted by linked id.
    pub links: Vec<(BundleId, LinkRecord)>,
    /// Authorities in intern order.
    pub authorities: Vec<AuthorityId>,
    /// Bundle ids in intern order.
    pub bundle_names: Vec<BundleId>,
    /// Open sessions sorted by id.
    pub sessions: Vec<(SessionId, SnapshotRecord)>,
    /// Closed sessions' last generations, sorted.
    pub retired: Vec<(SessionId, u64)>,
    /// Every bundle's staged-upgrade state.
    pub upgrades: UpgradeBook,
}

/// A snapshot that cannot be turned back into a state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// A record names an interned index the snapshot does not define.
    #[error("snapshot record of session {session} names undefined index {index}")]
    BadIndex {
        /// The session.
        session: SessionId,
        /// The index.
        index: u32,
    },
    /// An authority listed twice.
    #[error("snapshot lists authority {authority} twice")]
    DuplicateAuthority {
        /// The authority.
        authority: AuthorityId,
    },
    /// A session listed twice.
    #[error("snapshot lists session {session} twice")]
    DuplicateSession {
        /// The session.
        session: SessionId,
    },
    /// A generation beyond [`MAX_GENERATION`].
    #[error("snapshot record of session {session} has generation {generation}, above the limit")]
    GenerationTooLarge {
        /// The session.
        session: SessionId,
        /// The generation.
        generation: u64,
    },
    /// More ids than a state can intern.
    #[error("snapshot holds more ids than a state can intern")]
    TooLarge,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::{Command, Delegation};

    fn state_with_delegation() -> State {
        let mut st = State::new();
        let (a, b) = (AuthorityId::from_label("a"), AuthorityId::from_label("b"));
        let bundle = BundleId::new("x").unwrap();
        let cmds = [
            Command::RegisterBundle(ComposedBundle::new(bundle.clone())),
            Command::OpenSession { session: SessionId::from_u128(1), authority: a, bundle: None },
            Command::OpenSession { session: SessionId::from_u128(2), authority: a, bundle: None },
            Command::Delegate(Delegation::new(SessionId::from_u128(1), a, b, bundle, 0)),
        ];
        for (i, c) in cmds.iter().enumerate() {
            let f = st.check(c).unwrap();
            st.apply(i as u64 + 1, &f);
        }
        st
    }

    #[test]
    fn the_fast_proof_agrees_with_the_full_scan() {
        let st = state_with_delegation();
        assert!(st.verify_coherence().is_coherent());
        assert_eq!(st.verify_coherence(), st.full_coherence_scan());
    }

    #[test]
    fn a_stray_index_entry_falls_through_to_the_full_scan() {
        let mut st = state_with_delegation();
        // An orphaned delegated-out entry no record implies.
        st.authorities[0].footprint.set(SessionId::from_u128(9), SessionClass::DelegatedOut);
        let report = st.verify_coherence();
        assert!(report.violations.iter().any(|v| matches!(v, Violation::DelegatedOutWithoutReceiver { .. })));
        assert!(report.violations.iter().any(|v| matches!(v, Violation::IndexMismatch { .. })));
        // A missing implied entry is caught too.
        let mut st = state_with_delegation();
        st.authorities[1].footprint.remove_if(SessionId::from_u128(1), SessionClass::DelegatedIn);
        assert!(!st.verify_coherence().is_coherent());
    }
}
