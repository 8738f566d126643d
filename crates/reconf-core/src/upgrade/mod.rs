//! Staged runtime upgrades: a bundle's membership (the roles or authorities that run it)
//! moves through audited phases, as a pure state machine.
//!
//! A bundle is first *seeded* with a membership. An upgrade request carries a plan of
//! steps, each naming the membership after it, and a compatibility contract. The
//! [`UpgradeBook`] checks each command and returns the [`UpgradeFact`]s to journal; the
//! runtime journals them one at a time and [applies](UpgradeBook::apply) each once durable,
//! so every phase is durable before the next becomes visible. The outcomes:
//!
//! | request | phases | membership |
//! |---|---|---|
//! | breaks a plan rule ([`validate`]) | staged, failed | unchanged; reason recorded |
//! | valid, step *k* fails | staged, admitted, rolled back | unchanged |
//! | valid, every step succeeds | staged, admitted, committed cutover | the last step's; epoch +1 per step |
//! | interrupted by a restart | staged (, admitted), rolled back | unchanged |
//!
//! Submitting a recorded upgrade id again returns its execution without running it. At
//! most one upgrade is in flight per bundle, and an optional expected epoch guards against
//! racing upgrades. A bundle's state exports as an [`UpgradeSnapshot`], which is validated
//! when restored.
//!
//! **Epochs** count from 0 at a bundle's first seeding ([`FIRST_EPOCH`]) and grow by one
//! with each later membership change (a forced re-seed, each cutover step): telltale's
//! anchor, so a history ported from it keeps its numbers.
//!
//! **Restoring is for trusted input.** A restored snapshot is accepted once it is
//! internally consistent: every field the history determines is checked (members at each
//! event, added/removed as their difference, consecutive epochs from the first seeding, the
//! last event at the snapshot's epoch and members, each step's change backed by the
//! committed upgrade that made it, legal phase sequences). That proves the snapshot could
//! have happened, not that it did: restore only what you exported or otherwise trust.
//!
//! Nothing here does I/O, reads a clock or keeps a lock: the runtime supplies step
//! outcomes and persistence.
//!
//! ```
//! use reconf_core::BundleId;
//! use reconf_core::upgrade::*;
//!
//! let bundle = BundleId::new("device_migration").unwrap();
//! let m = |s: &str| Member::new(s).unwrap();
//! let mut book = UpgradeBook::new();
//! let mut journal = Vec::new();
//! // Each fact is journaled, then applied.
//! let mut write = |book: &mut UpgradeBook, fact: UpgradeFact| {
//!     journal.push(fact.clone());
//!     book.apply(&fact)
//! };
//!
//! let seed = book.check_seed(&bundle, [m("alice"), m("bob")], OnHistory::Refuse).unwrap();
//! write(&mut book, seed);
//! assert_eq!(book.epoch(&bundle), 0); // seeding is epoch 0
//!
//! // Two steps: add carol, then retire alice. Every step keeps a member of the one before.
//! let plan = UpgradePlan::new(
//!     PlanId::new("rotate-alice").unwrap(),
//!     vec![
//!         UpgradeStep::new(StepId::new("add-carol").unwrap(), [m("alice"), m("bob"), m("carol")])
//!             .with_placement(m("carol"), Placement::colocated_in("bob", "eu-west")),
//!         UpgradeStep::new(StepId::new("retire-alice").unwrap(), [m("bob"), m("carol")]),
//!     ],
//! );
//! let id = UpgradeId::new("release-42").unwrap();
//! let request = RuntimeUpgradeRequest::new(id.clone(), plan, CompatibilityContract::default());
//!
//! let Begin::Staged(staged) = book.check_begin(&bundle, &request, Some(0)).unwrap() else {
//!     panic!("the request is valid");
//! };
//! write(&mut book, staged);
//! let admitted = book.check_admit(&bundle, &id).unwrap();
//! write(&mut book, admitted);
//! for event in book.planned_cutover(&bundle, &id).unwrap() {
//!     // ...the runtime's step hook cuts over to `event.next` here; on failure it would
//!     // write `check_rollback(.., RollbackCause::StepFailed { .. })` instead...
//!     assert!(!event.next.is_empty());
//! }
//! let committed = book.check_commit(&bundle, &id).unwrap();
//! write(&mut book, committed);
//!
//! assert_eq!(book.members(&bundle), Some(&[m("bob"), m("carol")].into()));
//! assert_eq!(book.epoch(&bundle), 2); // seeded at 0, then one epoch per step
//! let execution = book.execution(&bundle, &id).unwrap();
//! assert_eq!(
//!     execution.phase_sequence(),
//!     [UpgradePhase::Staged, UpgradePhase::Admitted, UpgradePhase::CommittedCutover]
//! );
//!
//! // Asking again returns the recorded execution; nothing runs twice.
//! assert_eq!(
//!     book.check_begin(&bundle, &request, Some(1)).unwrap(),
//!     Begin::AlreadyRecorded(execution.clone())
//! );
//!
//! // The journal rebuilds the same book, and the exported snapshot restores.
//! assert_eq!(UpgradeBook::replay(&journal), book);
//! let mut copy = UpgradeBook::new();
//! copy.restore(&bundle, book.export(&bundle).unwrap()).unwrap();
//! assert_eq!(copy, book);
//! ```

mod book;
mod command;
mod error;
mod names;
mod placement;
mod snapshot;
mod types;
mod validation;

pub use book::{OnHistory, UpgradeBook};
pub use command::{UpgradeCommand, UpgradeDecision, UpgradeRefusal};
pub use error::{NameError, PlacementError, SnapshotViolation, UpgradeError, ValidationError};
pub use names::{Member, ObligationId, PlanId, PublicationId, StepId, UpgradeId};
pub use placement::{validate_placements, Placement, PlacementObservation};
pub use snapshot::{
    MembershipCause, MembershipEvent, UpgradeExecution, UpgradeSnapshot, FINISHED_SEQUENCES, FIRST_EPOCH,
    IN_FLIGHT_SEQUENCES,
};
pub use types::{
    Begin, CompatibilityContract, ExecutionConstraint, PendingEffectTreatment, PhaseArtifact,
    PublicationContinuity, RollbackCause, RuntimeUpgradeRequest, UpgradeApplied, UpgradeFact, UpgradePhase,
    UpgradePlan, UpgradeStep, UPGRADE_SCHEMA_VERSION,
};
pub use validation::validate;
