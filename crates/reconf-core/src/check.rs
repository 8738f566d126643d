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
use crate::scope::{CapabilityScope, LinkBoundary};
use crate::state::{State, MAX_AUTHORITIES, MAX_GENERATION};

/// The parts of a session record the rules need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct View {
    holder: AuthorityId,
    delegator: Option<AuthorityId>,
    generation: u64,
}

#[derive(Debug, Clone, Copy)]
enum Slot {
    Open(View),
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
/// // Each command sees the effect of the ones before it in the batch.
/// checker.check(&Command::RegisterBundle(ComposedBundle::new(bundle.clone()))).unwrap();
/// checker.check(&Command::OpenSession { session: s, authority: a, bundle: None }).unwrap();
/// checker.check(&Command::Delegate(Delegation::new(s, a, b, bundle.clone(), 0))).unwrap();
/// // `a` no longer holds the session within this batch.
/// assert!(checker.check(&Command::Delegate(Delegation::new(s, a, b, bundle, 0))).is_err());
/// ```
#[derive(Debug)]
pub struct Checker<'s> {
    state: &'s State,
    sessions: FastMap<SessionId, Slot>,
    bundles: BTreeMap<BundleId, ComposedBundle>,
    new_authorities: FastMap<AuthorityId, ()>,
    // False for a lone `State::check`: nothing follows it, so recording its effect in the
    // overlay would only allocate.
    remember: bool,
}

impl State {
    /// A checker for a batch of commands against this state.
    pub fn checker(&self) -> Checker<'_> {
        Checker {
            state: self,
            sessions: FastMap::default(),
            bundles: BTreeMap::new(),
            new_authorities: FastMap::default(),
            remember: true,
        }
    }

    /// Checks one command: the fact it would write, or why it is refused. Never mutates.
    pub fn check(&self, command: &Command) -> Result<Fact, CommandError> {
        let mut checker = self.checker();
        checker.remember = false;
        checker.check(command)
    }
}

impl<'s> Checker<'s> {
    // Every write to the overlay goes through these three, which skip it for a lone check.

    fn note(&mut self, session: SessionId, slot: Slot) {
        if self.remember {
            self.sessions.insert(session, slot);
        }
    }

    fn note_bundle(&mut self, bundle: &ComposedBundle) {
        if self.remember {
            self.bundles.insert(bundle.id.clone(), bundle.clone());
        }
    }

    fn note_authority(&mut self, authority: AuthorityId) {
        if self.remember {
            self.new_authorities.insert(authority, ());
        }
    }

    fn view(&self, session: &SessionId) -> Option<View> {
        match self.sessions.get(session) {
            Some(Slot::Open(v)) => Some(*v),
            Some(Slot::Closed(_)) => None,
            None => self.state.record(session).map(|r| View {
                holder: self.state.authority_id(r.holder),
                delegator: r.delegator.map(|d| self.state.authority_id(d)),
                generation: u64::from(r.generation),
            }),
        }
    }

    fn last_generation(&self, session: &SessionId) -> Option<u64> {
        match self.sessions.get(session) {
            Some(Slot::Open(v)) => Some(v.generation),
            Some(Slot::Closed(g)) => Some(*g),
            None => self
                .state
                .record(session)
                .map(|r| u64::from(r.generation))
                .or_else(|| self.state.retired_generation(session)),
        }
    }

    fn bundle(&self, id: &BundleId) -> Option<&ComposedBundle> {
        self.bundles.get(id).or_else(|| self.state.bundle(id))
    }

    fn require_bundle(&self, id: &BundleId) -> Result<&ComposedBundle, CommandError> {
        self.bundle(id).ok_or_else(|| CommandError::UnknownBundle { bundle: id.clone() })
    }

    fn admit_authority(&mut self, a: &AuthorityId) -> Result<(), CommandError> {
        if self.state.authority_ix(a).is_some() || self.new_authorities.contains_key(a) {
            return Ok(());
        }
        let total = (self.state.authority_count() + self.new_authorities.len()) as u64;
        if total >= MAX_AUTHORITIES {
            return Err(CommandError::TooManyAuthorities { max: MAX_AUTHORITIES });
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

    /// A session's owner generation as the earlier commands of the batch leave it: the
    /// current one while open, the last one once closed.
    pub fn generation(&self, session: &SessionId) -> Option<u64> {
        self.last_generation(session)
    }

    /// The active holder of a session as the earlier commands of the batch leave it.
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

    /// Checks the next command of the batch. On success the overlay records its effect so
    /// later commands see it; on error nothing changes.
    pub fn check(&mut self, command: &Command) -> Result<Fact, CommandError> {
        let change = match command {
            Command::RegisterBundle(bundle) => {
                if self.bundle(&bundle.id).is_some() {
                    return Err(CommandError::BundleAlreadyRegistered { bundle: bundle.id.clone() });
                }
                self.note_bundle(bundle);
                Change::BundleRegistered { bundle: bundle.clone() }
            }
            Command::LinkBundles { left, right, linked } => {
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
                Change::BundlesLinked { left: left.clone(), right: right.clone(), linked: bundle }
            }
            Command::OpenSession { session, authority, bundle } => {
                if let Some(b) = bundle {
                    self.require_bundle(b)?;
                }
                if let Some(v) = self.view(session) {
                    return Err(CommandError::SessionAlreadyHeld { session: *session, holder: v.holder });
                }
                self.admit_authority(authority)?;
                let generation = Self::next_generation(*session, self.last_generation(session))?;
                self.note(*session, Slot::Open(View { holder: *authority, delegator: None, generation }));
                Change::SessionOpened {
                    session: *session,
                    authority: *authority,
                    bundle: bundle.clone(),
                    generation,
                }
            }
            Command::Delegate(d) => Change::SessionDelegated(self.check_delegation(d)?),
            Command::CloseSession { session, authority } => {
                let v = self.active_holder(session, authority)?;
                self.note(*session, Slot::Closed(v.generation));
                Change::SessionClosed { session: *session, authority: *authority }
            }
        };
        Ok(Fact::new(change))
    }

    fn check_delegation(&mut self, d: &Delegation) -> Result<DelegationFact, CommandError> {
        if d.from == d.to {
            return Err(CommandError::SelfDelegation { session: d.session, authority: d.from });
        }
        self.require_bundle(&d.bundle)?;
        // The state's shared copy of the default scope when it has one; a bundle registered
        // earlier in this batch gets it built.
        let shared = if d.scope.is_none() { self.state.default_scope(&d.bundle) } else { None };
        let scope = shared.cloned().unwrap_or_else(|| d.effective_scope());
        if matches!(&scope, CapabilityScope::Fragments(f) if f.is_empty()) {
            return Err(CommandError::EmptyScope);
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
        self.admit_authority(&d.to)?;
        let generation = Self::next_generation(d.session, Some(v.generation))?;
        self.note(d.session, Slot::Open(View { holder: d.to, delegator: Some(d.from), generation }));
        Ok(DelegationFact {
            session: d.session,
            from: d.from,
            to: d.to,
            bundle: d.bundle.clone(),
            context: d.context.unwrap_or_else(|| d.from.default_context()),
            scope,
            generation,
            at_ms: d.at_ms,
        })
    }
}
