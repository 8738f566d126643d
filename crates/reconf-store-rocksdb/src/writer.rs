//! The single writer thread: group commit.
//!
//! Callers send requests over a bounded channel and wait on a oneshot reply. The writer
//! takes whatever is waiting (up to `max_group`), checks each request's expected head in
//! order against the running head, builds one `WriteBatch` for all requests that pass,
//! writes it with one sync, publishes the new head and only then replies. Because the
//! running head lives here and nowhere else, sequence assignment needs no lock.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use reconf_effects::{Committed, ExpectedHead, HeadSignal, JournalError, Sequence};
use rocksdb::{WriteBatch, DB};
use tokio::sync::{mpsc, oneshot};

use crate::frame::{self, Hash};
use crate::layout::{META_CF, META_HEAD_KEY, RECORDS_CF, SNAPSHOTS_CF};
use crate::slot::{self, Slot};
use crate::store::{self, cf, Tail};

/// One request to the writer.
pub(crate) enum Request {
    /// Append these encoded facts if the head matches.
    Commit {
        payloads: Vec<Vec<u8>>,
        expected: ExpectedHead,
        reply: oneshot::Sender<Result<Committed, JournalError>>,
    },
    /// Store a snapshot taken at `sequence`.
    Snapshot { sequence: Sequence, bytes: Vec<u8>, reply: oneshot::Sender<Result<(), JournalError>> },
}

/// How one request of a group fares, decided before the group's write.
enum Outcome {
    Committed(oneshot::Sender<Result<Committed, JournalError>>, Committed),
    /// Checked against `actual`; `speculative` when `actual` includes earlier requests of
    /// the same group, which only hold if the group's write succeeds.
    Conflict {
        reply: oneshot::Sender<Result<Committed, JournalError>>,
        expected: ExpectedHead,
        actual: Option<Sequence>,
        speculative: bool,
    },
    CommitRefused(oneshot::Sender<Result<Committed, JournalError>>, JournalError),
    Snapshot(oneshot::Sender<Result<(), JournalError>>, Result<(), JournalError>),
}

pub(crate) struct Writer {
    slot: Arc<Slot>,
    tail: Tail,
    /// The durable head as the async side sees it (0 = empty).
    published: Arc<AtomicU64>,
    /// Wakes `wait_for_head` callers once `published` moved.
    signal: HeadSignal,
    max_group: usize,
    snapshots: BTreeSet<Sequence>,
    snapshots_to_keep: usize,
    /// Set after a failed write: RocksDB refuses writes until the database is reopened,
    /// which the next group does first, taking the head from disk.
    suspect: bool,
}

impl Writer {
    pub(crate) fn new(
        slot: Arc<Slot>,
        tail: Tail,
        published: Arc<AtomicU64>,
        signal: HeadSignal,
        max_group: usize,
        snapshots: BTreeSet<Sequence>,
        snapshots_to_keep: usize,
    ) -> Self {
        Self { slot, tail, published, signal, max_group, snapshots, snapshots_to_keep, suspect: false }
    }

    /// Serves requests until every sender is gone.
    pub(crate) fn run(mut self, mut rx: mpsc::Receiver<Request>) {
        let mut group = Vec::with_capacity(self.max_group.min(1024));
        while let Some(first) = rx.blocking_recv() {
            group.push(first);
            while group.len() < self.max_group {
                match rx.try_recv() {
                    Ok(request) => group.push(request),
                    Err(_) => break,
                }
            }
            self.process(&mut group);
        }
        // Everything acknowledged is already in the synced WAL; flushing the memtables on a
        // clean stop only spares the next open from replaying that WAL (seconds for a large
        // journal). A failed flush loses nothing, so it is logged, not returned.
        let Ok(db) = self.slot.get() else { return };
        for name in [RECORDS_CF, META_CF, SNAPSHOTS_CF] {
            if let Some(cf) = db.cf_handle(name) {
                if let Err(e) = db.flush_cf(cf) {
                    tracing::warn!(name: "reconf.journal.flush_failed", column_family = name, error = %e);
                }
            }
        }
        tracing::debug!(name: "reconf.journal.writer.stopped", "journal writer stopped");
    }

    fn process(&mut self, group: &mut Vec<Request>) {
        let db = match self.database() {
            Ok(db) => db,
            Err(e) => return refuse(group, &e),
        };
        let durable = self.tail;
        let mut batch = WriteBatch::default();
        let outcomes = match self.plan(&db, group, &mut batch) {
            Ok(outcomes) => outcomes,
            Err(e) => {
                // Only a missing column family gets here, before anything was written.
                self.tail = durable;
                return refuse(group, &e);
            }
        };
        let written = if batch.is_empty() {
            Ok(())
        } else {
            db.write_opt(batch, &store::synced()).map_err(|e| Failed {
                full: slot::is_no_space(&e),
                reason: format!("journal write failed: {e}"),
            })
        };
        drop(db);
        match &written {
            Ok(()) => self.publish(),
            Err(failed) => {
                self.tail = durable;
                self.suspect = true;
                tracing::error!(name: "reconf.journal.write_failed", reason = %failed.reason, full = failed.full, "journal write failed");
            }
        }
        let groups = outcomes.len();
        for outcome in outcomes {
            reply(outcome, written.as_ref().err());
        }
        tracing::trace!(name: "reconf.journal.group_committed", requests = groups, head = ?self.tail.head);
    }

    /// The database to write to: after a failed write, a freshly reopened one whose head
    /// is read from disk (the failed batch is there only if RocksDB made it durable).
    fn database(&mut self) -> Result<Arc<DB>, JournalError> {
        if !self.suspect {
            return self.slot.get();
        }
        let db = self.slot.reopen()?;
        self.tail = store::load_tail(&db)?;
        self.snapshots = store::snapshot_sequences(&db)?;
        self.suspect = false;
        self.publish();
        tracing::info!(name: "reconf.journal.reopened", head = ?self.tail.head, "journal reopened after a failed write");
        Ok(db)
    }

    fn publish(&self) {
        let head = self.tail.head.unwrap_or(0);
        self.published.store(head, Ordering::Release);
        self.signal.publish(head);
    }

    /// Decides every request of the group against the running head and adds the writes of
    /// the accepted ones to `batch`.
    fn plan(
        &mut self,
        db: &DB,
        group: &mut Vec<Request>,
        batch: &mut WriteBatch,
    ) -> Result<Vec<Outcome>, JournalError> {
        let records = cf(db, RECORDS_CF)?;
        let meta = cf(db, META_CF)?;
        let snapshots_cf = cf(db, SNAPSHOTS_CF)?;
        let group_start = self.tail.head;
        let mut outcomes = Vec::with_capacity(group.len());
        let mut appended = false;
        for request in group.drain(..) {
            match request {
                Request::Commit { payloads, expected, reply } => {
                    if !expected.matches(self.tail.head) {
                        let actual = self.tail.head;
                        outcomes.push(Outcome::Conflict {
                            reply,
                            expected,
                            actual,
                            speculative: actual != group_start,
                        });
                        continue;
                    }
                    match append(batch, records, self.tail, &payloads) {
                        Ok((committed, hash)) => {
                            self.tail = Tail { head: Some(committed.last), hash };
                            appended = true;
                            outcomes.push(Outcome::Committed(reply, committed));
                        }
                        Err(e) => outcomes.push(Outcome::CommitRefused(reply, e)),
                    }
                }
                Request::Snapshot { sequence, bytes, reply } => {
                    let head = self.tail.head;
                    if sequence == 0 || head.is_none_or(|h| sequence > h) {
                        let err = JournalError::SnapshotOutOfRange { sequence, head };
                        outcomes.push(Outcome::Snapshot(reply, Err(err)));
                        continue;
                    }
                    batch.put_cf(
                        snapshots_cf,
                        frame::key(sequence),
                        frame::encode_snapshot(sequence, &bytes),
                    );
                    self.snapshots.insert(sequence);
                    while self.snapshots.len() > self.snapshots_to_keep {
                        if let Some(oldest) = self.snapshots.pop_first() {
                            batch.delete_cf(snapshots_cf, frame::key(oldest));
                        }
                    }
                    outcomes.push(Outcome::Snapshot(reply, Ok(())));
                }
            }
        }
        if appended {
            if let Some(head) = self.tail.head {
                batch.put_cf(meta, META_HEAD_KEY, frame::encode_head(head, &self.tail.hash));
            }
        }
        Ok(outcomes)
    }
}

/// Frames `payloads` after `tail` into `batch`. Nothing is added unless every record frames.
fn append(
    batch: &mut WriteBatch,
    records: &rocksdb::ColumnFamily,
    tail: Tail,
    payloads: &[Vec<u8>],
) -> Result<(Committed, Hash), JournalError> {
    let first = match tail.head {
        None => 1,
        Some(head) => head
            .checked_add(1)
            .ok_or_else(|| JournalError::Storage { reason: "journal sequence space exhausted".to_owned() })?,
    };
    let count = u64::try_from(payloads.len()).unwrap_or(u64::MAX);
    let last = count.checked_sub(1).and_then(|n| first.checked_add(n)).ok_or(JournalError::EmptyBatch)?;
    let mut frames = Vec::with_capacity(payloads.len());
    let mut hash = tail.hash;
    for (sequence, payload) in (first..=last).zip(payloads) {
        let (bytes, next) = frame::encode_record(sequence, &hash, payload)?;
        frames.push((sequence, bytes));
        hash = next;
    }
    for (sequence, bytes) in frames {
        batch.put_cf(records, frame::key(sequence), bytes);
    }
    Ok((Committed { first, last }, hash))
}

/// Why a group's write failed.
struct Failed {
    /// The disk is full: RocksDB's ENOSPC.
    full: bool,
    reason: String,
}

impl Failed {
    /// The error of a request the failed write carried: it may or may not be on disk.
    fn unknown(&self) -> JournalError {
        self.error(|reason| JournalError::Ambiguous { reason })
    }

    /// The error of a request that was not in the write but depended on it.
    fn refused(&self) -> JournalError {
        self.error(|reason| JournalError::Storage { reason })
    }

    /// `StorageFull` when the disk is full, whatever the request; `otherwise` else.
    fn error(&self, otherwise: fn(String) -> JournalError) -> JournalError {
        let reason = self.reason.clone();
        if self.full {
            JournalError::StorageFull { reason }
        } else {
            otherwise(reason)
        }
    }
}

fn refuse(group: &mut Vec<Request>, e: &JournalError) {
    for request in group.drain(..) {
        match request {
            Request::Commit { reply, .. } => drop(reply.send(Err(e.clone()))),
            Request::Snapshot { reply, .. } => drop(reply.send(Err(e.clone()))),
        }
    }
}

fn reply(outcome: Outcome, failed: Option<&Failed>) {
    // A caller that stopped waiting drops its receiver; its outcome is still what happened.
    match outcome {
        Outcome::Committed(reply, committed) => {
            drop(reply.send(failed.map_or(Ok(committed), |f| Err(f.unknown()))));
        }
        Outcome::Conflict { reply, expected, actual, speculative } => {
            let result = match failed {
                Some(f) if speculative => Err(f.refused()),
                _ => Err(JournalError::Conflict { expected, actual }),
            };
            drop(reply.send(result));
        }
        Outcome::CommitRefused(reply, e) => drop(reply.send(Err(e))),
        Outcome::Snapshot(reply, result) => {
            let result = match (result, failed) {
                (Ok(()), Some(f)) => Err(f.refused()),
                (result, _) => result,
            };
            drop(reply.send(result));
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::RocksJournalOptions;
    use reconf_core::{AuthorityId, Change, Fact, SessionId};

    fn payloads(n: u128) -> Vec<Vec<u8>> {
        let fact = Fact::new(Change::SessionClosed {
            session: SessionId::from_u128(n),
            authority: AuthorityId([3; 32]),
        });
        vec![frame::encode_fact(&fact).unwrap()]
    }

    type Reply = oneshot::Receiver<Result<Committed, JournalError>>;

    fn commit(group: &mut Vec<Request>, n: u128, expected: ExpectedHead) -> Reply {
        let (reply, rx) = oneshot::channel();
        group.push(Request::Commit { payloads: payloads(n), expected, reply });
        rx
    }

    /// Plans one group against a journal whose head is 1 and answers it as if its write
    /// had ended with `failed`. The group: a commit expecting an empty journal (refused by
    /// the durable head), a commit after 1 (accepted, records 2..), and a second commit
    /// after 1 (refused by the records of the one before it, which exist only if the write
    /// succeeds).
    fn answer_group(failed: Option<Failed>) -> [Result<Committed, JournalError>; 3] {
        let dir = tempfile::tempdir().unwrap();
        let options = RocksJournalOptions::default();
        let db = store::open_db(dir.path(), &options).unwrap();
        let slot = Arc::new(Slot::new(db, dir.path().to_path_buf(), options));
        let tail = store::load_tail(&slot.get().unwrap()).unwrap();
        let mut writer = Writer::new(slot, tail, Arc::default(), HeadSignal::new(0), 16, BTreeSet::new(), 2);
        // The durable head: one record.
        let mut group = Vec::new();
        let mut first = commit(&mut group, 1, ExpectedHead::Empty);
        writer.process(&mut group);
        assert_eq!(first.try_recv().unwrap().unwrap(), Committed { first: 1, last: 1 });

        let mut group = Vec::new();
        let mut stale = commit(&mut group, 2, ExpectedHead::Empty);
        let mut accepted = commit(&mut group, 2, ExpectedHead::after(1));
        let mut behind = commit(&mut group, 3, ExpectedHead::after(1));
        let db = writer.slot.get().unwrap();
        let outcomes = writer.plan(&db, &mut group, &mut WriteBatch::default()).unwrap();
        for outcome in outcomes {
            reply(outcome, failed.as_ref());
        }
        [stale.try_recv().unwrap(), accepted.try_recv().unwrap(), behind.try_recv().unwrap()]
    }

    #[test]
    fn a_group_that_lands_answers_each_request_against_the_head_before_it() {
        let [stale, accepted, behind] = answer_group(None);
        assert_eq!(stale, Err(JournalError::Conflict { expected: ExpectedHead::Empty, actual: Some(1) }));
        assert_eq!(accepted, Ok(Committed { first: 2, last: 2 }));
        assert_eq!(behind, Err(JournalError::Conflict { expected: ExpectedHead::At(1), actual: Some(2) }));
    }

    /// When the write fails, a conflict with the durable head still holds, but one with
    /// records of the same group does not: those records were never written, so that
    /// request is refused with the write's failure, never told of a head that does not
    /// exist.
    #[test]
    fn a_failed_group_refuses_what_depended_on_it_and_keeps_true_conflicts() {
        let failed = Failed { full: false, reason: "the test's write failed".to_owned() };
        let [stale, accepted, behind] = answer_group(Some(failed));
        assert_eq!(stale, Err(JournalError::Conflict { expected: ExpectedHead::Empty, actual: Some(1) }));
        assert!(matches!(accepted, Err(JournalError::Ambiguous { .. })), "{accepted:?}");
        assert!(matches!(behind, Err(JournalError::Storage { .. })), "{behind:?}");
        let full = Failed { full: true, reason: "no space".to_owned() };
        let [stale, accepted, behind] = answer_group(Some(full));
        assert!(matches!(stale, Err(JournalError::Conflict { .. })), "{stale:?}");
        assert!(matches!(accepted, Err(JournalError::StorageFull { .. })), "{accepted:?}");
        assert!(matches!(behind, Err(JournalError::StorageFull { .. })), "{behind:?}");
    }
}
