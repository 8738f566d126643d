//! Live owners shared across nodes: the records this runtime writes to a shared
//! [`OwnerRegistryEffects`], the local mirror of them, and the notices an embedder gets when
//! one of this node's owners is lost.
//!
//! Every node's [`LiveSessions`] mirrors the whole registry: its own owners (applied when its
//! own write lands) and every other node's (applied from the registry's events). The mirror
//! remembers, per session, the revision it last applied, so an event older than what a
//! node's own write already showed is ignored, and the exact record bytes, which are what
//! the next write compares.

use std::collections::HashMap;

use reconf_core::{LinkBoundary, LiveOwner, LiveSessions, OwnerCapability, OwnerLabel, SessionId};
use reconf_effects::{OwnerEntry, OwnerExpect, OwnerWrite};
use serde::{Deserialize, Serialize};

/// One live owner as the registry stores it.
#[derive(Serialize, Deserialize)]
struct Record {
    node: OwnerLabel,
    owner: OwnerLabel,
    capability: OwnerCapability,
    boundary: LinkBoundary,
}

/// The record of `owner`, running on `node`.
pub(crate) fn encode(owner: &LiveOwner, node: &OwnerLabel) -> Vec<u8> {
    let record = Record {
        node: node.clone(),
        owner: owner.owner.clone(),
        capability: owner.capability.clone(),
        boundary: owner.boundary.clone(),
    };
    // Plain data with no maps or floats: postcard cannot fail on it, and its bytes are
    // canonical, so equal records compare equal.
    postcard::to_allocvec(&record).unwrap_or_default()
}

/// The owner a stored record describes; `None` for bytes that are not one.
pub(crate) fn decode(bytes: &[u8]) -> Option<LiveOwner> {
    let r: Record = postcard::from_bytes(bytes).ok()?;
    Some(LiveOwner::new(r.owner, r.capability, r.boundary, Some(r.node)))
}

/// Why one of this node's live owners is gone without this node asking.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum OwnerLoss {
    /// This node's lease lapsed (a pause, a partition, failed renewals).
    LeaseLost,
    /// Another node's owner now holds the session.
    Replaced {
        /// The node that holds it.
        node: Option<OwnerLabel>,
    },
    /// The record was removed by another node (the session moved or closed there) or by
    /// the lease's expiry.
    Removed,
}

/// A live owner of this node that is gone: stop running the session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnerNotice {
    /// The session.
    pub session: SessionId,
    /// The owner that was running it here.
    pub owner: OwnerLabel,
    /// Its generation.
    pub generation: u64,
    /// Why it is gone.
    pub reason: OwnerLoss,
}

/// The registry as this node last saw it: record bytes and the revision of what was
/// applied, per session.
#[derive(Default)]
pub(crate) struct Mirror {
    values: HashMap<SessionId, Vec<u8>>,
    revisions: HashMap<SessionId, i64>,
}

impl Mirror {
    pub(crate) fn value(&self, session: &SessionId) -> Option<&Vec<u8>> {
        self.values.get(session)
    }

    /// Whether an event at `revision` is newer than what is applied for the session.
    pub(crate) fn is_new(&self, session: &SessionId, revision: i64) -> bool {
        self.revisions.get(session).is_none_or(|r| revision > *r)
    }

    pub(crate) fn set(&mut self, session: SessionId, value: Vec<u8>, revision: i64) {
        self.values.insert(session, value);
        self.bump(session, revision);
    }

    pub(crate) fn remove(&mut self, session: &SessionId, revision: Option<i64>) {
        self.values.remove(session);
        if let Some(r) = revision {
            self.bump(*session, r);
        }
    }

    fn bump(&mut self, session: SessionId, revision: i64) {
        let r = self.revisions.entry(session).or_insert(revision);
        *r = (*r).max(revision);
    }

    /// Applies a write of this node's that landed at `revision`.
    pub(crate) fn landed(&mut self, writes: &[OwnerWrite], revision: i64) {
        for w in writes {
            match w {
                OwnerWrite::Put { session, value, .. } => self.set(*session, value.clone(), revision),
                OwnerWrite::Delete { session, .. } => self.remove(session, Some(revision)),
            }
        }
    }
}

/// Applies one record another writer made (or a failed compare found) to the mirror and
/// the live table; returns the owner it displaced, if that owner was `node`'s.
pub(crate) fn apply_entry(
    live: &mut LiveSessions,
    mirror: &mut Mirror,
    entry: &OwnerEntry,
    node: &OwnerLabel,
) -> Option<(LiveOwner, OwnerLoss)> {
    if !mirror.is_new(&entry.session, entry.revision) {
        return None;
    }
    let Some(owner) = decode(&entry.value) else {
        tracing::warn!(name: crate::events::OWNER_RECORD_UNREADABLE, session = %entry.session, "a live-owner record this build cannot read");
        return None;
    };
    if let Some(current) = live.owner(&entry.session) {
        // This node's own handoff, still landing: the landing applies it.
        if current.successor(Some(node.clone())).is_some_and(|s| s.same_record(&owner)) {
            return None;
        }
        if current.same_record(&owner) {
            mirror.set(entry.session, entry.value.clone(), entry.revision);
            return None;
        }
    }
    let new_node = owner.node.clone();
    mirror.set(entry.session, entry.value.clone(), entry.revision);
    let gone = live.insert(entry.session, owner)?;
    (gone.node.as_ref() == Some(node)).then_some((gone, OwnerLoss::Replaced { node: new_node }))
}

/// Applies a removal another writer (or the lease's expiry) made; returns the owner it
/// removed, if that owner was `node`'s.
pub(crate) fn apply_removal(
    live: &mut LiveSessions,
    mirror: &mut Mirror,
    session: SessionId,
    revision: Option<i64>,
    node: &OwnerLabel,
) -> Option<(LiveOwner, OwnerLoss)> {
    if revision.is_some_and(|r| !mirror.is_new(&session, r)) {
        return None;
    }
    mirror.remove(&session, revision);
    let gone = live.detach(&session)?;
    (gone.node.as_ref() == Some(node)).then_some((gone, OwnerLoss::Removed))
}

/// The write that removes a session's record along with a fact that closes or moves it,
/// if the mirror knows of one; a close by the owner itself compares its record.
pub(crate) fn removal(mirror: &Mirror, session: SessionId, fenced: bool) -> Option<OwnerWrite> {
    let value = mirror.value(&session)?;
    let expect = if fenced { OwnerExpect::Is(value.clone()) } else { OwnerExpect::Anything };
    Some(OwnerWrite::Delete { session, expect })
}

/// The caller's error for a registry write that failed for another reason than a compare.
pub(crate) fn persist(operation: &'static str, e: reconf_effects::OwnerTxnError) -> crate::ManagerError {
    let source = match e {
        reconf_effects::OwnerTxnError::Journal(e) => e,
        other => reconf_effects::JournalError::Storage { reason: other.to_string() },
    };
    crate::ManagerError::Persist { operation, source }
}

/// What the actor keeps of a shared registry.
pub(crate) struct Registry {
    pub(crate) effects: std::sync::Arc<dyn reconf_effects::OwnerRegistryEffects>,
    pub(crate) node: OwnerLabel,
    pub(crate) mirror: std::sync::Mutex<Mirror>,
}

impl Registry {
    pub(crate) fn mirror(&self) -> std::sync::MutexGuard<'_, Mirror> {
        self.mirror.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Where notices go; a channel every handle can subscribe to. Notices nobody listens to
/// are dropped.
#[derive(Debug)]
pub(crate) struct Notices(pub(crate) tokio::sync::broadcast::Sender<OwnerNotice>);

impl Default for Notices {
    fn default() -> Self {
        Self(tokio::sync::broadcast::channel(1024).0)
    }
}

impl Notices {
    pub(crate) fn send(&self, session: SessionId, gone: &LiveOwner, reason: OwnerLoss) {
        tracing::warn!(name: crate::events::OWNER_LOST, session = %session, owner = %gone.owner, generation = gone.capability.generation, reason = ?reason, "a live owner of this node is gone");
        let _ = self.0.send(OwnerNotice {
            session,
            owner: gone.owner.clone(),
            generation: gone.capability.generation,
            reason,
        });
    }
}
