//! Checking commands against a state without mutating it.
//!
//! A [`Checker`] reads the state through a small overlay holding what the earlier commands
//! of the same batch would change, so a whole batch is checked in order and persisted as
//! one write, and nothing is applied until it is durable. The overlay holds only touched
//! sessions and bundles: its cost follows the batch, not the state.

use std::collections::BTreeMap;

use crate::bundle::ComposedBundle;
use crate::command::{Command, Delegation};
use crate::error::CommandError;
use crate::fact::{Change, DelegationFact, Fact};
use crate::footprint::FastMap;
use crate::ids::{AuthorityId, BundleId, SessionId};
use crate::ownership::{LiveSessions, OwnerCapability, OwnerLabel, OwnerToken, OwnershipError};
use crate::scope::{CapabilityScope, LinkBoundary, BUNDLE_FRAGMENT_PREFIX};
use crate::state::{State, MAX_GENERATION};

/// Why a command acting through a live owner (a handoff, a close with a handle) was refused
/// before anything was staged or written. (Exhaustive on purpose: a caller maps each cause
/// to its own error.)
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LiveError {
    /// The owner handle is for another session than the delegation.
    #[error("live handoff session mismatch: handle is for {handle}, request for {request}")]
    SessionMismatch {
        /// The handle's session.
        handle: SessionId,
        /// The delegation's session.
        request: SessionId,
    },
    /// The live owner cannot hand over (stale handle, not live, already staged, widening).
    #[error(transparent)]
    Ownership(#[from] OwnershipError),
    /// The command underneath (the delegation, the close) is refused.
    #[error(transparent)]
    Rejected(#[from] CommandError),
}

/// The parts of a session record the rules need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct View {
    holder: AuthorityId,
    delegator: Option<AuthorityId>,
    generation: u64,
}

#[derive(Debug, Clone)]
enum Slot {
    /// Open, with the bundle it runs.
    Open(View, Option<BundleId>),
    Closed(u64),
}

/// Checks a batch of commands in order against a state as the earlier ones would leave it.
///
/// ```
/// use reconf_core::{AuthorityId, BundleId, Command, ComposedBundle, Delegation, SessionId, State};
/// let state = State::new();
/// let (a, b) = (AuthorityId::from_label("a"), AuthorityId::from_label("b"));
/// let s = SessionId::from_u128(1);
/// let bundle = BundleId::new("x").unwrap();
/// let mut checker = state.checker();
/// let now_ms = 1_700_000_000_000;
/// // Each command sees the effect of the ones before it in the batch.
/// checker.check(&Command::RegisterBundle(ComposedBundle::new(bundle.clone())), now_ms).unwrap();
/// checker.check(&Command::OpenSession { session: s, authority: a, bundle: None }, now_ms).unwrap();
/// checker.check(&Command::Delegate(Delegation::new(s, a, b, bundle.clone())), now_ms).unwrap();
/// // `a` no longer holds the session within this batch.
/// assert!(checker.check(&Command::Delegate(Delegation::new(s, a, b, bundle)), now_ms).is_err());
/// ```
#[derive(Debug)]
pub struct Checker<'s> {
    state: &'s State,
    overlay: Overlay,
    // False for a lone `State::check`: nothing follows it, so recording its effect in the
    // overlay would only allocate.
    remember: bool,
}

/// What the commands checked so far would change, kept apart from the state so checking
/// can pause and resume: a writer that pipelines its commits checks the next batch against
/// the state *plus* the batch still being made durable, by resuming a checker with the
/// overlay the previous one left ([`Checker::into_overlay`], [`State::resume_checker`]).
///
/// Sound as long as every fact behind the overlay is either still pending or already
/// applied to the state it resumes over (an entry then says what the applied state says,
/// or what a pending later fact makes of it). Drop it when a pending batch is abandoned.
#[derive(Debug, Default)]
pub struct Overlay {
    sessions: FastMap<SessionId, Slot>,
    bundles: BTreeMap<BundleId, ComposedBundle>,
    new_authorities: FastMap<AuthorityId, ()>,
}

impl Overlay {
    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty() && self.bundles.is_empty() && self.new_authorities.is_empty()
    }

    /// Forgets everything recorded, keeping the tables' memory: a writer that checks
    /// batch after batch would otherwise grow them again from nothing for each one.
    pub fn clear(&mut self) {
        self.sessions.clear();
        self.bundles.clear();
        self.new_authorities.clear();
    }
}

impl State {
    /// A checker for a batch of commands against this state.
    pub fn checker(&self) -> Checker<'_> {
        self.resume_checker(Overlay::default())
    }

    /// A checker against this state plus what `overlay` says the commands checked before
    /// (and not yet applied, or applied since) change.
    pub fn resume_checker(&self, mut overlay: Overlay) -> Checker<'_> {
        // Authorities interned since are the state's now; counting them twice would bring
        // the authority limit closer than it is.
        overlay.new_authorities.retain(|a, ()| self.authority_ix(a).is_none());
        Checker { state: self, overlay, remember: true }
    }

    /// Checks one command at time `now_ms` (milliseconds since the Unix epoch; only a
    /// delegation records it): the fact it would write, or why it is refused. Never
    /// mutates.
    pub fn check(&self, command: &Command, now_ms: u64) -> Result<Fact, CommandError> {
        let mut checker = self.checker();
        checker.remember = false;
        checker.check(command, now_ms)
    }

    /// Whether a live owner may be attached to `session` for `boundary`, and at which
    /// owner generation: the session must be open and the boundary's bundle registered.
    ///
    /// The boundary must be of the bundle the session runs (any registered bundle for a
    /// session opened without one): an owner attached for one bundle's traffic must not
    /// be accepted on another's.
    pub fn check_attach(&self, session: &SessionId, boundary: &LinkBoundary) -> Result<u64, CommandError> {
        let record = self.session(session).ok_or(CommandError::UnknownSession { session: *session })?;
        if self.bundle(&boundary.bundle).is_none() {
            return Err(CommandError::UnknownBundle { bundle: boundary.bundle.clone() });
        }
        if let Some(runs) = record.bundle {
            if runs != boundary.bundle {
                return Err(CommandError::SessionBundleMismatch {
                    session: *session,
                    session_bundle: runs,
                    bundle: boundary.bundle.clone(),
                });
            }
        }
        Ok(record.generation)
    }
}

impl<'s> Checker<'s> {
    /// What the commands checked so far change, to resume checking later (see
    /// [`Overlay`]).
    pub fn into_overlay(self) -> Overlay {
        self.overlay
    }

    // Every write to the overlay goes through these three, which skip it for a lone check.

    fn note(&mut self, session: SessionId, slot: Slot) {
        if self.remember {
            self.overlay.sessions.insert(session, slot);
        }
    }

    fn note_bundle(&mut self, bundle: &ComposedBundle) {
        if self.remember {
            self.overlay.bundles.insert(bundle.id.clone(), bundle.clone());
        }
    }

    fn note_authority(&mut self, authority: AuthorityId) {
        if self.remember {
            self.overlay.new_authorities.insert(authority, ());
        }
    }

    fn view(&self, session: &SessionId) -> Option<View> {
        match self.overlay.sessions.get(session) {
            Some(Slot::Open(v, _)) => Some(*v),
            Some(Slot::Closed(_)) => None,
            None => self.state.record(session).map(|r| View {
                holder: self.state.authority_id(r.holder),
                delegator: r.delegator.map(|d| self.state.authority_id(d)),
                generation: u64::from(r.generation),
            }),
        }
    }

    fn session_bundle(&self, session: &SessionId) -> Option<BundleId> {
        match self.overlay.sessions.get(session) {
            Some(Slot::Open(_, bundle)) => bundle.clone(),
            Some(Slot::Closed(_)) => None,
            None => self.state.session_bundle(session),
        }
    }

    fn last_generation(&self, session: &SessionId) -> Option<u64> {
        match self.overlay.sessions.get(session) {
            Some(Slot::Open(v, _)) => Some(v.generation),
            Some(Slot::Closed(g)) => Some(*g),
            None => self
                .state
                .record(session)
                .map(|r| u64::from(r.generation))
                .or_else(|| self.state.retired_generation(session)),
        }
    }

    fn bundle(&self, id: &BundleId) -> Option<&ComposedBundle> {
        self.overlay.bundles.get(id).or_else(|| self.state.bundle(id))
    }

    fn require_bundle(&self, id: &BundleId) -> Result<&ComposedBundle, CommandError> {
        self.bundle(id).ok_or_else(|| CommandError::UnknownBundle { bundle: id.clone() })
    }

    fn admit_authority(&mut self, a: &AuthorityId) -> Result<(), CommandError> {
        if self.state.authority_ix(a).is_some() || self.overlay.new_authorities.contains_key(a) {
            return Ok(());
        }
        let total = (self.state.authority_count() + self.overlay.new_authorities.len()) as u64;
        let max = self.state.authority_limit();
        if total >= max {
            return Err(CommandError::TooManyAuthorities { max });
        }
        self.note_authority(*a);
        Ok(())
    }

    fn active_holder(&self, session: &SessionId, authority: &AuthorityId) -> Result<View, CommandError> {
        let v = self.view(session).ok_or(CommandError::UnknownSession { session: *session })?;
        if v.holder != *authority {
            return Err(CommandError::NotActiveHolder {
                session: *session,
                authority: *authority,
                holder: v.holder,
                delegated_out: v.delegator == Some(*authority),
            });
        }
        Ok(v)
    }

    /// The active holder of a session as the earlier commands of the batch leave it (for
    /// callers that build batches, such as benchmarks and simulators).
    pub fn holder(&self, session: &SessionId) -> Option<AuthorityId> {
        self.view(session).map(|v| v.holder)
    }

    /// The generation after `last` (1 for a session never seen), refused past the limit so
    /// that generations never wrap or stall.
    fn next_generation(session: SessionId, last: Option<u64>) -> Result<u64, CommandError> {
        let next = last.map_or(1, |g| g.saturating_add(1));
        if next > MAX_GENERATION {
            return Err(CommandError::GenerationExhausted { session });
        }
        Ok(next)
    }

    /// Checks the next command of the batch at time `now_ms`. On success the overlay
    /// records its effect so later commands see it; on error nothing changes. The typed
    /// `check_*` methods do the same for one kind of command and return what a caller
    /// answers with.
    pub fn check(&mut self, command: &Command, now_ms: u64) -> Result<Fact, CommandError> {
        match command {
            Command::RegisterBundle(bundle) => self.check_register(bundle),
            Command::LinkBundles { left, right, linked } => {
                self.check_link(left, right, linked).map(|(fact, _)| fact)
            }
            Command::OpenSession { session, authority, bundle } => {
                self.check_open(*session, *authority, bundle.as_ref()).map(|(fact, _)| fact)
            }
            Command::Delegate(d) => {
                self.check_delegation(d, now_ms).map(|d| Fact::new(Change::SessionDelegated(d)))
            }
            Command::CloseSession { session, authority } => self.check_close(*session, *authority),
        }
    }

    /// Checks registering `bundle`.
    pub fn check_register(&mut self, bundle: &ComposedBundle) -> Result<Fact, CommandError> {
        if self.bundle(&bundle.id).is_some() {
            return Err(CommandError::BundleAlreadyRegistered { bundle: bundle.id.clone() });
        }
        self.note_bundle(bundle);
        Ok(Fact::new(Change::BundleRegistered { bundle: bundle.clone() }))
    }

    /// Checks linking `left` and `right` into `linked`; returns the fact and the bundle
    /// the link creates.
    pub fn check_link(
        &mut self,
        left: &BundleId,
        right: &BundleId,
        linked: &BundleId,
    ) -> Result<(Fact, ComposedBundle), CommandError> {
        {
            let l = self.require_bundle(left)?;
            let r = self.require_bundle(right)?;
            if left == right {
                return Err(CommandError::SelfLink { bundle: left.clone() });
            }
            if self.bundle(linked).is_some() {
                return Err(CommandError::LinkedIdTaken { linked: linked.clone() });
            }
            if let Err(i) = l.compatible_with(r) {
                return Err(CommandError::IncompatibleInterfaces {
                    left: left.clone(),
                    right: right.clone(),
                    left_missing: i.left_missing,
                    right_missing: i.right_missing,
                });
            }
            let overlap = l.overlapping_sessions(r);
            if let Some(first) = overlap.first() {
                return Err(CommandError::OverlappingSessions {
                    left: left.clone(),
                    right: right.clone(),
                    first: *first,
                    sessions: overlap,
                });
            }
            let bundle = l.linked(r, linked.clone());
            self.note_bundle(&bundle);
            let change =
                Change::BundlesLinked { left: left.clone(), right: right.clone(), linked: bundle.clone() };
            Ok((Fact::new(change), bundle))
        }
    }

    /// Checks opening `session` held by `authority`; returns the fact and the owner
    /// generation the session starts at.
    pub fn check_open(
        &mut self,
        session: SessionId,
        authority: AuthorityId,
        bundle: Option<&BundleId>,
    ) -> Result<(Fact, u64), CommandError> {
        if let Some(b) = bundle {
            self.require_bundle(b)?;
        }
        if let Some(v) = self.view(&session) {
            return Err(CommandError::SessionAlreadyHeld { session, holder: v.holder });
        }
        self.admit_authority(&authority)?;
        let generation = Self::next_generation(session, self.last_generation(&session))?;
        self.note(
            session,
            Slot::Open(View { holder: authority, delegator: None, generation }, bundle.cloned()),
        );
        let change = Change::SessionOpened { session, authority, bundle: bundle.cloned(), generation };
        Ok((Fact::new(change), generation))
    }

    /// Checks closing `session` by `authority`.
    pub fn check_close(&mut self, session: SessionId, authority: AuthorityId) -> Result<Fact, CommandError> {
        let v = self.active_holder(&session, &authority)?;
        self.note(session, Slot::Closed(v.generation));
        Ok(Fact::new(Change::SessionClosed { session, authority }))
    }

    /// Checks a live handoff: the delegation `d` at `now_ms` together with moving the live
    /// owner presenting `handle` to `to_owner`. The owner change is validated first, then
    /// the delegation; only when both pass is the new owner staged in `live`, at the owner
    /// generation and with the scope the delegation fact carries. So a refused handoff
    /// stages nothing, and the staged owner commits or aborts with the journal write.
    pub fn check_handoff(
        &mut self,
        d: &Delegation,
        now_ms: u64,
        live: &mut LiveSessions,
        handle: &OwnerCapability,
        to_owner: OwnerLabel,
        token: OwnerToken,
    ) -> Result<DelegationFact, LiveError> {
        if handle.session != d.session {
            return Err(LiveError::SessionMismatch { handle: handle.session, request: d.session });
        }
        // A session that is not open has no live owner either; let the delegation rules
        // name that error.
        if self.view(&d.session).is_some() {
            live.check_stage(handle, &d.effective_scope())?;
        }
        let fact = self.check_delegation(d, now_ms)?;
        live.stage(handle, to_owner, fact.generation, fact.scope.clone(), token)?;
        Ok(fact)
    }

    /// Checks closing a session by its live owner: `handle` must be the current owner's and
    /// hold the whole session; the session is closed as its active holder would close it.
    /// The owner is detached when the close is applied.
    pub fn check_close_owned(
        &mut self,
        live: &LiveSessions,
        handle: &OwnerCapability,
    ) -> Result<Fact, LiveError> {
        live.check_whole_session(handle)?;
        let session = handle.session;
        let holder = self.view(&session).ok_or(CommandError::UnknownSession { session })?.holder;
        Ok(self.check_close(session, holder)?)
    }

    /// Checks a delegation at `now_ms`; returns the delegation fact's content (whose
    /// generation and scope a live handoff stages its new owner with).
    pub fn check_delegation(&mut self, d: &Delegation, now_ms: u64) -> Result<DelegationFact, CommandError> {
        if d.from == d.to {
            return Err(CommandError::SelfDelegation { session: d.session, authority: d.from });
        }
        self.require_bundle(&d.bundle)?;
        // The state's shared copy of the default scope when it has one; a bundle registered
        // earlier in this batch gets it built.
        let shared = if d.scope.is_none() { self.state.default_scope(&d.bundle) } else { None };
        let scope = shared.cloned().unwrap_or_else(|| d.effective_scope());
        if let CapabilityScope::Fragments(f) = &scope {
            if f.is_empty() {
                return Err(CommandError::EmptyScope);
            }
            // A bundle fragment names the bundle it belongs to: only this bundle's may move.
            let own = CapabilityScope::bundle_fragment(&d.bundle);
            if let Some(other) = f.iter().find(|f| f.starts_with(BUNDLE_FRAGMENT_PREFIX) && **f != own) {
                return Err(CommandError::ScopeNamesOtherBundle {
                    bundle: d.bundle.clone(),
                    fragment: other.clone(),
                });
            }
        }
        if let Some(LinkBoundary { bundle, scope: bscope }) = &d.boundary {
            if *bundle != d.bundle {
                return Err(CommandError::BoundaryBundleMismatch {
                    bundle: d.bundle.clone(),
                    boundary: bundle.clone(),
                });
            }
            if *bscope != scope {
                return Err(CommandError::BoundaryScopeMismatch { scope, boundary: bscope.clone() });
            }
        }
        let v = self.active_holder(&d.session, &d.from)?;
        // A session runs one bundle: delegating it through another would rebind it as a
        // side effect. (A session opened without one is bound by its first delegation.)
        if let Some(runs) = self.session_bundle(&d.session) {
            if runs != d.bundle {
                return Err(CommandError::SessionBundleMismatch {
                    session: d.session,
                    session_bundle: runs,
                    bundle: d.bundle.clone(),
                });
            }
        }
        self.admit_authority(&d.to)?;
        let generation = Self::next_generation(d.session, Some(v.generation))?;
        self.note(
            d.session,
            Slot::Open(View { holder: d.to, delegator: Some(d.from), generation }, Some(d.bundle.clone())),
        );
        Ok(DelegationFact {
            session: d.session,
            from: d.from,
            to: d.to,
            bundle: d.bundle.clone(),
            context: d.context.unwrap_or_else(|| d.from.default_context()),
            scope,
            generation,
            at_ms: now_ms,
        })
    }
}
