//! # reconf-runtime
//!
//! The reconfiguration manager, and the facade a downstream crate depends on: it
//! re-exports the core's and the effects' types a caller needs, so `reconf-runtime` with
//! the features you want is the only reconf dependency you add.
//!
//! ## One command, start to finish
//!
//! 1. **Handle.** [`ReconfigurationManager::delegate_session`] (or any other change) checks
//!    the capability gate, then sends a message carrying its own typed responder into the
//!    bounded mailbox (default capacity [`DEFAULT_MAILBOX_CAPACITY`]).
//! 2. **Batch.** The actor, the one task that writes the state, takes everything waiting
//!    (after one yield, so callers it just answered can join).
//! 3. **Check.** The core's `Checker` checks the commands in order against the state as
//!    the earlier ones of the batch leave it, with the batch's time passed in. Each yields
//!    the fact it would write or a typed refusal; a live handoff stages its new owner at the
//!    generation the checked fact carries. Nothing is mutated.
//! 4. **Commit.** The batch's facts go to the journal in one commit expecting the head the
//!    state has applied. Another writer's head is a conflict: the actor catches up through
//!    the one replay loop and re-checks. A commit whose outcome the journal cannot tell is
//!    read back and counts as committed if it landed.
//! 5. **Apply.** Only a durable commit is applied, in one write-lock hold, so readers see
//!    the state before or after a batch, never inside one.
//! 6. **Answer.** Each caller gets its own result: a receipt, a generation, a handle. A
//!    failed commit answers every accepted command with [`ManagerError::Persist`] and applies
//!    nothing; staged handoffs are rolled back, the old owner exactly as it was.
//!
//! Recovery at open replays the latest snapshot plus the records after it through the same
//! replay loop and audits coherence; upgrades left between phases are rolled back through
//! the same commit path. Every outcome emits a `tracing` event named in [`events`].
//!
//! Reads on the handle ([`ReconfigurationManager::session`], `footprint`, `stats`, …) are
//! local: they see the state this manager has applied. On a journal shared with other
//! managers (etcd), the idle actor follows their commits through the same replay loop, so
//! local reads trail the journal by a watch round trip; [`ReconfigurationManager::sync`] is
//! the linearizable read, applying everything committed before it was called.
//!
//! On such a journal live owners are shared as well ([`OwnerRegistryEffects`]; the etcd
//! journal's registry is `reconf_store_etcd::EtcdOwners`): attach, handoff, detach and close
//! are fenced writes of one record per session, bound to the node's lease, and the local
//! live table mirrors every node's records from the registry's events (see
//! [`ReconfigurationManager`], "Live owners across nodes").
//!
//! This crate wires effects to the core; it must not contain domain rules that belong in
//! `reconf-core`.
//!
//! ## Features
//!
//! Each combination builds and passes its tests.
//!
//! | feature | enables |
//! |---|---|
//! | `rocksdb` | the durable RocksDB journal, `ManagerBuilder::rocksdb_journal` |
//! | `etcd` | the journal on etcd shared by many managers, `ManagerBuilder::etcd_journal` |
//! | `upgrade-executor` | staged runtime upgrades: `seed_membership`, `execute_upgrade`, … |
//! | `metrics` | counters, histograms and gauges through the `metrics` facade, named in [`metrics`] |
//!
//! ## Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), reconf_runtime::ManagerError> {
//! use reconf_runtime::{AuthorityId, BundleId, ComposedBundle, DelegationRequest, ManagerBuilder, SessionId};
//!
//! let manager = ManagerBuilder::new().memory_journal().without_manifests().open().await?;
//! let bundle = BundleId::new("device_migration").unwrap();
//! manager.register_bundle(ComposedBundle::new(bundle.clone())).await?;
//! let (alice, bob) = (AuthorityId::from_label("alice"), AuthorityId::from_label("bob"));
//! let session = SessionId::from_u128(1);
//! manager.open_session(session, alice, Some(bundle.clone())).await?;
//! let out = manager.delegate_session(DelegationRequest::new(session, alice, bob, bundle)).await?;
//! assert_eq!(manager.session(&session).unwrap().holder, bob);
//! assert_eq!(out.receipt.generation, 2);
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod actor;
mod builder;
mod commit;
mod error;
pub mod events;
#[cfg(feature = "upgrade-executor")]
mod executor;
#[cfg(feature = "upgrade-executor")]
mod hook;
mod mailbox;
mod manager;
mod manifests;
pub mod metrics;
mod owners;
mod recovery;
mod replay;
mod request;
mod shared;
mod telemetry;

pub use builder::{ManagerBuilder, DEFAULT_MAILBOX_CAPACITY, DEFAULT_SNAPSHOT_INTERVAL};
pub use error::{ManagerError, RecoveryError};
#[cfg(feature = "upgrade-executor")]
#[cfg_attr(docsrs, doc(cfg(feature = "upgrade-executor")))]
pub use executor::OnHistory;
#[cfg(feature = "upgrade-executor")]
#[cfg_attr(docsrs, doc(cfg(feature = "upgrade-executor")))]
pub use hook::{NoStepWork, StepFailed, UpgradeStepHook};
pub use manager::{ManagerStats, ReconfigurationManager};
pub use manifests::linked_bundles;
pub use owners::{OwnerLoss, OwnerNotice};
pub use recovery::{audit_journal, JournalAudit, RecoveryReport};
pub use request::{DelegationOutcome, DelegationRequest, DelegationWitness, HandoffOutcome, OwnedSession};
pub use shared::ActorStats;

// The facade: what a downstream crate needs, so it depends on `reconf-runtime` alone.
pub use reconf_core::upgrade;
pub use reconf_core::{
    AuthorityId, BundleId, CapabilityScope, Change, CoherenceReport, CommandError, ComposedBundle, ContextId,
    Delegation, DelegationReceipt, Fact, FootprintSummary, IdParseError, LinkBoundary, LinkRecord,
    OwnerCapability, OwnerLabel, OwnerToken, OwnershipError, OwnershipReceipt, SessionClass,
    SessionFootprint, SessionId, SessionRecord, State, StateStats, Violation, MAX_AUTHORITIES,
    WHOLE_SESSION_FRAGMENT,
};
pub use reconf_effects::capability::{CapabilityEffects, CapabilityError, StaticCapabilities};
pub use reconf_effects::time::{PhysicalTime, PhysicalTimeEffects, SimulatedClock, SystemClock, TimeError};
pub use reconf_effects::{
    Corruption, ExpectedHead, FaultyJournal, JournalEffects, JournalError, MemoryJournal,
    OwnerRegistryEffects,
};
pub use reconf_manifests::RegistryError;
#[cfg(feature = "rocksdb")]
#[cfg_attr(docsrs, doc(cfg(feature = "rocksdb")))]
pub use reconf_store_rocksdb::{RocksJournal, RocksJournalOptions, VerifyReport};

/// The crates behind the facade, for what it does not re-export.
pub mod crates {
    pub use reconf_core as core;
    pub use reconf_effects as effects;
    pub use reconf_manifests as manifests;
    #[cfg(feature = "etcd")]
    #[cfg_attr(docsrs, doc(cfg(feature = "etcd")))]
    pub use reconf_store_etcd as store_etcd;
    #[cfg(feature = "rocksdb")]
    #[cfg_attr(docsrs, doc(cfg(feature = "rocksdb")))]
    pub use reconf_store_rocksdb as store_rocksdb;
}
