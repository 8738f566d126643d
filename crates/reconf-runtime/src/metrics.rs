//! Names of the metrics the manager records through the [`metrics`](https://docs.rs/metrics)
//! facade when the `metrics` feature is on.
//!
//! The application chooses the exporter (Prometheus, StatsD, …) by installing a recorder;
//! without one every recording is a load and a branch, and without the feature there is no
//! code at all. Names are stable and dotted like the [`events`](crate::events); an
//! exporter may rewrite the dots (Prometheus shows `reconf.journal.commits` as
//! `reconf_journal_commits`).
//!
//! | name | kind | labels | what |
//! |---|---|---|---|
//! | `reconf.delegations.accepted` | counter | `kind` = `plain` \| `handoff` | delegations made durable and answered `Ok` (a live handoff is one, with its owner change) |
//! | `reconf.delegations.rejected` | counter | `error` = [`ManagerError::kind`](crate::ManagerError::kind) | delegations and live handoffs answered with an error, by cause |
//! | `reconf.commands.rejected` | counter | `error` | every other command answered with an error |
//! | `reconf.journal.commits` | counter | | journal commits that succeeded |
//! | `reconf.journal.facts` | counter | | facts those commits wrote |
//! | `reconf.journal.conflicts` | counter | | commits refused because another writer moved the head |
//! | `reconf.batches.failed` | counter | | batches whose commit failed (every command of it refused) |
//! | `reconf.batch.size` | histogram | | commands taken from the mailbox per batch |
//! | `reconf.journal.commit.seconds` | histogram | | time of one journal commit, synced |
//! | `reconf.command.seconds` | histogram | `command` | one call's latency as its caller sees it: queueing, check, commit, answer |
//! | `reconf.sessions` | gauge | `class` = `native` \| `delegated` \| `closed` | sessions by class after the last batch |
//! | `reconf.live_owners` | gauge | | sessions with a live owner attached |
//! | `reconf.journal.head` | gauge | | the journal sequence the state has applied |
//!
//! `command` is one of `register_bundle`, `link_bundles`, `open_session`, `close_session`,
//! `delegate_session`, `delegate_active_session`, `attach_owner`, `upgrade`.

/// Delegations answered `Ok` (label `kind`).
pub const DELEGATIONS_ACCEPTED: &str = "reconf.delegations.accepted";
/// Delegations answered with an error (label `error`).
pub const DELEGATIONS_REJECTED: &str = "reconf.delegations.rejected";
/// Other commands answered with an error (label `error`).
pub const COMMANDS_REJECTED: &str = "reconf.commands.rejected";
/// Successful journal commits.
pub const JOURNAL_COMMITS: &str = "reconf.journal.commits";
/// Facts written by successful commits.
pub const JOURNAL_FACTS: &str = "reconf.journal.facts";
/// Commits refused by a head conflict.
pub const JOURNAL_CONFLICTS: &str = "reconf.journal.conflicts";
/// Batches whose commit failed.
pub const BATCHES_FAILED: &str = "reconf.batches.failed";
/// Commands per batch.
pub const BATCH_SIZE: &str = "reconf.batch.size";
/// Seconds per journal commit.
pub const COMMIT_SECONDS: &str = "reconf.journal.commit.seconds";
/// Seconds per call, as the caller sees it (label `command`).
pub const COMMAND_SECONDS: &str = "reconf.command.seconds";
/// Sessions by class (label `class`).
pub const SESSIONS: &str = "reconf.sessions";
/// Sessions with a live owner.
pub const LIVE_OWNERS: &str = "reconf.live_owners";
/// The applied journal head.
pub const JOURNAL_HEAD: &str = "reconf.journal.head";
