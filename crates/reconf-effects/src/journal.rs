//! The journal effect: an append-only, totally ordered log of core [`Fact`]s.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use reconf_core::Fact;
use serde::{Deserialize, Serialize};

/// A journal sequence number. The first record is 1; there are no gaps and no repeats.
pub type Sequence = u64;

/// One durable record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalRecord {
    /// Its sequence.
    pub sequence: Sequence,
    /// The fact.
    pub fact: Fact,
}

/// The inclusive range of sequences a commit was assigned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Committed {
    /// First sequence of the batch.
    pub first: Sequence,
    /// Last sequence of the batch (the journal's new head).
    pub last: Sequence,
}

impl Committed {
    /// Number of records written.
    pub fn len(&self) -> u64 {
        self.last - self.first + 1
    }

    /// Always false: a commit writes at least one record.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The sequences, in order.
    pub fn sequences(&self) -> std::ops::RangeInclusive<Sequence> {
        self.first..=self.last
    }
}

/// What a writer believes the journal's head to be (optimistic concurrency, as event
/// stores do with an expected version).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExpectedHead {
    /// Write whatever the head is.
    Any,
    /// Write only if the journal is empty.
    Empty,
    /// Write only if the last record is this sequence.
    At(Sequence),
}

impl ExpectedHead {
    /// The expectation "the journal ends at `head`", with 0 meaning empty: what a writer
    /// whose state has applied records up to `head` commits with.
    ///
    /// ```
    /// use reconf_effects::ExpectedHead;
    /// assert_eq!(ExpectedHead::after(0), ExpectedHead::Empty);
    /// assert_eq!(ExpectedHead::after(7), ExpectedHead::At(7));
    /// ```
    pub fn after(head: Sequence) -> Self {
        if head == 0 {
            Self::Empty
        } else {
            Self::At(head)
        }
    }

    /// The expectation matching an observed head.
    pub fn from_head(head: Option<Sequence>) -> Self {
        head.map_or(Self::Empty, Self::At)
    }

    /// Whether `head` satisfies this expectation.
    pub fn matches(self, head: Option<Sequence>) -> bool {
        match self {
            Self::Any => true,
            Self::Empty => head.is_none(),
            Self::At(s) => head == Some(s),
        }
    }
}

impl fmt::Display for ExpectedHead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("any head"),
            Self::Empty => f.write_str("an empty journal"),
            Self::At(s) => write!(f, "head {s}"),
        }
    }
}

/// A stored snapshot: opaque bytes (a serialized core state) taken at a sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSnapshot {
    /// The state includes every record up to and including this sequence.
    pub sequence: Sequence,
    /// The serialized state.
    pub bytes: Vec<u8>,
}

/// What exactly is wrong with a stored record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Corruption {
    /// The frame's checksum does not match its bytes.
    ChecksumMismatch,
    /// The record does not chain to its predecessor's hash.
    BrokenChain,
    /// The record is missing: the next stored sequence skips it.
    Gap {
        /// The sequence found instead.
        found: Sequence,
    },
    /// The frame names a format version this build does not know.
    UnknownFormatVersion {
        /// The version found.
        version: u16,
    },
    /// The frame is too short or its length field disagrees with its size.
    BadFrame,
    /// The payload is not a fact this build can decode.
    UndecodableFact {
        /// The decoder's message.
        reason: String,
    },
    /// The stored key and the record's own sequence disagree.
    KeyMismatch {
        /// The sequence in the key.
        key: Sequence,
    },
    /// The metadata (head, chain hash) disagrees with the records.
    Metadata {
        /// What disagrees.
        reason: String,
    },
}

impl fmt::Display for Corruption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ChecksumMismatch => f.write_str("checksum mismatch"),
            Self::BrokenChain => f.write_str("hash chain broken (record altered or reordered)"),
            Self::Gap { found } => write!(f, "record missing (next stored sequence is {found})"),
            Self::UnknownFormatVersion { version } => write!(f, "unknown record format version {version}"),
            Self::BadFrame => f.write_str("malformed record frame"),
            Self::UndecodableFact { reason } => write!(f, "undecodable fact: {reason}"),
            Self::KeyMismatch { key } => write!(f, "stored under key {key} but claims another sequence"),
            Self::Metadata { reason } => write!(f, "metadata inconsistent: {reason}"),
        }
    }
}

/// Why a journal operation failed. A failed `commit` wrote nothing, except when
/// [`JournalError::outcome_unknown`] holds ([`JournalError::Ambiguous`],
/// [`JournalError::StorageFull`]), after which the caller must re-read the head.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JournalError {
    /// Another writer moved the head; nothing was written.
    #[error("journal head conflict: expected {expected}, actual head {}", fmt_head(*actual))]
    Conflict {
        /// What the writer expected.
        expected: ExpectedHead,
        /// The head found.
        actual: Option<Sequence>,
    },
    /// A commit with no facts.
    #[error("a journal commit needs at least one fact")]
    EmptyBatch,
    /// The backend failed; nothing was written.
    #[error("journal storage failed: {reason}")]
    Storage {
        /// The backend's message.
        reason: String,
    },
    /// The commit may or may not have been written (the reply was lost). Re-read the head.
    #[error("journal commit outcome unknown: {reason}")]
    Ambiguous {
        /// What happened.
        reason: String,
    },
    /// The journal's storage is full. A commit that gets this may or may not have been
    /// written (re-read the head, as after [`JournalError::Ambiguous`]); later commits fail
    /// the same way until space is freed, and then succeed on the same handle.
    #[error("journal storage is full, free some space: {reason}")]
    StorageFull {
        /// The backend's message.
        reason: String,
    },
    /// A stored record is corrupt or was tampered with.
    #[error("journal record {sequence} is corrupt: {corruption}")]
    Corrupt {
        /// The first bad sequence.
        sequence: Sequence,
        /// What is wrong.
        corruption: Corruption,
    },
    /// The journal was written by a newer format than this build reads.
    #[error("journal format version {found} is newer than the supported {supported}; upgrade reconf")]
    UnsupportedFormat {
        /// Found on disk.
        found: u16,
        /// Supported here.
        supported: u16,
    },
    /// A record holds a fact of a newer schema than this build reads: the journal is
    /// sound, this build is too old for it.
    #[error("journal record {sequence} holds a fact of schema version {found}, newer than the supported {supported}; upgrade reconf")]
    NewerFact {
        /// The record.
        sequence: Sequence,
        /// The fact's schema version.
        found: u16,
        /// The newest this build reads.
        supported: u16,
    },
    /// The journal's storage is held by another process, or another open handle in this
    /// one (an embedded store takes an exclusive lock).
    #[error("journal at {path} is in use by another process")]
    InUse {
        /// Where the journal is.
        path: String,
    },
    /// A fact could not be encoded.
    #[error("fact could not be encoded: {reason}")]
    Encode {
        /// The encoder's message.
        reason: String,
    },
    /// The journal was closed.
    #[error("journal is closed")]
    Closed,
    /// A snapshot was offered at a sequence the journal does not hold (0, or past the head);
    /// nothing was stored. A snapshot must describe a state some reader could rebuild.
    #[error("snapshot at sequence {sequence} is outside the journal (head {})", fmt_head(*head))]
    SnapshotOutOfRange {
        /// The sequence offered.
        sequence: Sequence,
        /// The head at the time.
        head: Option<Sequence>,
    },
}

impl JournalError {
    /// Whether the failed operation may nonetheless have been written, so the caller must
    /// re-read the head before deciding what happened.
    pub fn outcome_unknown(&self) -> bool {
        matches!(self, Self::Ambiguous { .. } | Self::StorageFull { .. })
    }
}

fn fmt_head(h: Option<Sequence>) -> String {
    h.map_or_else(|| "none (empty)".to_owned(), |s| s.to_string())
}

/// An append-only, totally ordered log of facts.
///
/// Contract (checked for every backend by `testing::run_all`, feature `testing`):
/// - sequences start at 1, have no gaps and never repeat; a failed commit uses none up;
/// - `commit` is atomic: all facts of the batch are written with consecutive sequences,
///   or none is, and no reader ever sees part of a batch;
/// - an empty batch is rejected with [`JournalError::EmptyBatch`] whatever the expectation;
/// - a commit whose `expected` head does not match writes nothing and returns
///   [`JournalError::Conflict`] with the actual head;
/// - `read(from, limit)` returns up to `limit` records with sequence `>= from`, in order
///   (so `from` 0 reads from 1; reading past the head or with `limit` 0 gives nothing),
///   and fewer than `limit` only when it reached the head as it was during the read;
/// - `write_snapshot` accepts sequences `1..=head`, otherwise
///   [`JournalError::SnapshotOutOfRange`]; `latest_snapshot` is the one with the highest
///   sequence (for equal sequences, the last written), regardless of write order;
/// - acknowledged commits and snapshots survive reopening, where the backend persists;
/// - `wait_for_head(after)` returns once the head is past `after` (at once if it already
///   is), with a head at least that far, and never returns a head the journal does not
///   hold; it sees commits made through any handle on the same store, including other
///   processes' where the store is shared. [`Tail`](crate::Tail) builds on it to deliver
///   every record once, in order.
///
/// ```
/// use reconf_core::{AuthorityId, Change, Fact, SessionId};
/// use reconf_effects::{ExpectedHead, JournalEffects, JournalError, MemoryJournal};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), JournalError> {
/// let journal = MemoryJournal::new();
/// let closed = |n| {
///     Fact::new(Change::SessionClosed { session: SessionId::from_u128(n), authority: AuthorityId::from_label("a") })
/// };
///
/// // Check against the state at the observed head, then commit expecting that head.
/// let head = journal.head().await?;
/// let done = journal.commit(vec![closed(1), closed(2)], ExpectedHead::from_head(head)).await?;
/// assert_eq!((done.first, done.last), (1, 2));
///
/// // A writer that saw the old head loses, learns the actual head and nothing is written.
/// let err = journal.commit(vec![closed(3)], ExpectedHead::Empty).await.unwrap_err();
/// assert_eq!(err, JournalError::Conflict { expected: ExpectedHead::Empty, actual: Some(2) });
/// assert_eq!(journal.read(2, 10).await?.len(), 1);
/// # Ok(())
/// # }
/// ```
#[async_trait]
pub trait JournalEffects: Send + Sync {
    /// Appends `batch` atomically if the head matches `expected`.
    async fn commit(&self, batch: Vec<Fact>, expected: ExpectedHead) -> Result<Committed, JournalError>;

    /// Reads up to `limit` records starting at sequence `from`.
    async fn read(&self, from: Sequence, limit: usize) -> Result<Vec<JournalRecord>, JournalError>;

    /// The last sequence, or `None` for an empty journal.
    async fn head(&self) -> Result<Option<Sequence>, JournalError>;

    /// Stores a snapshot of the state at `sequence` (at most the head).
    async fn write_snapshot(&self, sequence: Sequence, bytes: Vec<u8>) -> Result<(), JournalError>;

    /// The newest stored snapshot, if any.
    async fn latest_snapshot(&self) -> Result<Option<StoredSnapshot>, JournalError>;

    /// Waits until the journal's head is past `after` (0: until it holds any record), then
    /// returns the head. Backends shared between processes see other writers' commits here
    /// too, which is how a manager follows them.
    async fn wait_for_head(&self, after: Sequence) -> Result<Sequence, JournalError>;
}

#[async_trait]
impl<J: JournalEffects + ?Sized> JournalEffects for Arc<J> {
    async fn commit(&self, batch: Vec<Fact>, expected: ExpectedHead) -> Result<Committed, JournalError> {
        (**self).commit(batch, expected).await
    }

    async fn read(&self, from: Sequence, limit: usize) -> Result<Vec<JournalRecord>, JournalError> {
        (**self).read(from, limit).await
    }

    async fn head(&self) -> Result<Option<Sequence>, JournalError> {
        (**self).head().await
    }

    async fn write_snapshot(&self, sequence: Sequence, bytes: Vec<u8>) -> Result<(), JournalError> {
        (**self).write_snapshot(sequence, bytes).await
    }

    async fn latest_snapshot(&self) -> Result<Option<StoredSnapshot>, JournalError> {
        (**self).latest_snapshot().await
    }

    async fn wait_for_head(&self, after: Sequence) -> Result<Sequence, JournalError> {
        (**self).wait_for_head(after).await
    }
}
