//! The journal effect: an append-only, totally ordered log of core [`Fact`]s.

use std::fmt;

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

/// Why a journal operation failed. A failed `commit` wrote nothing, except
/// [`JournalError::Ambiguous`], after which the caller must re-read the head.
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
    /// A fact could not be encoded.
    #[error("fact could not be encoded: {reason}")]
    Encode {
        /// The encoder's message.
        reason: String,
    },
    /// The journal was closed.
    #[error("journal is closed")]
    Closed,
}

fn fmt_head(h: Option<Sequence>) -> String {
    h.map_or_else(|| "none (empty)".to_owned(), |s| s.to_string())
}

/// An append-only, totally ordered log of facts.
///
/// Contract (checked for every backend by [`crate::testing::run_all`]):
/// - sequences start at 1, have no gaps and never repeat;
/// - `commit` is atomic: all facts of the batch are written with consecutive sequences,
///   or none is;
/// - a commit whose `expected` head does not match writes nothing and returns
///   [`JournalError::Conflict`] with the actual head;
/// - `read(from, limit)` returns up to `limit` records with sequence `>= from`, in order;
/// - an acknowledged commit survives reopening, where the backend persists.
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
}
