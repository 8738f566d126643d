//! # reconf-store-rocksdb
//!
//! The durable journal of reconf on RocksDB: framed, checksummed, hash-chained records,
//! group-committed with synced writes. It must not know about the manager.
//!
//! [`RocksJournal`] implements [`reconf_effects::JournalEffects`]: an append-only, totally
//! ordered log of [`reconf_core::Fact`]s with optimistic concurrency (an expected head per
//! commit), plus storage for the runtime's state snapshots. It knows facts only as
//! `postcard` payloads and never interprets them beyond checking that they decode.
//!
//! ## Guarantees
//!
//! - **Acknowledged means synced.** A commit returns `Ok` only after the `WriteBatch`
//!   holding its records and the new head metadata was written with
//!   `WriteOptions::set_sync(true)`. Records and head are one batch, so a crash leaves
//!   either both or neither.
//! - **Atomic, gap-free, ordered.** Sequences start at 1; a commit's facts get consecutive
//!   sequences, all or none. A commit whose expected head does not match writes nothing
//!   and gets [`reconf_effects::JournalError::Conflict`] with the actual head.
//! - **Group commit.** One writer thread owns the write path. It takes every request
//!   waiting on its channel, checks each expected head in order against the running head
//!   (a conflicting request writes nothing, the others proceed), writes all of them as one
//!   batch with one sync, then answers each caller. Under load, the cost of a sync is
//!   shared by everyone waiting for it.
//! - **Never blocks async workers.** Reads and verification run on Tokio's blocking pool
//!   (or a fresh thread when no Tokio runtime is current); writes run on the writer thread.
//! - **Tamper-evident.** Every record carries a checksum and its chain hash
//!   `blake3(previous hash ‖ sequence ‖ payload)`. [`RocksJournal::verify`] walks the whole
//!   journal; `read` checks every record it returns against the stored hash of its
//!   predecessor. Either reports the first bad sequence as
//!   [`reconf_effects::JournalError::Corrupt`] with a typed
//!   [`reconf_effects::Corruption`] — never a panic, never silent acceptance.
//! - **Snapshots are checked too.** Each is stored with a checksum bound to its sequence;
//!   a damaged one is reported as `Corrupt` at the snapshot's sequence (with
//!   [`reconf_effects::Corruption::Metadata`]), never returned. Only the newest
//!   `snapshots_to_keep` (see [`RocksJournalOptions`]) are kept.
//! - **Forward-safe.** A journal written by a newer format version is refused at open with
//!   [`reconf_effects::JournalError::UnsupportedFormat`].
//! - **Checked at open.** The head and its chain hash are recovered from the metadata and
//!   cross-checked against the last stored record.
//! - **A failed write is recovered from, not fatal.** If RocksDB rejects a write, the
//!   callers of that group get [`reconf_effects::JournalError::Ambiguous`] — or
//!   [`reconf_effects::JournalError::StorageFull`] when the disk is full — because the
//!   write may still surface. RocksDB then refuses all writes, so before the next group
//!   the writer closes and reopens the database, which recovers the true head from disk
//!   (the failed group is in it only if it became durable). While the disk is still full,
//!   that reopen is not tried: a 1 MiB probe fails first, the request gets `StorageFull`,
//!   and reads go on. Once space is freed, the same handle writes again without a restart.
//!   Reads wait for a reopen in progress, for at most 10 seconds.
//!
//! ## On-disk layout
//!
//! Three column families: `records` (LZ4-compressed; key: big-endian `u64` sequence;
//! value: a record frame), `meta` (format version; head sequence with its chain hash) and
//! `snapshots` (key: big-endian sequence; value: checksummed bytes). The byte-exact layout
//! is documented, with constants, in [`layout`].
//!
//! ## Example
//!
//! ```
//! use reconf_core::{AuthorityId, Change, Fact, SessionId};
//! use reconf_effects::{ExpectedHead, JournalEffects};
//! use reconf_store_rocksdb::{RocksJournal, RocksJournalOptions};
//!
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let journal = RocksJournal::open(dir.path(), RocksJournalOptions::default())?;
//!
//! let fact = Fact::new(Change::SessionClosed {
//!     session: SessionId::from_u128(1),
//!     authority: AuthorityId([1; 32]),
//! });
//! let committed = journal.commit(vec![fact.clone()], ExpectedHead::Empty).await?;
//! assert_eq!((committed.first, committed.last), (1, 1));
//!
//! let records = journal.read(1, 10).await?;
//! assert_eq!(records[0].fact, fact);
//! assert_eq!(journal.verify().await?.head, Some(1));
//! journal.close().await?;
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod frame;
mod journal;
pub mod layout;
mod options;
mod slot;
mod store;
mod verify;
mod writer;

pub use journal::RocksJournal;
pub use options::RocksJournalOptions;
pub use verify::VerifyReport;
