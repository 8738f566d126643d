//! # reconf-store-etcd
//!
//! The reconf journal on etcd: one hash-chained log that many managers on many nodes share,
//! so "one owner per session" holds across nodes. It must not know about the manager, and
//! it does no consensus of its own: etcd's transactions are the compare-and-set.
//!
//! [`EtcdJournal`] implements [`reconf_effects::JournalEffects`] and passes the shared
//! conformance suite unchanged. Records use the same frames and hash chain as the RocksDB
//! journal ([`reconf_effects::codec`]); the key layout is in [`layout`].
//!
//! ## Guarantees
//!
//! - **One transaction per commit.** `commit(batch, expected)` compares the head key with
//!   the head the commit builds on, then writes the commit's records (one key) and the new
//!   head; otherwise it answers [`reconf_effects::JournalError::Conflict`] with the actual
//!   head. [`reconf_effects::ExpectedHead::Any`] retries that compare-and-set with jittered
//!   backoff; it never writes blindly. A commit larger than `max_commit_bytes` is refused
//!   whole, never split into two transactions.
//! - **Lost replies are resolved, not guessed.** When a commit's reply does not arrive
//!   (timeout, leader change, reset connection), the journal fences the head it built on
//!   (replacing it, unchanged but for a fresh id, only if it is still that head), so the lost
//!   write can never land afterwards; then it looks for its own commit id. The caller gets
//!   `Ok` when the commit is there; when it is not, the commit is retried against the head it
//!   finds (or answered `Conflict`). Only when the cluster answers nothing for
//!   `resolve_timeout` is the answer [`reconf_effects::JournalError::Ambiguous`].
//! - **Tamper-evident.** Every record is checksummed and chained; `read` checks every
//!   record it returns and [`EtcdJournal::verify`] walks the whole log. A journal of a newer
//!   format is refused at connect with [`reconf_effects::JournalError::UnsupportedFormat`];
//!   the head is cross-checked against its record at connect.
//! - **Read consistency.** `read`, `head` and `latest_snapshot` are linearizable etcd reads:
//!   they see every commit acknowledged before they started, on any node.
//! - **Following.** `wait_for_head` is fed by an etcd watch on the head key, resumed from
//!   the next revision after a disconnect and re-read after compaction, so a manager learns
//!   of other managers' commits within a round trip.
//!
//! - **Live owners, fenced.** [`EtcdOwners`] keeps one record per live session under the
//!   same prefix, bound to the node's lease and changed only by compare-and-set, in the
//!   journal commit's own transaction when the change is also a fact (see
//!   [`reconf_effects::OwnerRegistryEffects`]).
//!
//! ## Example
//!
//! ```no_run
//! use reconf_effects::{ExpectedHead, JournalEffects};
//! use reconf_store_etcd::{EtcdJournal, EtcdJournalOptions};
//! # async fn run(fact: reconf_core::Fact) -> Result<(), reconf_effects::JournalError> {
//! let journal = EtcdJournal::connect(EtcdJournalOptions::new(["http://127.0.0.1:2379"]).prefix("/reconf/demo")).await?;
//! let head = journal.head().await?;
//! journal.commit(vec![fact], ExpectedHead::from_head(head)).await?;
//! assert!(journal.verify().await?.head.is_some());
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod journal;
pub mod layout;
mod options;
mod owners;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;
mod watch;

pub use journal::{EtcdJournal, EtcdJournalStats, VerifyReport};
pub use options::EtcdJournalOptions;
pub use owners::{EtcdOwners, EtcdOwnersStats};
