//! # reconf-core
//!
//! The deterministic heart of reconf: ids, bundles, footprints, facts, receipts and the
//! reconfiguration state machine, with its coherence rules.
//!
//! It is *sans-I/O*, in the manner of quinn-proto: inputs in, decisions out, time passed
//! in. Commands are [checked](State::check) against the state without mutating it and
//! yield the [`Fact`]s they would write; facts are [applied](State::apply) only once the
//! caller has made them durable. Replaying the same facts always rebuilds the same state.
//!
//! This crate must not do I/O, read clocks, spawn, lock, or depend on tokio, rocksdb,
//! async-trait or linkme; a test enforces the last part. (It does choose where its memory
//! lives: a large session table is an anonymous mapping with transparent huge pages
//! requested, because at a million sessions TLB misses are most of a delegation's cost.)
//!
//! ```
//! use reconf_core::*;
//! let mut state = State::new();
//! let (a, b) = (AuthorityId::from_label("a"), AuthorityId::from_label("b"));
//! let bundle = BundleId::new("device_migration").unwrap();
//! let session = SessionId::from_u128(7);
//! let mut seq = 0;
//! for cmd in [
//!     Command::RegisterBundle(ComposedBundle::new(bundle.clone())),
//!     Command::OpenSession { session, authority: a, bundle: Some(bundle.clone()) },
//!     Command::Delegate(Delegation::new(session, a, b, bundle.clone())),
//! ] {
//!     let now_ms = 1_000; // the caller's clock: the core reads none
//!     let fact = state.check(&cmd, now_ms).unwrap(); // check: no mutation
//!     seq += 1; // ...persist `fact` at `seq` here...
//!     state.apply(seq, &fact); // then apply
//! }
//! assert_eq!(state.holder(&session), Some(b));
//! assert!(state.verify_coherence().is_coherent());
//! ```
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod bundle;
mod check;
mod coherence;
mod command;
mod error;
mod fact;
mod footprint;
mod ids;
mod ownership;
mod receipt;
mod scope;
mod state;
mod table;
pub mod upgrade;

pub use bundle::{ComposedBundle, Incompatibility, BUNDLE_SCHEMA_VERSION};
pub use check::{Checker, LiveError, Overlay};
pub use coherence::{audit, CoherenceReport, Violation};
pub use command::{Command, Delegation};
pub use error::CommandError;
pub use fact::{Change, DelegationFact, Fact, FACT_SCHEMA_VERSION};
pub use footprint::{FootprintSummary, SessionClass, SessionFootprint};
pub use ids::{AuthorityId, BundleId, ContextId, IdParseError, SessionId};
pub use ownership::{
    LiveOwner, LiveSessions, OwnerCapability, OwnerLabel, OwnerToken, OwnershipError, OwnershipReceipt,
};
pub use receipt::DelegationReceipt;
pub use scope::{CapabilityScope, LinkBoundary, BUNDLE_FRAGMENT_PREFIX, WHOLE_SESSION_FRAGMENT};
pub use state::{
    Applied, LinkRecord, SessionRecord, SnapshotError, SnapshotRecord, State, StateSnapshot, StateStats,
    MAX_AUTHORITIES, MAX_GENERATION,
};
