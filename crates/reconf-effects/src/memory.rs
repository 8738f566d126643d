//! An in-memory journal: the reference implementation of the journal contract, for tests
//! and for deployments that do not need durability.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use reconf_core::Fact;

use crate::journal::{
    Committed, ExpectedHead, JournalEffects, JournalError, JournalRecord, Sequence, StoredSnapshot,
};
use crate::tail::HeadSignal;

/// A thread-safe journal held in memory. Clones share one log (a clone is a second handle,
/// not a copy; see [`fork`](Self::fork) for a copy).
///
/// Every operation takes one short lock, so a commit's expected-head check and its append
/// are a single atomic step and readers never see part of a batch.
#[derive(Clone)]
pub struct MemoryJournal {
    log: Arc<Mutex<Log>>,
    /// Published under the log's lock, so a waiter never sees a head the log lacks.
    heads: HeadSignal,
}

impl Default for MemoryJournal {
    fn default() -> Self {
        Self { log: Arc::default(), heads: HeadSignal::new(0) }
    }
}

#[derive(Debug, Clone, Default)]
struct Log {
    facts: Facts,
    /// Only the highest-sequence snapshot is observable, so only that one is kept.
    snapshot: Option<StoredSnapshot>,
}

impl Log {
    fn head(&self) -> Option<Sequence> {
        // usize never exceeds u64 on supported targets.
        let len = self.facts.len();
        (len > 0).then_some(len as u64)
    }
}

/// Facts per chunk of the log (about 11 MB of facts).
const CHUNK: usize = 1 << 16;

/// The facts in order: the fact at index `i` has sequence `i + 1`, which makes gaps
/// unrepresentable. Held in fixed-size chunks rather than one vector, so growing never
/// copies what is already there: one doubling of a single vector at a million facts moves
/// about 170 MB while every reader and writer waits on the lock. Every chunk but the last
/// is full.
#[derive(Debug, Clone, Default)]
struct Facts {
    chunks: Vec<Vec<Fact>>,
}

impl Facts {
    fn len(&self) -> usize {
        self.chunks.last().map_or(0, |last| (self.chunks.len() - 1) * CHUNK + last.len())
    }

    fn extend(&mut self, batch: Vec<Fact>) {
        for fact in batch {
            match self.chunks.last_mut() {
                Some(chunk) if chunk.len() < CHUNK => chunk.push(fact),
                _ => {
                    let mut chunk = Vec::with_capacity(CHUNK);
                    chunk.push(fact);
                    self.chunks.push(chunk);
                }
            }
        }
    }

    /// The facts from index `start` on, in order.
    fn from(&self, start: usize) -> impl Iterator<Item = &Fact> {
        let (chunk, offset) = (start / CHUNK, start % CHUNK);
        let mut chunks = self.chunks.iter().skip(chunk);
        let first = chunks.next().map(|c| c.get(offset..).unwrap_or_default()).unwrap_or_default();
        first.iter().chain(chunks.flatten())
    }
}

impl MemoryJournal {
    /// An empty journal.
    pub fn new() -> Self {
        Self::default()
    }

    /// An independent copy of the journal as it is now: later writes to either are not seen
    /// by the other. Tests use it to model "what was durable when the process died".
    pub fn fork(&self) -> Self {
        let copy = self.lock().clone();
        let heads = HeadSignal::new(copy.head().unwrap_or(0));
        Self { log: Arc::new(Mutex::new(copy)), heads }
    }

    fn lock(&self) -> MutexGuard<'_, Log> {
        // Every mutation is checked first and then made in one step that cannot panic
        // part-way (an append of owned facts, an Option replace), so a poisoned lock
        // still guards a consistent log.
        self.log.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for MemoryJournal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let log = self.lock();
        f.debug_struct("MemoryJournal")
            .field("head", &log.head())
            .field("snapshot_at", &log.snapshot.as_ref().map(|s| s.sequence))
            .finish()
    }
}

#[async_trait]
impl JournalEffects for MemoryJournal {
    async fn commit(&self, batch: Vec<Fact>, expected: ExpectedHead) -> Result<Committed, JournalError> {
        if batch.is_empty() {
            return Err(JournalError::EmptyBatch);
        }
        let mut log = self.lock();
        let head = log.head();
        if !expected.matches(head) {
            return Err(JournalError::Conflict { expected, actual: head });
        }
        let first = head.map_or(1, |h| h + 1);
        let last = first + (batch.len() as u64 - 1);
        log.facts.extend(batch);
        self.heads.publish(last);
        Ok(Committed { first, last })
    }

    async fn read(&self, from: Sequence, limit: usize) -> Result<Vec<JournalRecord>, JournalError> {
        let log = self.lock();
        let first = from.max(1);
        let start = usize::try_from(first - 1).unwrap_or(usize::MAX);
        Ok(log
            .facts
            .from(start)
            .take(limit)
            .zip(first..)
            .map(|(fact, sequence)| JournalRecord { sequence, fact: fact.clone() })
            .collect())
    }

    async fn head(&self) -> Result<Option<Sequence>, JournalError> {
        Ok(self.lock().head())
    }

    async fn write_snapshot(&self, sequence: Sequence, bytes: Vec<u8>) -> Result<(), JournalError> {
        let mut log = self.lock();
        let head = log.head();
        if sequence == 0 || head.is_none_or(|h| sequence > h) {
            return Err(JournalError::SnapshotOutOfRange { sequence, head });
        }
        if log.snapshot.as_ref().is_none_or(|s| sequence >= s.sequence) {
            log.snapshot = Some(StoredSnapshot { sequence, bytes });
        }
        Ok(())
    }

    async fn latest_snapshot(&self) -> Result<Option<StoredSnapshot>, JournalError> {
        Ok(self.lock().snapshot.clone())
    }

    async fn wait_for_head(&self, after: Sequence) -> Result<Sequence, JournalError> {
        Ok(self.heads.wait_past(after).await)
    }
}

#[cfg(test)]
mod tests {
    use reconf_core::{AuthorityId, Change, SessionId};

    use super::*;

    fn fact(n: u128) -> Fact {
        Fact::new(Change::SessionClosed {
            session: SessionId::from_u128(n),
            authority: AuthorityId::from_label("m"),
        })
    }

    #[tokio::test]
    async fn clones_share_and_forks_diverge() {
        let a = MemoryJournal::new();
        let b = a.clone();
        a.commit(vec![fact(1)], ExpectedHead::Empty).await.unwrap();
        assert_eq!(b.head().await.unwrap(), Some(1));

        let fork = a.fork();
        b.commit(vec![fact(2)], ExpectedHead::At(1)).await.unwrap();
        fork.commit(vec![fact(3), fact(4)], ExpectedHead::At(1)).await.unwrap();
        assert_eq!(a.head().await.unwrap(), Some(2));
        assert_eq!(
            fork.read(2, 10).await.unwrap().iter().map(|r| &r.fact).collect::<Vec<_>>(),
            [&fact(3), &fact(4)]
        );
        assert_eq!(format!("{fork:?}"), "MemoryJournal { head: Some(3), snapshot_at: None }");
    }

    #[tokio::test]
    async fn reads_cross_chunk_boundaries_in_order() {
        let j = MemoryJournal::new();
        let n = 2 * CHUNK as u128 + 5;
        let facts: Vec<Fact> = (0..n).map(fact).collect();
        // Batches that straddle the chunk boundaries.
        for batch in facts.chunks(CHUNK / 3 + 7) {
            j.commit(batch.to_vec(), ExpectedHead::Any).await.unwrap();
        }
        assert_eq!(j.head().await.unwrap(), Some(n as u64));
        for from in [1, CHUNK as u64 - 1, CHUNK as u64, CHUNK as u64 + 1, 2 * CHUNK as u64 + 1, n as u64] {
            let read = j.read(from, 4).await.unwrap();
            let expected: Vec<_> = (from..).zip(&facts[from as usize - 1..]).take(4).collect();
            assert_eq!(read.len(), expected.len(), "from {from}");
            for (r, (seq, f)) in read.iter().zip(expected) {
                assert_eq!((r.sequence, &r.fact), (seq, f), "from {from}");
            }
        }
        assert!(j.read(n as u64 + 1, 4).await.unwrap().is_empty());
        assert_eq!(j.read(1, usize::MAX).await.unwrap().len(), n as usize);
    }

    #[tokio::test]
    async fn huge_from_and_limit_do_not_overflow() {
        let j = MemoryJournal::new();
        j.commit(vec![fact(1), fact(2)], ExpectedHead::Any).await.unwrap();
        assert!(j.read(u64::MAX, usize::MAX).await.unwrap().is_empty());
        assert_eq!(j.read(0, usize::MAX).await.unwrap().len(), 2);
    }
}
