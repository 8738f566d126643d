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
//! - `testing` (feature `testing`): the conformance suite a journal backend runs with a
//!   factory of fresh journals.
//!
//! What must not be here: domain rules (those belong to `reconf-core`), knowledge of a
//! particular storage engine, and hidden time or randomness: every clock and random
//! source is explicit and controllable, so tests above this crate stay deterministic.
//! Failures are typed errors, never panics, outside the test suite.
#![forbid(unsafe_code)]

pub mod capability;
pub mod faulty;
pub mod journal;
pub mod memory;
#[cfg(feature = "testing")]
pub mod testing;
pub mod time;

pub use capability::{CapabilityEffects, CapabilityError, StaticCapabilities};
pub use faulty::{CommitFault, FaultStats, FaultyJournal};
pub use journal::{
    Committed, Corruption, ExpectedHead, JournalEffects, JournalError, JournalRecord, Sequence,
    StoredSnapshot,
};
pub use memory::MemoryJournal;
pub use time::{PhysicalTime, PhysicalTimeEffects, SimulatedClock, SystemClock, TimeError};
