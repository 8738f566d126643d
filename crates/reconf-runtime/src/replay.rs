//! Reading the journal into a state: the one replay loop, used by recovery at open, by the
//! offline audit, and by the actor's catch-up after a conflict or a failed commit.
//!
//! It reads pages from a sequence on, checks that the records are contiguous (the one gap
//! check), and hands each page to the caller, which applies it however its context needs
//! (a plain state, or the published state and live owners under their locks).

use reconf_core::Fact;
use reconf_effects::JournalEffects;

use crate::error::{ManagerError, RecoveryError};

/// Records read per page.
pub(crate) const READ_PAGE: usize = 4096;

/// Reads every record from `from` to the journal's end and passes each page to `apply` as
/// (first sequence, facts); returns how many records were replayed. A gap is
/// [`RecoveryError::Gap`]; a read failure is [`ManagerError::Journal`]; an error from
/// `apply` stops the replay.
pub(crate) async fn replay(
    journal: &dyn JournalEffects,
    mut from: u64,
    mut apply: impl FnMut(u64, Vec<Fact>) -> Result<(), ManagerError>,
) -> Result<u64, ManagerError> {
    let mut replayed = 0;
    loop {
        let records = journal.read(from, READ_PAGE).await.map_err(ManagerError::Journal)?;
        if records.is_empty() {
            return Ok(replayed);
        }
        let mut facts = Vec::with_capacity(records.len());
        for (expected, record) in (from..).zip(records) {
            if record.sequence != expected {
                return Err(ManagerError::Recovery(RecoveryError::Gap { expected, found: record.sequence }));
            }
            facts.push(record.fact);
        }
        let count = facts.len() as u64;
        apply(from, facts)?;
        from += count;
        replayed += count;
        // A short page ends at the head as it was when read (the journal contract): asking
        // again would only cost a round trip to learn that.
        if count < READ_PAGE as u64 {
            return Ok(replayed);
        }
    }
}
