//! Following a journal as other writers extend it: the head signal a backend publishes to,
//! and the [`Tail`] reader built on [`JournalEffects::wait_for_head`].
//!
//! Tailing is split in two on purpose. A backend only has to say *that* the head moved
//! (`wait_for_head`); the records themselves are always fetched with `read`, the one path
//! that checks frames and chains. So a backend's notification may be lossy, late or
//! duplicated (an etcd watch that reconnects, is compacted, or replays an event) without
//! a record ever being delivered twice or skipped: the [`Tail`] keeps the next sequence
//! itself and only moves it past records it has handed out.

use std::sync::Arc;

use tokio::sync::watch;

use crate::journal::{Corruption, JournalEffects, JournalError, JournalRecord, Sequence};

/// The head a backend has published, for [`JournalEffects::wait_for_head`]. Cheap to
/// clone (clones share one signal); publishing never blocks and never fails, whether or
/// not anyone waits.
///
/// ```
/// use reconf_effects::HeadSignal;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let signal = HeadSignal::new(0);
/// let waiter = signal.clone();
/// let wait = tokio::spawn(async move { waiter.wait_past(2).await });
/// signal.publish(2); // not past 2: the waiter keeps waiting
/// signal.publish(5);
/// assert_eq!(wait.await.unwrap(), 5);
/// signal.publish(3); // a head never goes back
/// assert_eq!(signal.current(), 5);
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct HeadSignal {
    sender: Arc<watch::Sender<Sequence>>,
}

impl HeadSignal {
    /// A signal whose head is `head` (0: empty).
    pub fn new(head: Sequence) -> Self {
        Self { sender: Arc::new(watch::Sender::new(head)) }
    }

    /// Publishes `head`; a value at or below the current one is ignored, so callers that
    /// race (a commit's reply and a watch event) can publish in any order.
    pub fn publish(&self, head: Sequence) {
        self.sender.send_if_modified(|current| {
            let moved = head > *current;
            if moved {
                *current = head;
            }
            moved
        });
    }

    /// The highest head published so far.
    pub fn current(&self) -> Sequence {
        *self.sender.borrow()
    }

    /// Waits until the published head is past `after`; returns it.
    pub async fn wait_past(&self, after: Sequence) -> Sequence {
        let mut rx = self.sender.subscribe();
        let seen = match rx.wait_for(|head| *head > after).await {
            Ok(head) => *head,
            // The sender lives in `self`, so it cannot be gone while we wait; answer with
            // what it last said rather than panic.
            Err(_) => self.current(),
        };
        seen
    }
}

/// Delivers every record of a journal from a sequence on, once each and in order, waiting
/// for new ones when it has delivered everything.
///
/// A tail survives whatever the backend's notifications do (reconnects, compaction,
/// duplicates): it asks the journal for the records from the next undelivered sequence and
/// checks they are contiguous, so a record is never repeated or skipped. A gap in what the
/// journal returns is reported as [`JournalError::Corrupt`] with [`Corruption::Gap`].
///
/// ```
/// use reconf_core::{AuthorityId, Change, Fact, SessionId};
/// use reconf_effects::{ExpectedHead, JournalEffects, MemoryJournal, Tail};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), reconf_effects::JournalError> {
/// let journal = MemoryJournal::new();
/// let fact = |n| Fact::new(Change::SessionClosed { session: SessionId::from_u128(n), authority: AuthorityId::from_label("a") });
/// journal.commit(vec![fact(1), fact(2)], ExpectedHead::Any).await?;
///
/// let mut tail = Tail::new(journal.clone(), 1);
/// assert_eq!(tail.next(10).await?.len(), 2);
///
/// // Nothing new yet: `next` waits for the next commit.
/// let writer = journal.clone();
/// tokio::spawn(async move { writer.commit(vec![fact(3)], ExpectedHead::Any).await });
/// let records = tail.next(10).await?;
/// assert_eq!((records[0].sequence, tail.next_sequence()), (3, 4));
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Tail<J> {
    journal: J,
    next: Sequence,
}

impl<J: JournalEffects> Tail<J> {
    /// A tail that delivers the records of `journal` from sequence `from` on (0 and 1 both
    /// mean the first record).
    pub fn new(journal: J, from: Sequence) -> Self {
        Self { journal, next: from.max(1) }
    }

    /// The sequence the next delivered record will have.
    pub fn next_sequence(&self) -> Sequence {
        self.next
    }

    /// The journal being followed.
    pub fn journal(&self) -> &J {
        &self.journal
    }

    /// Up to `limit` (at least 1) records from the next undelivered sequence on, waiting
    /// until there is at least one.
    ///
    /// # Errors
    /// The journal's read or wait error (the tail is unchanged and may be asked again), or
    /// [`JournalError::Corrupt`] when the journal skips a sequence.
    pub async fn next(&mut self, limit: usize) -> Result<Vec<JournalRecord>, JournalError> {
        loop {
            let records = self.journal.read(self.next, limit.max(1)).await?;
            if records.is_empty() {
                self.journal.wait_for_head(self.next - 1).await?;
                continue;
            }
            for (expected, record) in (self.next..).zip(&records) {
                if record.sequence != expected {
                    return Err(JournalError::Corrupt {
                        sequence: expected,
                        corruption: Corruption::Gap { found: record.sequence },
                    });
                }
            }
            self.next += records.len() as u64;
            return Ok(records);
        }
    }
}
