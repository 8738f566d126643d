//! The full-journal check behind [`crate::RocksJournal::verify`].

use reconf_effects::{JournalError, Sequence};
use rocksdb::{Direction, IteratorMode, DB};

use crate::frame::{self, metadata};
use crate::layout::{GENESIS_HASH, RECORDS_CF};
use crate::store::{self, cf, storage};

/// What a successful [`crate::RocksJournal::verify`] walked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifyReport {
    /// The head checked, or `None` for an empty journal.
    pub head: Option<Sequence>,
    /// How many records were checked (equal to the head: sequences start at 1).
    pub records: u64,
    /// The chain hash at the head ([`crate::layout::GENESIS_HASH`] when empty).
    pub chain_hash: [u8; 32],
}

/// Walks records `1..=head` of one consistent RocksDB snapshot, checking each frame, its
/// checksum, its chain link and its fact, then that the chain ends at the hash the
/// metadata names and that nothing is stored beyond the head.
pub(crate) fn verify(db: &DB) -> Result<VerifyReport, JournalError> {
    let snapshot = db.snapshot();
    let head = store::meta_head(db, &snapshot)?;
    let (head_seq, head_hash) = head.unwrap_or((0, GENESIS_HASH));
    let mut records = 0u64;
    let chain_hash = if head_seq == 0 {
        GENESIS_HASH
    } else {
        let last = store::walk(db, &snapshot, 1, head_seq, Some(GENESIS_HASH), |sequence, payload| {
            frame::decode_fact(sequence, payload)?;
            records += 1;
            Ok(())
        })?;
        let last = last.unwrap_or(GENESIS_HASH);
        if last != head_hash {
            return Err(metadata(head_seq, "the head record's chain hash disagrees with the metadata"));
        }
        last
    };
    if let Some(next) = head_seq.checked_add(1) {
        let mut beyond = snapshot
            .iterator_cf(cf(db, RECORDS_CF)?, IteratorMode::From(&frame::key(next), Direction::Forward));
        if let Some(item) = beyond.next() {
            let (key, _) = item.map_err(|e| storage("reading records beyond the head", e))?;
            let at = frame::sequence_of_key(&key).unwrap_or(next);
            return Err(metadata(at, format!("record {at} lies beyond the head {head_seq}")));
        }
    }
    Ok(VerifyReport { head: head.map(|(s, _)| s), records, chain_hash })
}
