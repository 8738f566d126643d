//! # reconf-effects
//!
//! The only doors from reconf to the outside world: async traits for physical time, the
//! journal and capability admission, with in-memory, simulated and fault-injecting
//! implementations, and the journal conformance suite every backend runs.
//!
//! This crate must not know about RocksDB or the manager.
#![forbid(unsafe_code)]

pub mod journal;

pub use journal::{
    Committed, Corruption, ExpectedHead, JournalEffects, JournalError, JournalRecord, Sequence,
    StoredSnapshot,
};
