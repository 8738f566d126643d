//! Live-session ownership: who may act for a session right now, with which generation and
//! scope, and the two-phase handoff that moves it.
//!
//! These are the pure rules; the runtime keeps a [`LiveSessions`] behind a lock and drives
//! the handoff around the journal write.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ids::{BundleId, SessionId};
use crate::scope::{CapabilityScope, LinkBoundary};

/// The name of a live owner (a task, a node, a process), as the embedding runtime labels it.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct OwnerLabel(String);

impl OwnerLabel {
    /// Wraps a label; refused when it is empty or blank (like every id constructor, a
    /// `Result`).
    ///
    /// ```
    /// use reconf_core::OwnerLabel;
    /// assert_eq!(OwnerLabel::new("node-1").unwrap().as_str(), "node-1");
    /// assert!(OwnerLabel::new("  ").is_err());
    /// ```
    pub fn new(label: impl Into<String>) -> Result<Self, crate::IdParseError> {
        let l = label.into();
        if l.trim().is_empty() {
            return Err(crate::IdParseError::EmptyOwnerLabel);
        }
        Ok(Self(l))
    }

    /// The label text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OwnerLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for OwnerLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OwnerLabel({:?})", self.0)
    }
}

/// The unguessable part of an owner capability: 128 random bits the issuing manager chose
/// when it attached or handed over the owner. The core draws no randomness; the caller
/// passes the bits in.
///
/// Compared in constant time, and never shown: `Debug` prints `OwnerToken(..)`. It does
/// serialize, because a capability handed to another process must carry it.
#[derive(Clone, Copy, Serialize, Deserialize)]
pub struct OwnerToken([u8; 16]);

impl OwnerToken {
    /// A token of these bits (take them from a cryptographically secure generator).
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }
}

impl PartialEq for OwnerToken {
    fn eq(&self, other: &Self) -> bool {
        // Every byte is looked at whatever the first difference, so the time taken says
        // nothing about how much of a guess was right.
        self.0.iter().zip(&other.0).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }
}

impl Eq for OwnerToken {}

// Equal tokens have equal bytes, so hashing the bytes agrees with `eq`.
impl std::hash::Hash for OwnerToken {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl fmt::Debug for OwnerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OwnerToken(..)")
    }
}

/// What an owner presents to act for a session: only a manager issues one, at attach or
/// handoff. Its token is unguessable, so a capability built by hand from the session, the
/// generation and the scope is refused.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct OwnerCapability {
    /// The session.
    pub session: SessionId,
    /// The owner generation it was issued at.
    pub generation: u64,
    /// What it covers.
    pub scope: CapabilityScope,
    /// The bundle whose boundaries it may cross (the session's).
    pub bundle: BundleId,
    /// The part only the issuing manager knows.
    pub token: OwnerToken,
}

/// Why ownership was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OwnershipError {
    /// The session has no live owner.
    #[error("session {session} has no live owner")]
    NotLive {
        /// The session.
        session: SessionId,
    },
    /// The session already has a live owner.
    #[error("session {session} already has live owner {owner}{}", on_node(node))]
    AlreadyLive {
        /// The session.
        session: SessionId,
        /// The owner.
        owner: OwnerLabel,
        /// The node (manager) it runs on, when the registry is shared between nodes.
        node: Option<OwnerLabel>,
    },
    /// The node this owner runs on lost its lease on the shared live-owner registry: it
    /// may no longer act for the session (another node may already own it).
    #[error("session {session}: node {node} lost its live-owner lease")]
    LeaseLost {
        /// The session.
        session: SessionId,
        /// The node whose lease is gone.
        node: OwnerLabel,
    },
    /// A capability of an older (or never issued) generation.
    #[error("stale owner for session {session}: capability generation {presented}, current {current}")]
    StaleOwner {
        /// The session.
        session: SessionId,
        /// The generation presented.
        presented: u64,
        /// The current generation.
        current: u64,
    },
    /// A capability whose token is not the one issued for the session's current owner: made
    /// by hand, or from another manager.
    #[error("capability for session {session} was not issued to its current owner")]
    NotIssued {
        /// The session.
        session: SessionId,
    },
    /// A boundary of another bundle than the owner's.
    #[error("session {session}: the owner's bundle is {owner_bundle}, the boundary names {boundary_bundle}")]
    WrongBundle {
        /// The session.
        session: SessionId,
        /// The bundle the owner was attached for.
        owner_bundle: BundleId,
        /// The bundle the boundary names.
        boundary_bundle: BundleId,
    },
    /// Acting for the whole session (closing it, detaching its owner) with a fragment-scoped
    /// capability.
    #[error("session {session}: closing or detaching needs a whole-session owner, this one holds {scope}")]
    NotWholeSession {
        /// The session.
        session: SessionId,
        /// The scope held.
        scope: CapabilityScope,
    },
    /// A capability issued for another session.
    #[error("capability for session {presented} presented to session {session}")]
    WrongSession {
        /// The session addressed.
        session: SessionId,
        /// The session the capability names.
        presented: SessionId,
    },
    /// The boundary or fragment is outside the capability's scope.
    #[error("session {session}: {what} is outside the owner's scope {scope}")]
    OutsideScope {
        /// The session.
        session: SessionId,
        /// The boundary or fragment asked for.
        what: String,
        /// The owner's scope.
        scope: CapabilityScope,
    },
    /// An owner tried to give itself (or its successor) more than it holds.
    #[error("session {session}: scope {requested} would widen the owner's scope {held}")]
    ScopeWidening {
        /// The session.
        session: SessionId,
        /// The scope held.
        held: CapabilityScope,
        /// The scope asked for.
        requested: CapabilityScope,
    },
    /// A handoff is already staged for the session.
    #[error("session {session} already has a staged handoff to {staged}")]
    AlreadyStaged {
        /// The session.
        session: SessionId,
        /// The staged owner.
        staged: OwnerLabel,
    },
    /// Committing or aborting a handoff that was never staged.
    #[error("session {session} has no staged handoff")]
    NothingStaged {
        /// The session.
        session: SessionId,
    },
    /// The next generation must be larger than the current one.
    #[error("session {session}: generation {next} does not advance past {current}")]
    GenerationRegressed {
        /// The session.
        session: SessionId,
        /// Current generation.
        current: u64,
        /// Generation asked for.
        next: u64,
    },
}

fn on_node(node: &Option<OwnerLabel>) -> String {
    node.as_ref().map(|n| format!(" on node {n}")).unwrap_or_default()
}

impl OwnershipError {
    /// A stable snake_case name of the error's kind (`"stale_owner"`, …), for metrics
    /// labels and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            OwnershipError::NotLive { .. } => "not_live",
            OwnershipError::AlreadyLive { .. } => "already_live",
            OwnershipError::LeaseLost { .. } => "lease_lost",
            OwnershipError::StaleOwner { .. } => "stale_owner",
            OwnershipError::WrongSession { .. } => "wrong_session",
            OwnershipError::NotIssued { .. } => "not_issued",
            OwnershipError::WrongBundle { .. } => "wrong_bundle",
            OwnershipError::NotWholeSession { .. } => "not_whole_session",
            OwnershipError::OutsideScope { .. } => "outside_scope",
            OwnershipError::ScopeWidening { .. } => "scope_widening",
            OwnershipError::AlreadyStaged { .. } => "already_staged",
            OwnershipError::NothingStaged { .. } => "nothing_staged",
            OwnershipError::GenerationRegressed { .. } => "generation_regressed",
        }
    }
}

/// One live session's owner, capability, boundary and a staged successor, if any.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveOwner {
    /// The owner.
    pub owner: OwnerLabel,
    /// Its capability.
    pub capability: OwnerCapability,
    /// The routing boundary traffic for it crosses.
    pub boundary: LinkBoundary,
    /// The node (manager) it runs on, when live owners are shared between nodes; `None` in
    /// a single-process setup.
    #[serde(default)]
    pub node: Option<OwnerLabel>,
    staged: Option<Staged>,
}

impl LiveOwner {
    /// An owner with nothing staged, as a shared registry records it.
    pub fn new(
        owner: OwnerLabel,
        capability: OwnerCapability,
        boundary: LinkBoundary,
        node: Option<OwnerLabel>,
    ) -> Self {
        Self { owner, capability, boundary, node, staged: None }
    }

    /// The owner a committed handoff would make current, if one is staged (on `node`).
    pub fn successor(&self, node: Option<OwnerLabel>) -> Option<LiveOwner> {
        self.staged
            .as_ref()
            .map(|s| LiveOwner::new(s.owner.clone(), s.capability.clone(), s.boundary.clone(), node))
    }

    /// Whether `other` is this owner as recorded: the same owner, capability, boundary and
    /// node, whatever is staged.
    pub fn same_record(&self, other: &LiveOwner) -> bool {
        self.owner == other.owner
            && self.capability == other.capability
            && self.boundary == other.boundary
            && self.node == other.node
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Staged {
    owner: OwnerLabel,
    capability: OwnerCapability,
    boundary: LinkBoundary,
}

/// Evidence of a committed owner change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnershipReceipt {
    /// The session.
    pub session: SessionId,
    /// The previous owner.
    pub from_owner: OwnerLabel,
    /// Its (now stale) generation.
    pub from_generation: u64,
    /// The new owner.
    pub to_owner: OwnerLabel,
    /// The new generation.
    pub to_generation: u64,
    /// The scope handed over.
    pub scope: CapabilityScope,
    /// Fragments whose owner changed, sorted.
    pub moved_fragments: Vec<String>,
}

/// Every live session's owner plus the fragment registry ((session, fragment) → owner).
///
/// ```
/// use reconf_core::{BundleId, CapabilityScope, LinkBoundary, LiveSessions, OwnerLabel, OwnerToken, SessionId};
/// let s = SessionId::from_u128(1);
/// let b = BundleId::new("x").unwrap();
/// let mut live = LiveSessions::default();
/// let old = live.attach(s, OwnerLabel::new("node-1").unwrap(), 1, LinkBoundary::for_bundle(&b), OwnerToken::from_bytes([1; 16])).unwrap();
/// live.stage(&old, OwnerLabel::new("node-2").unwrap(), 2, CapabilityScope::for_bundle(&b), OwnerToken::from_bytes([2; 16])).unwrap();
/// assert!(live.check_ingress(&old, &LinkBoundary::for_bundle(&b)).is_ok()); // still valid while staged
/// let receipt = live.commit(s).unwrap();
/// assert_eq!(receipt.to_generation, 2);
/// assert!(live.check_ingress(&old, &LinkBoundary::for_bundle(&b)).is_err()); // now stale
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveSessions {
    owners: BTreeMap<SessionId, LiveOwner>,
    fragments: BTreeMap<(SessionId, String), OwnerLabel>,
}

fn scope_fragments(scope: &CapabilityScope) -> BTreeSet<String> {
    scope.fragment_keys().into_iter().collect()
}

impl LiveSessions {
    /// The live owner of a session.
    pub fn owner(&self, session: &SessionId) -> Option<&LiveOwner> {
        self.owners.get(session)
    }

    /// The owner of one fragment of a session.
    pub fn fragment_owner(&self, session: SessionId, fragment: &str) -> Option<&OwnerLabel> {
        self.fragments.get(&(session, fragment.to_owned()))
    }

    /// Every fragment of a session with its owner, sorted.
    pub fn fragments_of(&self, session: SessionId) -> Vec<(String, OwnerLabel)> {
        self.fragments
            .range((session, String::new())..)
            .take_while(|((s, _), _)| *s == session)
            .map(|((_, f), o)| (f.clone(), o.clone()))
            .collect()
    }

    /// Number of live sessions.
    pub fn len(&self) -> usize {
        self.owners.len()
    }

    /// True when no session is live.
    pub fn is_empty(&self) -> bool {
        self.owners.is_empty()
    }

    /// Makes `owner` the live owner of `session` at `generation` (the session's owner
    /// generation in the state), with the boundary's bundle and scope, and `token` as the
    /// capability's secret. Whether the session may have an owner for this boundary is the
    /// state's rule: [`State::check_attach`](crate::State::check_attach).
    pub fn attach(
        &mut self,
        session: SessionId,
        owner: OwnerLabel,
        generation: u64,
        boundary: LinkBoundary,
        token: OwnerToken,
    ) -> Result<OwnerCapability, OwnershipError> {
        if let Some(cur) = self.owners.get(&session) {
            return Err(OwnershipError::AlreadyLive {
                session,
                owner: cur.owner.clone(),
                node: cur.node.clone(),
            });
        }
        let capability = OwnerCapability {
            session,
            generation,
            scope: boundary.scope.clone(),
            bundle: boundary.bundle.clone(),
            token,
        };
        for f in scope_fragments(&capability.scope) {
            self.fragments.insert((session, f), owner.clone());
        }
        self.owners.insert(session, LiveOwner::new(owner, capability.clone(), boundary, None));
        Ok(capability)
    }

    /// Records `owner` as the session's live owner, replacing whatever was there (and its
    /// fragments): how a node mirrors a shared registry, where the registry's compare, not
    /// this table, decided that the owner may be there.
    pub fn insert(&mut self, session: SessionId, owner: LiveOwner) -> Option<LiveOwner> {
        let gone = self.detach(&session);
        for f in scope_fragments(&owner.capability.scope) {
            self.fragments.insert((session, f), owner.owner.clone());
        }
        self.owners.insert(session, owner);
        gone
    }

    /// Sets the node a session's live owner runs on (a handoff committed by another node
    /// than the previous owner's).
    pub fn set_node(&mut self, session: SessionId, node: Option<OwnerLabel>) {
        if let Some(live) = self.owners.get_mut(&session) {
            live.node = node;
        }
    }

    /// Every live session with its owner, in session order.
    pub fn iter(&self) -> impl Iterator<Item = (&SessionId, &LiveOwner)> {
        self.owners.iter()
    }

    /// Removes a live owner (when its session closes).
    pub fn detach(&mut self, session: &SessionId) -> Option<LiveOwner> {
        let gone = self.owners.remove(session)?;
        let keys: Vec<_> = self.fragments_of(*session).into_iter().map(|(f, _)| (*session, f)).collect();
        for k in keys {
            self.fragments.remove(&k);
        }
        Some(gone)
    }

    /// The live owner `cap` was issued to, if it is the session's current one. Everything
    /// the checks use afterwards (scope, bundle) is the issued capability's, never the
    /// presented one's.
    fn current(&self, cap: &OwnerCapability) -> Result<&LiveOwner, OwnershipError> {
        let live = self.owners.get(&cap.session).ok_or(OwnershipError::NotLive { session: cap.session })?;
        if live.capability.generation != cap.generation {
            return Err(OwnershipError::StaleOwner {
                session: cap.session,
                presented: cap.generation,
                current: live.capability.generation,
            });
        }
        if live.capability.token != cap.token {
            return Err(OwnershipError::NotIssued { session: cap.session });
        }
        Ok(live)
    }

    /// The live owner `cap` was issued to, if it is current and holds the whole session:
    /// what closing the session or detaching its owner with a handle requires.
    pub fn check_whole_session(&self, cap: &OwnerCapability) -> Result<&LiveOwner, OwnershipError> {
        let live = self.current(cap)?;
        if live.capability.scope != CapabilityScope::WholeSession {
            return Err(OwnershipError::NotWholeSession {
                session: cap.session,
                scope: live.capability.scope.clone(),
            });
        }
        Ok(live)
    }

    /// Detaches the owner presenting `cap`, which must be current and whole-session.
    pub fn detach_with(&mut self, cap: &OwnerCapability) -> Result<LiveOwner, OwnershipError> {
        self.check_whole_session(cap)?;
        self.detach(&cap.session).ok_or(OwnershipError::NotLive { session: cap.session })
    }

    /// Checks traffic for `boundary` presented with `cap`: the capability must be the
    /// session's current one, and the boundary of its bundle and inside its scope.
    pub fn check_ingress(
        &self,
        cap: &OwnerCapability,
        boundary: &LinkBoundary,
    ) -> Result<(), OwnershipError> {
        let live = self.current(cap)?;
        if live.capability.bundle != boundary.bundle {
            return Err(OwnershipError::WrongBundle {
                session: cap.session,
                owner_bundle: live.capability.bundle.clone(),
                boundary_bundle: boundary.bundle.clone(),
            });
        }
        if !live.capability.scope.covers(&boundary.scope) {
            return Err(OwnershipError::OutsideScope {
                session: cap.session,
                what: format!("boundary {} ({})", boundary.bundle, boundary.scope),
                scope: live.capability.scope.clone(),
            });
        }
        Ok(())
    }

    /// Checks traffic addressed to `session` (which must be the capability's) for one
    /// fragment.
    pub fn check_fragment(
        &self,
        session: SessionId,
        cap: &OwnerCapability,
        fragment: &str,
    ) -> Result<(), OwnershipError> {
        if cap.session != session {
            return Err(OwnershipError::WrongSession { session, presented: cap.session });
        }
        let live = self.current(cap)?;
        if !live.capability.scope.allows(fragment) {
            return Err(OwnershipError::OutsideScope {
                session,
                what: format!("fragment {fragment}"),
                scope: live.capability.scope.clone(),
            });
        }
        Ok(())
    }

    /// Narrows the holder's own scope. Widening is refused: a fragment-scoped owner cannot
    /// give itself more.
    pub fn narrow(
        &mut self,
        cap: &OwnerCapability,
        scope: CapabilityScope,
    ) -> Result<OwnerCapability, OwnershipError> {
        let live = self.current(cap)?;
        if !live.capability.scope.covers(&scope) {
            return Err(OwnershipError::ScopeWidening {
                session: cap.session,
                held: live.capability.scope.clone(),
                requested: scope,
            });
        }
        let owner = live.owner.clone();
        let dropped: Vec<String> =
            scope_fragments(&live.capability.scope).difference(&scope_fragments(&scope)).cloned().collect();
        let session = cap.session;
        for f in dropped {
            if self.fragments.get(&(session, f.clone())) == Some(&owner) {
                self.fragments.remove(&(session, f));
            }
        }
        for f in scope_fragments(&scope) {
            self.fragments.insert((session, f), owner.clone());
        }
        let live = self.owners.get_mut(&session).ok_or(OwnershipError::NotLive { session })?;
        live.capability.scope = scope.clone();
        live.boundary.scope = scope;
        Ok(live.capability.clone())
    }

    /// Whether the owner presenting `cap` may hand `scope` over: it must be the current
    /// owner, with no handoff already staged, and `scope` inside its own. Changes nothing.
    pub fn check_stage(&self, cap: &OwnerCapability, scope: &CapabilityScope) -> Result<(), OwnershipError> {
        let live = self.current(cap)?;
        if let Some(st) = &live.staged {
            return Err(OwnershipError::AlreadyStaged { session: cap.session, staged: st.owner.clone() });
        }
        if !live.capability.scope.covers(scope) {
            return Err(OwnershipError::ScopeWidening {
                session: cap.session,
                held: live.capability.scope.clone(),
                requested: scope.clone(),
            });
        }
        Ok(())
    }

    /// Phase one of a handoff: stage `to` as the next owner at `next_generation` with
    /// `scope` and `token` as its capability's secret. The current owner stays valid until
    /// [`commit`](Self::commit).
    pub fn stage(
        &mut self,
        cap: &OwnerCapability,
        to: OwnerLabel,
        next_generation: u64,
        scope: CapabilityScope,
        token: OwnerToken,
    ) -> Result<(), OwnershipError> {
        self.check_stage(cap, &scope)?;
        let live = self.current(cap)?;
        if next_generation <= live.capability.generation {
            return Err(OwnershipError::GenerationRegressed {
                session: cap.session,
                current: live.capability.generation,
                next: next_generation,
            });
        }
        let boundary = LinkBoundary { bundle: live.boundary.bundle.clone(), scope: scope.clone() };
        let staged = Staged {
            owner: to,
            capability: OwnerCapability {
                session: cap.session,
                generation: next_generation,
                scope,
                bundle: live.capability.bundle.clone(),
                token,
            },
            boundary,
        };
        if let Some(l) = self.owners.get_mut(&cap.session) {
            l.staged = Some(staged);
        }
        Ok(())
    }

    /// Phase two, returning the new owner too: [`commit`](Self::commit) plus the owner it
    /// made current.
    pub fn commit_owner(
        &mut self,
        session: SessionId,
    ) -> Result<(OwnershipReceipt, &LiveOwner), OwnershipError> {
        let receipt = self.commit(session)?;
        let owner = self.owners.get(&session).ok_or(OwnershipError::NotLive { session })?;
        Ok((receipt, owner))
    }

    /// Phase two: the staged owner becomes current, fragments in its scope move to it, and
    /// every earlier capability is stale.
    pub fn commit(&mut self, session: SessionId) -> Result<OwnershipReceipt, OwnershipError> {
        let live = self.owners.get_mut(&session).ok_or(OwnershipError::NotLive { session })?;
        let staged = live.staged.take().ok_or(OwnershipError::NothingStaged { session })?;
        let from_owner = std::mem::replace(&mut live.owner, staged.owner.clone());
        let from_generation = live.capability.generation;
        live.capability = staged.capability.clone();
        live.boundary = staged.boundary;
        let mut moved = Vec::new();
        for f in scope_fragments(&staged.capability.scope) {
            let prev = self.fragments.insert((session, f.clone()), staged.owner.clone());
            if prev.as_ref() != Some(&staged.owner) {
                moved.push(f);
            }
        }
        Ok(OwnershipReceipt {
            session,
            from_owner,
            from_generation,
            to_owner: staged.owner,
            to_generation: staged.capability.generation,
            scope: staged.capability.scope,
            moved_fragments: moved,
        })
    }

    /// Abandons a staged handoff; the current owner is exactly as before staging.
    pub fn abort(&mut self, session: SessionId) -> Result<(), OwnershipError> {
        let live = self.owners.get_mut(&session).ok_or(OwnershipError::NotLive { session })?;
        live.staged.take().map(|_| ()).ok_or(OwnershipError::NothingStaged { session })
    }

    /// The owner staged for a session, if a handoff is in progress.
    pub fn staged_owner(&self, session: &SessionId) -> Option<&OwnerLabel> {
        self.owners.get(session).and_then(|l| l.staged.as_ref()).map(|s| &s.owner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::BundleId;

    /// Stages `owner` for the session `cap` presents, with a fixed token.
    fn stage(
        live: &mut LiveSessions,
        cap: &OwnerCapability,
        owner: &str,
        generation: u64,
        fragment: &str,
    ) -> Result<(), OwnershipError> {
        let to = OwnerLabel::new(owner).unwrap();
        live.stage(
            cap,
            to,
            generation,
            CapabilityScope::fragments([fragment]),
            OwnerToken::from_bytes([2; 16]),
        )
    }

    /// A registry with one whole-session owner `o` of `session`, for bundle `x`.
    fn whole_owner(session: SessionId) -> (LiveSessions, OwnerCapability) {
        let mut live = LiveSessions::default();
        let boundary =
            LinkBoundary { bundle: BundleId::new("x").unwrap(), scope: CapabilityScope::WholeSession };
        let o = OwnerLabel::new("o").unwrap();
        let cap = live.attach(session, o, 1, boundary, OwnerToken::from_bytes([5; 16])).unwrap();
        (live, cap)
    }

    fn setup() -> (LiveSessions, OwnerCapability, SessionId, BundleId) {
        let s = SessionId::from_u128(1);
        let b = BundleId::new("x").unwrap();
        let mut live = LiveSessions::default();
        let boundary =
            LinkBoundary { bundle: b.clone(), scope: CapabilityScope::fragments(["bundle:x", "f2"]) };
        let cap = live
            .attach(s, OwnerLabel::new("o1").unwrap(), 3, boundary, OwnerToken::from_bytes([1; 16]))
            .unwrap();
        (live, cap, s, b)
    }

    #[test]
    fn ingress_rejects_stale_foreign_and_out_of_scope() {
        let (mut live, cap, s, b) = setup();
        let inside = LinkBoundary::for_bundle(&b);
        assert!(live.check_ingress(&cap, &inside).is_ok());
        let outside = LinkBoundary { bundle: b.clone(), scope: CapabilityScope::WholeSession };
        assert!(matches!(live.check_ingress(&cap, &outside), Err(OwnershipError::OutsideScope { .. })));
        assert!(matches!(live.check_fragment(s, &cap, "nope"), Err(OwnershipError::OutsideScope { .. })));
        let other = OwnerCapability { session: SessionId::from_u128(2), ..cap.clone() };
        assert!(matches!(live.check_fragment(s, &other, "f2"), Err(OwnershipError::WrongSession { .. })));
        stage(&mut live, &cap, "o2", 4, "f2").unwrap();
        live.commit(s).unwrap();
        assert!(matches!(
            live.check_ingress(&cap, &inside),
            Err(OwnershipError::StaleOwner { presented: 3, current: 4, .. })
        ));
    }

    #[test]
    fn a_fragment_owner_cannot_widen_its_scope() {
        let (mut live, cap, _, _) = setup();
        let err = live.narrow(&cap, CapabilityScope::WholeSession).unwrap_err();
        assert!(matches!(err, OwnershipError::ScopeWidening { .. }));
        let err = stage(&mut live, &cap, "o2", 4, "zzz").unwrap_err();
        assert!(matches!(err, OwnershipError::ScopeWidening { .. }));
        let narrowed = live.narrow(&cap, CapabilityScope::fragments(["f2"])).unwrap();
        assert_eq!(narrowed.scope, CapabilityScope::fragments(["f2"]));
        assert_eq!(live.fragments_of(cap.session).len(), 1);
    }

    #[test]
    fn abort_restores_exactly_and_commit_moves_fragments() {
        let (mut live, cap, s, _) = setup();
        let before = live.clone();
        stage(&mut live, &cap, "o2", 4, "f2").unwrap();
        assert!(stage(&mut live, &cap, "o3", 4, "f2").is_err());
        live.abort(s).unwrap();
        assert_eq!(live, before);
        assert!(stage(&mut live, &cap, "o2", 3, "f2").is_err());
        stage(&mut live, &cap, "o2", 4, "f2").unwrap();
        let r = live.commit(s).unwrap();
        assert_eq!(r.moved_fragments, vec!["f2".to_owned()]);
        assert_eq!(live.fragment_owner(s, "f2").unwrap().as_str(), "o2");
        assert_eq!(live.fragment_owner(s, "bundle:x").unwrap().as_str(), "o1");
        assert!(matches!(live.commit(s), Err(OwnershipError::NothingStaged { .. })));
    }

    #[test]
    fn a_capability_made_by_hand_is_not_issued() {
        let (live, cap, _, b) = setup();
        let forged = OwnerCapability { token: OwnerToken::from_bytes([0; 16]), ..cap.clone() };
        assert!(matches!(
            live.check_ingress(&forged, &LinkBoundary::for_bundle(&b)),
            Err(OwnershipError::NotIssued { .. })
        ));
        assert!(matches!(
            live.check_fragment(cap.session, &forged, "f2"),
            Err(OwnershipError::NotIssued { .. })
        ));
        // Widening the presented scope changes nothing: the issued one is what counts.
        let wider = OwnerCapability { scope: CapabilityScope::WholeSession, ..cap.clone() };
        let whole = LinkBoundary { bundle: b, scope: CapabilityScope::WholeSession };
        assert!(matches!(live.check_ingress(&wider, &whole), Err(OwnershipError::OutsideScope { .. })));
        assert!(!format!("{cap:?}").contains("[1, 1"), "the token is never shown: {cap:?}");
    }

    #[test]
    fn a_boundary_of_another_bundle_is_refused() {
        let (live, cap, _, _) = setup();
        let y = BundleId::new("y").unwrap();
        let foreign = LinkBoundary { bundle: y.clone(), scope: CapabilityScope::fragments(["bundle:x"]) };
        assert!(matches!(live.check_ingress(&cap, &foreign), Err(OwnershipError::WrongBundle { .. })));
        let (whole, cap) = whole_owner(SessionId::from_u128(9));
        assert!(matches!(
            whole.check_ingress(&cap, &LinkBoundary::for_bundle(&y)),
            Err(OwnershipError::WrongBundle { .. })
        ));
    }

    #[test]
    fn only_a_current_whole_session_owner_may_detach() {
        let (mut live, cap, s, _) = setup();
        assert!(matches!(live.detach_with(&cap), Err(OwnershipError::NotWholeSession { .. })));
        let (mut whole, cap) = whole_owner(s);
        let stale = OwnerCapability { generation: 0, ..cap.clone() };
        assert!(matches!(whole.detach_with(&stale), Err(OwnershipError::StaleOwner { .. })));
        assert_eq!(whole.detach_with(&cap).unwrap().owner.as_str(), "o");
        assert!(whole.owner(&s).is_none());
        assert!(live.owner(&s).is_some(), "the fragment owner's session keeps its owner");
    }
}
