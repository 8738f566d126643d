//! Stable names of the `tracing` events the manager emits. Subscribers can filter on them;
//! they never change meaning.

/// A delegation was written to the journal and applied.
pub const DELEGATION_PERSISTED: &str = "reconf.delegation.persisted";
/// A delegation was refused (capability, rule, boundary or journal).
pub const DELEGATION_REJECTED: &str = "reconf.delegation.rejected";
/// A live handoff committed its new owner.
pub const HANDOFF_COMMITTED: &str = "reconf.handoff.committed";
/// A live handoff was rolled back; the previous owner is unchanged.
pub const HANDOFF_ROLLED_BACK: &str = "reconf.handoff.rolled_back";
/// A non-delegation command was persisted.
pub const COMMAND_PERSISTED: &str = "reconf.command.persisted";
/// A non-delegation command was refused.
pub const COMMAND_REJECTED: &str = "reconf.command.rejected";
/// A journal commit failed; every command of the batch was refused.
pub const BATCH_FAILED: &str = "reconf.batch.failed";
/// Another writer moved the journal head; the manager caught up and re-checked.
pub const JOURNAL_CONFLICT: &str = "reconf.journal.conflict";
/// A coherence check found a violation.
pub const COHERENCE_VIOLATION: &str = "reconf.coherence.violation";
/// Recovery finished.
pub const RECOVERY_COMPLETED: &str = "reconf.recovery.completed";
/// A snapshot was written.
pub const SNAPSHOT_WRITTEN: &str = "reconf.snapshot.written";
/// A snapshot could not be written or read; the journal still holds everything.
pub const SNAPSHOT_FAILED: &str = "reconf.snapshot.failed";
/// A generated manifest bundle was registered at open.
pub const MANIFEST_REGISTERED: &str = "reconf.manifest.registered";
/// A live owner was detached because its session moved or closed outside a handoff.
pub const OWNER_DETACHED: &str = "reconf.owner.detached";
/// An upgrade phase was journaled.
pub const UPGRADE_PHASE: &str = "reconf.upgrade.phase";
/// An upgrade committed its cutover.
pub const UPGRADE_COMMITTED: &str = "reconf.upgrade.committed";
/// An upgrade was rolled back or failed validation.
pub const UPGRADE_ROLLED_BACK: &str = "reconf.upgrade.rolled_back";
/// A commit whose outcome the journal could not tell was read back and found written; it
/// was answered as committed.
pub const COMMIT_RESOLVED: &str = "reconf.commit.resolved";
/// A live handoff's new owner was staged (its delegation checked); it commits with the
/// journal write or is rolled back.
pub const HANDOFF_STAGED: &str = "reconf.handoff.staged";
/// Records other writers of a shared journal committed were applied (or following the
/// journal failed and will be retried).
pub const JOURNAL_FOLLOWED: &str = "reconf.journal.followed";
/// A live owner of this node is gone without this node asking (its lease lapsed, another
/// node took the session, or the record was removed): the embedder must stop running it.
pub const OWNER_LOST: &str = "reconf.owner.lost";
/// This node's live-owner lease lapsed; every owner it ran is dropped.
pub const OWNER_LEASE_LOST: &str = "reconf.owner.lease_lost";
/// A live-owner record in the shared registry that this build cannot decode (ignored).
pub const OWNER_RECORD_UNREADABLE: &str = "reconf.owner.record_unreadable";
