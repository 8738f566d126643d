//! # reconf-effects
//!
//! The only doors from reconf to the outside world: async traits for physical time, the
//! journal and capability admission, with in-memory, simulated and fault-injecting
//! implementations, and the journal conformance suite every backend runs.
//!
//! This crate must not know about RocksDB or the manager.
//!
//! What is here:
//! - [`PhysicalTimeEffects`] with [`SystemClock`] and [`SimulatedClock`] (set, advance,
//!   fail the next reads). The core never reads a clock; the runtime reads one of these
//!   and passes the time in.
//! - [`JournalEffects`], the append-only, totally ordered log of core facts with
//!   optimistic concurrency ([`ExpectedHead`]), with [`MemoryJournal`] (the reference
//!   implementation) and [`FaultyJournal`] (injects refused, lost and "written but
//!   reported failed" commits, and failed reads, deterministically for a seed).
//! - [`CapabilityEffects`], fail-closed admission of named runtime surfaces, with
//!   [`StaticCapabilities`] and the surface names in [`capability`].
//! - [`OwnerRegistryEffects`]: the live-owner registry nodes share when they share a
//!   journal: compare-and-set records bound to each node's lease, written atomically
//!   with journal commits.
//! - [`codec`]: the record frame and snapshot framing every durable backend shares.
//! - [`Tail`] and [`HeadSignal`]: following a journal as it grows.
//! - `testing` (feature `testing`): the conformance suite a journal backend runs with a
//!   factory of fresh journals.
//!
//! What must not be here: domain rules (those belong to `reconf-core`), knowledge of a
//! particular storage engine, and hidden time or randomness: every clock and random
//! source is explicit and controllable, so tests above this crate stay deterministic.
//! Failures are typed errors, never panics, outside the test suite.
//!
//! ## Example
//!
//! The time is read from a clock and passed to the core, which checks the command; its fact
//! is committed against the head the writer observed, and only then applied. A writer
//! whose view of the head is stale gets a conflict and writes nothing.
//!
//! ```
//! use reconf_core::{BundleId, Command, ComposedBundle, State};
//! use reconf_effects::{
//!     ExpectedHead, JournalEffects, JournalError, MemoryJournal, PhysicalTimeEffects, SimulatedClock,
//! };
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let (clock, journal) = (SimulatedClock::new(1_000), MemoryJournal::new());
//! let mut state = State::new();
//!
//! let bundle = ComposedBundle::new(BundleId::new("device_migration")?);
//! let now = clock.physical_time().await?;
//! let fact = state.check(&Command::RegisterBundle(bundle), now.ms)?;
//! let head = journal.head().await?;
//! let committed = journal.commit(vec![fact.clone()], ExpectedHead::from_head(head)).await?;
//! state.apply(committed.last, &fact);
//!
//! let records = journal.read(1, 100).await?;
//! assert_eq!(records.len(), 1);
//! assert_eq!((records[0].sequence, &records[0].fact), (1, &fact));
//!
//! let stale = journal.commit(vec![fact], ExpectedHead::Empty).await;
//! assert!(matches!(stale, Err(JournalError::Conflict { actual: Some(1), .. })));
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod capability;
pub mod codec;
pub mod faulty;
pub mod journal;
pub mod memory;
pub mod owners;
pub mod tail;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;
pub mod time;

pub use capability::{CapabilityEffects, CapabilityError, StaticCapabilities};
pub use faulty::{CommitFault, FaultStats, FaultyJournal};
pub use journal::{
    Committed, Corruption, ExpectedHead, JournalEffects, JournalError, JournalRecord, Sequence,
    StoredSnapshot,
};
pub use memory::MemoryJournal;
pub use owners::{
    OwnerEntry, OwnerEvent, OwnerExpect, OwnerRegistryEffects, OwnerTxn, OwnerTxnDone, OwnerTxnError,
    OwnerWrite,
};
pub use tail::{HeadSignal, Tail};
pub use time::{PhysicalTime, PhysicalTimeEffects, SimulatedClock, SystemClock, TimeError};
