//! # reconf-runtime
//!
//! The reconfiguration manager: one actor task owning the core state, fed by a bounded
//! mailbox. Every change is checked by the core, written to the journal (one commit per
//! batch of waiting commands), and only then applied and acknowledged. On top of that:
//! live-session ownership with two-phase handoff, recovery from the journal at open, and
//! (feature `upgrade-executor`) staged runtime upgrades.
//!
//! This crate wires effects to the core; it must not contain domain rules that belong in
//! `reconf-core`.
//!
//! Features: `rocksdb` adds [`ManagerBuilder::rocksdb_journal`]; `upgrade-executor` adds
//! the upgrade operations.
#![forbid(unsafe_code)]

mod actor;
mod builder;
mod error;
pub mod events;
mod manager;
mod manifests;
mod recovery;
mod request;
mod shared;
#[cfg(feature = "upgrade-executor")]
mod upgrade;

pub use builder::{ManagerBuilder, DEFAULT_MAILBOX_CAPACITY, DEFAULT_SNAPSHOT_INTERVAL};
pub use error::{BoundaryError, ManagerError, RecoveryError};
pub use manager::{ManagerStats, ReconfigurationManager};
pub use recovery::{audit_journal, JournalAudit, RecoveryReport};
pub use request::{
    CheckedCoherence, DelegationOutcome, DelegationRequest, DelegationWitness, HandoffOutcome, OwnedSession,
};
pub use shared::ActorStats;
#[cfg(feature = "upgrade-executor")]
pub use upgrade::{NoStepWork, UpgradeStepHook};
