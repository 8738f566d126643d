//! State shared between the actor and the handles: the published core state, the live
//! owners, and counters.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use reconf_core::{LiveSessions, State};
use serde::{Deserialize, Serialize};

/// A lock guard that survives poisoning: a panic elsewhere must not make the state
/// unreadable, and the actor only mutates it in whole batches.
pub(crate) fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|e| e.into_inner())
}

/// The actor writes these; handles read them.
///
/// The state is published by applying each durable batch under one write-lock hold, so a
/// reader sees it before or after a batch, never inside one.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    pub(crate) state: RwLock<State>,
    pub(crate) live: RwLock<LiveSessions>,
    pub(crate) batches: AtomicU64,
    pub(crate) commits: AtomicU64,
    pub(crate) facts: AtomicU64,
    pub(crate) rejected: AtomicU64,
    pub(crate) failed_batches: AtomicU64,
    pub(crate) conflicts: AtomicU64,
    pub(crate) snapshots: AtomicU64,
    pub(crate) followed: AtomicU64,
    pub(crate) leases_lost: AtomicU64,
    pub(crate) owners_lost: AtomicU64,
    pub(crate) fenced: AtomicU64,
    pub(crate) notices: crate::owners::Notices,
}

impl Shared {
    pub(crate) fn bump(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn load(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}

/// Counters of the manager's work since it opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActorStats {
    /// Batches processed.
    pub batches: u64,
    /// Journal commits that succeeded.
    pub commits: u64,
    /// Facts written.
    pub facts: u64,
    /// Commands refused (rules, capabilities, boundaries, journal failures).
    pub rejected: u64,
    /// Batches whose journal commit failed.
    pub failed_batches: u64,
    /// Journal head conflicts resolved by catching up.
    pub conflicts: u64,
    /// Snapshots written.
    pub snapshots: u64,
    /// Records written by other managers on a shared journal and applied here (by
    /// following the journal, catching up after a conflict, or [`sync`]).
    ///
    /// [`sync`]: crate::ReconfigurationManager::sync
    #[serde(default)]
    pub followed: u64,
    /// Times this node's live-owner lease lapsed (shared registry only).
    #[serde(default)]
    pub leases_lost: u64,
    /// This node's live owners lost without it asking: lease lapses, sessions taken or
    /// removed by other nodes (each also sent as an [`OwnerNotice`](crate::OwnerNotice)).
    #[serde(default)]
    pub owners_lost: u64,
    /// Writes refused because a live-owner record was not what this node expected (it was
    /// fenced off); each was checked again against the record found.
    #[serde(default)]
    pub fenced: u64,
}
