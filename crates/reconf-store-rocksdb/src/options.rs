//! Options for opening a [`crate::RocksJournal`].

use std::num::NonZeroUsize;

/// How to open a [`crate::RocksJournal`]. Every field has a sensible default; the
/// `NonZero` types make nonsensical values unrepresentable, so opening never fails on
/// options alone.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RocksJournalOptions {
    /// Create the database (and its column families) when the path holds none.
    /// Default: `true`.
    pub create_if_missing: bool,
    /// Walk and check the whole journal (as [`crate::RocksJournal::verify`] does) before
    /// the open returns. The tail is always checked; a full walk costs time linear in the
    /// journal's size. Default: `false`.
    pub verify_on_open: bool,
    /// The most commit requests one group commit (one `WriteBatch`, one sync) takes.
    /// Default: 1024.
    pub max_group: NonZeroUsize,
    /// How many commit requests may wait for the writer before callers are held back.
    /// Default: 4096.
    pub queue_capacity: NonZeroUsize,
    /// How many of the newest snapshots are kept; older ones are deleted in the batch that
    /// writes a new one. Default: 2.
    pub snapshots_to_keep: NonZeroUsize,
}

impl Default for RocksJournalOptions {
    fn default() -> Self {
        Self {
            create_if_missing: true,
            verify_on_open: false,
            max_group: NonZeroUsize::new(1024).unwrap_or(NonZeroUsize::MIN),
            queue_capacity: NonZeroUsize::new(4096).unwrap_or(NonZeroUsize::MIN),
            snapshots_to_keep: NonZeroUsize::new(2).unwrap_or(NonZeroUsize::MIN),
        }
    }
}

impl RocksJournalOptions {
    /// Sets the `create_if_missing` field.
    #[must_use]
    pub fn create_if_missing(mut self, yes: bool) -> Self {
        self.create_if_missing = yes;
        self
    }

    /// Sets the `verify_on_open` field.
    #[must_use]
    pub fn verify_on_open(mut self, yes: bool) -> Self {
        self.verify_on_open = yes;
        self
    }

    /// Sets the `max_group` field.
    #[must_use]
    pub fn max_group(mut self, n: NonZeroUsize) -> Self {
        self.max_group = n;
        self
    }

    /// Sets the `queue_capacity` field.
    #[must_use]
    pub fn queue_capacity(mut self, n: NonZeroUsize) -> Self {
        self.queue_capacity = n;
        self
    }

    /// Sets the `snapshots_to_keep` field.
    #[must_use]
    pub fn snapshots_to_keep(mut self, n: NonZeroUsize) -> Self {
        self.snapshots_to_keep = n;
        self
    }
}
