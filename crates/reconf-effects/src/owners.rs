//! The shared live-owner registry effect: which node's owner is executing each session
//! right now, when several managers on several nodes share one journal.
//!
//! A live owner is not a journal fact (attaching one changes no durable state), but two
//! nodes must never both believe they run the same session. So a shared setup keeps one
//! record per live session in the same store as the journal, and every change to it is a
//! compare-and-set on that record — together with the journal commit in ONE atomic write
//! when the change is also a fact (a live handoff is both). Each record is bound to its
//! node's lease: a node that stops renewing loses its records, and its sessions become
//! attachable elsewhere.
//!
//! A lease only says a node is *probably* gone; it never makes a write safe. Safety comes
//! from the compare: every write names the record it expects ([`OwnerExpect::Is`]), so a
//! node whose record was taken over (after a pause, a partition, a lost lease) has every
//! later write refused with [`OwnerTxnError::Fenced`].
//!
//! Records are opaque bytes here (the runtime encodes them); this crate must not know what
//! an owner is beyond its session.

use async_trait::async_trait;
use reconf_core::{Fact, SessionId};

use crate::journal::{Committed, ExpectedHead, JournalError};

/// A live-owner record as the registry stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerEntry {
    /// The session.
    pub session: SessionId,
    /// The record, as the runtime encoded it.
    pub value: Vec<u8>,
    /// The store revision of the write that made it (grows with every write to the
    /// registry or the journal).
    pub revision: i64,
}

/// What a write expects a session's record to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnerExpect {
    /// No record: nobody owns the session live.
    Absent,
    /// Exactly this record (the fencing compare: the generation and token are in it).
    Is(Vec<u8>),
    /// Whatever is there (removing the owner of a session that closed or moved).
    Anything,
}

/// One change to the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnerWrite {
    /// Write `value` as the session's record, bound to this node's lease.
    Put {
        /// The session.
        session: SessionId,
        /// What the record must be before.
        expect: OwnerExpect,
        /// The new record.
        value: Vec<u8>,
    },
    /// Remove the session's record.
    Delete {
        /// The session.
        session: SessionId,
        /// What the record must be before.
        expect: OwnerExpect,
    },
}

impl OwnerWrite {
    /// The session it changes.
    pub fn session(&self) -> SessionId {
        match self {
            OwnerWrite::Put { session, .. } | OwnerWrite::Delete { session, .. } => *session,
        }
    }
}

/// One atomic write: owner changes, optionally guarded by the journal head and carrying a
/// journal commit. All of it lands or none of it does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnerTxn {
    /// The journal head the write expects (`None`: the journal is not compared).
    pub head: Option<ExpectedHead>,
    /// Facts committed after that head (needs `head`).
    pub facts: Vec<Fact>,
    /// The owner changes.
    pub owners: Vec<OwnerWrite>,
}

/// What a successful [`OwnerTxn`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OwnerTxnDone {
    /// The records committed, when the write carried facts.
    pub committed: Option<Committed>,
    /// The store revision the write made (every record it put has this revision).
    pub revision: i64,
}

/// Why an [`OwnerTxn`] wrote nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OwnerTxnError {
    /// The journal refused or failed ([`JournalError::Conflict`] when the head moved).
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// A record was not what the write expected; `found` is each compared session's record
    /// as it is now (`None`: absent).
    #[error("live-owner record changed under this node ({} sessions)", found.len())]
    Fenced {
        /// The compared sessions' current records.
        found: Vec<(SessionId, Option<OwnerEntry>)>,
    },
    /// This node holds no valid lease, so it may not put records.
    #[error("this node holds no live-owner lease")]
    LeaseLost,
}

/// A change to the registry another writer (or the lease's expiry) made, in store order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnerEvent {
    /// A record was written.
    Put(OwnerEntry),
    /// A record was removed (a detach, a close, or its lease expired).
    Deleted {
        /// The session.
        session: SessionId,
        /// The revision of the removal.
        revision: i64,
    },
    /// The follower missed events (the store compacted them): every record, as of
    /// `revision`, replaces what the subscriber knew.
    Reset {
        /// Every record.
        entries: Vec<OwnerEntry>,
        /// The revision they were read at.
        revision: i64,
    },
    /// This node's lease is gone (expired, or not renewed in time): its records are or
    /// will be removed, and it must stop acting for their sessions.
    LeaseLost {
        /// Why.
        reason: String,
    },
    /// This node holds a new lease (after losing the previous one).
    LeaseGranted,
}

/// A live-owner registry shared by every node of one journal.
#[async_trait]
pub trait OwnerRegistryEffects: Send + Sync + 'static {
    /// The name of this node, as its records name it.
    fn node(&self) -> &str;

    /// Whether this node's lease is certainly still held now: true only before the moment
    /// the store could first expire it (the send time of the last renewal the store
    /// acknowledged, plus the TTL). Cheap; called on every ingress check.
    fn lease_valid(&self) -> bool;

    /// Makes one atomic write (see [`OwnerTxn`]). A write whose reply was lost is resolved
    /// before it answers, like a journal commit.
    async fn write(&self, txn: OwnerTxn) -> Result<OwnerTxnDone, OwnerTxnError>;

    /// A session's record, read linearizably.
    async fn get(&self, session: SessionId) -> Result<Option<OwnerEntry>, JournalError>;

    /// Every record, read linearizably, with the revision of the read.
    async fn list(&self) -> Result<(Vec<OwnerEntry>, i64), JournalError>;

    /// The registry's changes from now on, in order; the first call takes the stream, later
    /// calls get `None`.
    fn events(&self) -> Option<tokio::sync::mpsc::UnboundedReceiver<OwnerEvent>>;
}
