//! The reconfiguration state: indexed sessions, per-authority footprint summaries,
//! bundles, links.
//!
//! The session table is the single source of truth for who holds what: a session's record
//! names its holder and its last delegator, and an authority's footprint is exactly the
//! sessions whose records name it. Footprints are therefore coherent by construction (one
//! holder, at most one delegator, one class per authority), and a delegation changes one
//! record plus two or three constant-size summaries. Listing one authority's footprint
//! reads the table; see [`State::footprint`].
//!
//! Facts are applied with [`State::apply`]; it is total (every fact has a defined effect)
//! and deterministic. Commands are checked separately, see [`crate::check`].

use std::collections::BTreeMap;
use std::num::NonZeroU32;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::bundle::ComposedBundle;
use crate::coherence::{self, CoherenceReport, Violation};
use crate::fact::{Change, DelegationFact, Fact};
use crate::footprint::{FastMap, FootprintSummary, SessionClass, SessionFootprint};
use crate::ids::{AuthorityId, BundleId, SessionId};
use crate::receipt::DelegationReceipt;
use crate::scope::CapabilityScope;
use crate::table::SessionTable;
use crate::upgrade::{UpgradeApplied, UpgradeBook};

/// Interned index of an authority (1-based so `Option<Ix>` costs nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Ix(pub(crate) NonZeroU32);

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

impl Record {
    /// The holder's class: a record with a delegator was received by delegation.
    pub(crate) fn class(&self) -> SessionClass {
        if self.delegator.is_some() {
            SessionClass::DelegatedIn
        } else {
            SessionClass::Native
        }
    }
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
    // Kept in step with the records that name this authority; `verify_coherence`
    // recomputes it from them.
    summary: FootprintSummary,
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
/// session record and at most three footprint summaries, whatever the number of sessions.
#[derive(Debug, Clone, Default)]
pub struct State {
    head: u64,
    bundles: BTreeMap<BundleId, ComposedBundle>,
    // Each bundle's default delegation scope, built once so a delegation shares it
    // instead of formatting and allocating its own.
    default_scopes: FastMap<BundleId, CapabilityScope>,
    links: BTreeMap<BundleId, LinkRecord>,
    sessions: SessionTable,
    // Open sessions held by delegation, for `stats` without a scan.
    delegated: u64,
    // A closed session's last generation, so reopening continues the count.
    retired: FastMap<SessionId, u64>,
    authorities: Vec<AuthorityEntry>,
    authority_ix: FastMap<AuthorityId, Ix>,
    bundle_names: Vec<BundleId>,
    bundle_ix: FastMap<BundleId, Ix>,
    upgrades: UpgradeBook,
    // The cap checked commands apply to new authorities (`None`: `MAX_AUTHORITIES`).
    // Configuration, not state: snapshots, equality and replay ignore it.
    authority_limit: Option<u64>,
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
    pub fn bundle<Q>(&self, id: &Q) -> Option<&ComposedBundle>
    where
        BundleId: std::borrow::Borrow<Q>,
        Q: Ord + ?Sized,
    {
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

    pub(crate) fn record(&self, session: &SessionId) -> Option<Record> {
        self.sessions.get(session)
    }

    pub(crate) fn session_bundle(&self, session: &SessionId) -> Option<BundleId> {
        self.record(session)?.bundle.and_then(|b| self.bundle_names.get(b.slot()).cloned())
    }

    pub(crate) fn retired_generation(&self, session: &SessionId) -> Option<u64> {
        self.retired.get(session).copied()
    }

    pub(crate) fn authority_count(&self) -> usize {
        self.authorities.len()
    }

    /// Caps the distinct authorities that checked commands may bring in at `max` (at most
    /// [`MAX_AUTHORITIES`]). An authority, once seen, is remembered for the life of the
    /// state, so callers that accept authority ids from untrusted parties bound the memory
    /// this way: a command naming one authority too many is refused with
    /// [`CommandError::TooManyAuthorities`](crate::CommandError::TooManyAuthorities), while
    /// authorities already known stay usable. Facts applied directly (a journal replay)
    /// are not refused, so a state reopened with a lower cap than its journal needs still
    /// loads whole.
    ///
    /// ```
    /// use reconf_core::{AuthorityId, Command, CommandError, SessionId, State};
    /// let mut state = State::new();
    /// state.set_authority_limit(1);
    /// let open = |n, a: &str| Command::OpenSession {
    ///     session: SessionId::from_u128(n),
    ///     authority: AuthorityId::from_label(a),
    ///     bundle: None,
    /// };
    /// let fact = state.check(&open(1, "a"), 0)?;
    /// state.apply(1, &fact);
    /// assert!(state.check(&open(2, "a"), 0).is_ok());
    /// assert_eq!(state.check(&open(2, "b"), 0), Err(CommandError::TooManyAuthorities { max: 1 }));
    /// # Ok::<(), CommandError>(())
    /// ```
    pub fn set_authority_limit(&mut self, max: u64) {
        self.authority_limit = Some(max.min(MAX_AUTHORITIES));
    }

    /// The cap on distinct authorities checked commands apply
    /// ([`set_authority_limit`](Self::set_authority_limit); [`MAX_AUTHORITIES`] unless set).
    pub fn authority_limit(&self) -> u64 {
        self.authority_limit.unwrap_or(MAX_AUTHORITIES)
    }

    /// A session's record.
    pub fn session(&self, session: &SessionId) -> Option<SessionRecord> {
        let r = self.sessions.get(session)?;
        Some(SessionRecord {
            holder: self.authority_id(r.holder),
            delegator: r.delegator.map(|d| self.authority_id(d)),
            class: r.class(),
            generation: u64::from(r.generation),
            bundle: r.bundle.and_then(|b| self.bundle_names.get(b.slot()).cloned()),
        })
    }

    /// The active holder of a session.
    pub fn holder(&self, session: &SessionId) -> Option<AuthorityId> {
        self.sessions.get(session).map(|r| self.authority_id(r.holder))
    }

    /// An authority's footprint, as sorted sets; empty for an unknown authority.
    ///
    /// Built by reading the session table (stopping as soon as the summary's count of
    /// entries is found), so it costs time in the number of open sessions: meant for
    /// inspection and audits. [`footprint_summary`](Self::footprint_summary) is O(1).
    pub fn footprint(&self, authority: &AuthorityId) -> SessionFootprint {
        let mut f = SessionFootprint::default();
        let Some(ix) = self.authority_ix(authority) else { return f };
        let mut left = self.summary_of(ix).total();
        for (s, r) in self.sessions.iter() {
            if left == 0 {
                break;
            }
            if r.holder == ix {
                left = left.saturating_sub(1);
                if r.delegator.is_some() {
                    f.delegated_in.insert(s);
                } else {
                    f.native.insert(s);
                }
            }
            if r.delegator == Some(ix) {
                left = left.saturating_sub(1);
                f.delegated_out.insert(s);
            }
        }
        f
    }

    /// An authority's footprint summary, in O(1).
    pub fn footprint_summary(&self, authority: &AuthorityId) -> FootprintSummary {
        self.authority_ix(authority).map(|ix| self.summary_of(ix)).unwrap_or_default()
    }

    /// Every authority the state has seen, in first-seen order.
    pub fn authorities(&self) -> impl Iterator<Item = AuthorityId> + '_ {
        self.authorities.iter().map(|e| e.id)
    }

    /// Open sessions, in no particular order.
    pub fn session_ids(&self) -> impl Iterator<Item = SessionId> + '_ {
        self.sessions.keys()
    }

    /// Counts.
    pub fn stats(&self) -> StateStats {
        let delegated = self.delegated;
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
                    self.authorities.push(AuthorityEntry { id: *id, summary: FootprintSummary::default() });
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

    fn insert_bundle(&mut self, bundle: ComposedBundle) {
        self.default_scopes.insert(bundle.id.clone(), CapabilityScope::for_bundle(&bundle.id));
        self.bundles.insert(bundle.id.clone(), bundle);
    }

    /// The default scope of a delegation through a registered bundle, shared.
    pub(crate) fn default_scope(&self, bundle: &BundleId) -> Option<&CapabilityScope> {
        self.default_scopes.get(bundle)
    }

    fn summary_mut(&mut self, ix: Ix) -> Option<&mut FootprintSummary> {
        self.authorities.get_mut(ix.slot()).map(|e| &mut e.summary)
    }

    fn summary_of(&self, ix: Ix) -> FootprintSummary {
        self.authorities.get(ix.slot()).map(|e| e.summary).unwrap_or_default()
    }

    /// Takes a record that left the table out of the summaries of the authorities it names.
    fn unindex(&mut self, session: SessionId, r: Record) {
        if let Some(sum) = self.summary_mut(r.holder) {
            sum.remove(session, r.class());
        }
        if let Some(d) = r.delegator {
            self.delegated = self.delegated.saturating_sub(1);
            if let Some(sum) = self.summary_mut(d) {
                sum.remove(session, SessionClass::DelegatedOut);
            }
        }
    }

    /// Adds a record that entered the table to the summaries of the authorities it names.
    fn index(&mut self, session: SessionId, r: Record) {
        if let Some(d) = r.delegator {
            self.delegated += 1;
            if let Some(sum) = self.summary_mut(d) {
                sum.add(session, SessionClass::DelegatedOut);
            }
        }
        if let Some(sum) = self.summary_mut(r.holder) {
            sum.add(session, r.class());
        }
    }

    /// Applies a durable fact written at journal `sequence`. Total and deterministic: any
    /// fact has a defined effect, and the same facts in the same order give the same state.
    pub fn apply(&mut self, sequence: u64, fact: &Fact) -> Applied {
        self.head = self.head.max(sequence);
        match &fact.change {
            Change::BundleRegistered { bundle } => {
                self.insert_bundle(bundle.clone());
                Applied::BundleRegistered { bundle: bundle.id.clone() }
            }
            Change::BundlesLinked { left, right, linked } => {
                self.insert_bundle(linked.clone());
                self.links.insert(linked.id.clone(), LinkRecord { left: left.clone(), right: right.clone() });
                Applied::BundlesLinked { linked: linked.id.clone() }
            }
            Change::SessionOpened { session, authority, bundle, generation } => {
                let holder = self.intern_authority(authority);
                let bundle = bundle.as_ref().and_then(|b| self.intern_bundle(b));
                let r =
                    Record { holder, delegator: None, bundle, generation: stored_generation(*generation) };
                match self.sessions.insert(*session, r) {
                    Some(prev) => self.unindex(*session, prev),
                    None => {
                        self.retired.remove(session);
                    }
                }
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

    /// Applies a batch of durable facts written at `first`, `first + 1`, … Equivalent to
    /// applying them one by one; faster at scale, because every session record and
    /// footprint entry the batch will change is looked up before any is changed, so their
    /// cache misses overlap instead of queueing one behind the other.
    ///
    /// ```
    /// use reconf_core::{AuthorityId, Command, SessionId, State};
    /// let a = AuthorityId::from_label("a");
    /// let state = State::new();
    /// let mut checker = state.checker();
    /// let facts: Vec<_> = (1..=3)
    ///     .map(|i| {
    ///         let open = Command::OpenSession { session: SessionId::from_u128(i), authority: a, bundle: None };
    ///         checker.check(&open, 0).unwrap()
    ///     })
    ///     .collect();
    /// let mut batched = State::new();
    /// batched.apply_batch(1, &facts);
    /// assert_eq!(batched, State::replay(facts.iter().enumerate().map(|(i, f)| (i as u64 + 1, f))));
    /// ```
    pub fn apply_batch(&mut self, first: u64, facts: &[Fact]) -> Vec<Applied> {
        self.prefetch_facts(facts);
        facts.iter().enumerate().map(|(i, f)| self.apply(first.saturating_add(i as u64), f)).collect()
    }

    /// Loads the records of `sessions` into the cache ahead of a batch that will check or
    /// change them. A pure hint: it changes nothing and answers nothing. At a million
    /// sessions each record lookup is a cache miss; issued back to back for a whole batch,
    /// with no lookup waiting for another, the misses overlap, and the checks that follow
    /// find the records cached.
    pub fn prefetch_sessions<I>(&self, sessions: I)
    where
        I: IntoIterator<Item = SessionId>,
    {
        self.sessions.prefetch(sessions);
    }

    /// The prefetch behind [`apply_batch`](Self::apply_batch), for a caller that applies a
    /// batch fact by fact: loads the records the facts name. A pure hint.
    pub fn prefetch_facts(&self, facts: &[Fact]) {
        if facts.len() < 2 {
            return;
        }
        self.sessions.prefetch(facts.iter().filter_map(Fact::session));
    }

    /// Applies a durable delegation fact written at `sequence` and returns its receipt:
    /// the same as [`apply`](Self::apply) of the fact, typed for a caller that needs the
    /// receipt.
    pub fn apply_delegation(&mut self, sequence: u64, d: &DelegationFact) -> DelegationReceipt {
        self.head = self.head.max(sequence);
        let from = self.intern_authority(&d.from);
        let to = self.intern_authority(&d.to);
        let bundle = self.intern_bundle(&d.bundle);
        let from_before = self.summary_of(from);
        let to_before = self.summary_of(to);
        let r =
            Record { holder: to, delegator: Some(from), bundle, generation: stored_generation(d.generation) };
        match self.sessions.insert(d.session, r) {
            Some(prev) => self.unindex(d.session, prev),
            // Only an unchecked fact delegates a session that is not open.
            None => {
                self.retired.remove(&d.session);
            }
        }
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

    /// Checks one session's record in O(1): it names interned authorities, and its holder
    /// is not also its delegator (which no checked command produces). This is the
    /// incremental check run for the session a command touches.
    pub fn session_coherence(&self, session: &SessionId) -> Result<(), Violation> {
        let Some(r) = self.sessions.get(session) else {
            return Ok(());
        };
        self.record_coherence(*session, &r)
    }

    fn record_coherence(&self, session: SessionId, r: &Record) -> Result<(), Violation> {
        let n = self.authorities.len();
        if let Some(bad) = [Some(r.holder), r.delegator].into_iter().flatten().find(|ix| ix.slot() >= n) {
            return Err(Violation::UnknownAuthority { session, index: bad.0.get() });
        }
        if r.delegator == Some(r.holder) {
            return Err(Violation::HolderIsDelegator { session, authority: self.authority_id(r.holder) });
        }
        Ok(())
    }

    /// Every authority's summary recomputed from the records, in one pass that also checks
    /// each record; `None` as soon as a record fails its own check.
    fn summaries_from_sound_records(&self) -> Option<Vec<FootprintSummary>> {
        let mut sums = vec![FootprintSummary::default(); self.authorities.len()];
        for (s, r) in self.sessions.iter() {
            self.record_coherence(s, &r).ok()?;
            if let Some(sum) = sums.get_mut(r.holder.slot()) {
                sum.add(s, r.class());
            }
            if let Some(sum) = r.delegator.and_then(|d| sums.get_mut(d.slot())) {
                sum.add(s, SessionClass::DelegatedOut);
            }
        }
        Some(sums)
    }

    /// Full coherence audit of every session: each record is well formed, and every
    /// authority's incrementally kept summary equals the one recomputed from the records
    /// (the footprints themselves are the records, so they cannot disagree with them).
    /// One pass over the table, no allocation per session. Violations come sorted; one bad
    /// session never hides another.
    pub fn verify_coherence(&self) -> CoherenceReport {
        let sound = self.summaries_from_sound_records().is_some_and(|sums| {
            sums.iter().zip(&self.authorities).all(|(recomputed, e)| *recomputed == e.summary)
        });
        if sound {
            return CoherenceReport { sessions_checked: self.sessions.len() as u64, violations: Vec::new() };
        }
        self.full_coherence_scan()
    }

    /// The full scan behind [`verify_coherence`](Self::verify_coherence), naming every
    /// violation: the independent footprint [`audit`](crate::audit) over footprints built
    /// from the records, each record's own check, and each authority's summary against
    /// the one those footprints give.
    pub fn full_coherence_scan(&self) -> CoherenceReport {
        let mut footprints = vec![SessionFootprint::default(); self.authorities.len()];
        let mut violations = Vec::new();
        for (s, r) in self.sessions.iter() {
            if let Err(v) = self.record_coherence(s, &r) {
                violations.push(v);
            }
            if let Some(f) = footprints.get_mut(r.holder.slot()) {
                match r.class() {
                    SessionClass::DelegatedIn => f.delegated_in.insert(s),
                    _ => f.native.insert(s),
                };
            }
            if let Some(f) = r.delegator.and_then(|d| footprints.get_mut(d.slot())) {
                f.delegated_out.insert(s);
            }
        }
        let mut report = coherence::audit(self.authorities.iter().map(|e| e.id).zip(footprints.iter()));
        report.violations.extend(violations);
        for (f, e) in footprints.iter().zip(&self.authorities) {
            let want = f.summary();
            if want != e.summary {
                report.violations.push(Violation::SummaryMismatch {
                    authority: e.id,
                    kept: e.summary,
                    recomputed: want,
                });
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
    /// let fact = state.check(&cmd, 0).unwrap();
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
                    s,
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
            s.insert_bundle(b);
        }
        s.links = snap.links.into_iter().collect();
        for a in &snap.authorities {
            let (_, fresh) =
                intern(&mut s.authority_ix, s.authorities.len(), a).ok_or(SnapshotError::TooLarge)?;
            if !fresh {
                return Err(SnapshotError::DuplicateAuthority { authority: *a });
            }
            s.authorities.push(AuthorityEntry { id: *a, summary: FootprintSummary::default() });
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
        self.sessions.capacity() * 32
            + self.retired.capacity() * (std::mem::size_of::<(SessionId, u64)>() + 1)
            + self.authorities.capacity() * std::mem::size_of::<AuthorityEntry>()
            + self.authority_ix.capacity() * (std::mem::size_of::<(AuthorityId, Ix)>() + 1)
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
            Command::Delegate(Delegation::new(SessionId::from_u128(1), a, b, bundle)),
        ];
        for (i, c) in cmds.iter().enumerate() {
            let f = st.check(c, 0).unwrap();
            st.apply(i as u64 + 1, &f);
        }
        st
    }

    #[test]
    fn the_fast_proof_agrees_with_the_full_scan() {
        let st = state_with_delegation();
        assert!(st.verify_coherence().is_coherent());
        assert_eq!(st.verify_coherence(), st.full_coherence_scan());
        assert_eq!(st.footprint_summary(&AuthorityId::from_label("a")).delegated_out, 1);
    }

    #[test]
    fn a_summary_out_of_step_with_the_records_is_reported() {
        let mut st = state_with_delegation();
        st.authorities[0].summary.native += 1;
        let report = st.verify_coherence();
        assert!(
            matches!(report.violations.as_slice(), [Violation::SummaryMismatch { authority, .. }] if *authority == AuthorityId::from_label("a")),
            "{report:?}"
        );
    }

    #[test]
    fn a_raw_self_delegation_is_reported_not_hidden() {
        let mut st = state_with_delegation();
        let b = AuthorityId::from_label("b");
        let d = DelegationFact {
            session: SessionId::from_u128(1),
            from: b,
            to: b,
            bundle: BundleId::new("x").unwrap(),
            context: b.default_context(),
            scope: crate::CapabilityScope::WholeSession,
            generation: 3,
            at_ms: 0,
        };
        st.apply(9, &Fact::new(Change::SessionDelegated(d)));
        let v = Violation::HolderIsDelegator { session: SessionId::from_u128(1), authority: b };
        assert_eq!(st.session_coherence(&SessionId::from_u128(1)), Err(v.clone()));
        assert!(st.verify_coherence().violations.contains(&v));
    }
}
