//! Blocking RocksDB access: opening, recovering the tail, range reads and snapshots.
//! Only ever called from the writer thread or a blocking task, never from async code.

use std::collections::BTreeSet;
use std::path::Path;

use reconf_effects::{Corruption, JournalError, JournalRecord, Sequence, StoredSnapshot};
use rocksdb::{
    ColumnFamily, ColumnFamilyDescriptor, DBCompressionType, Direction, IteratorMode, Options,
    SnapshotWithThreadMode, WriteBatch, WriteOptions, DB,
};

use crate::frame::{self, corrupt, metadata, Hash};
use crate::layout::{
    FORMAT_VERSION, GENESIS_HASH, META_CF, META_FORMAT_KEY, META_HEAD_KEY, RECORDS_CF, SNAPSHOTS_CF,
};
use crate::options::RocksJournalOptions;

pub(crate) type Snapshot<'a> = SnapshotWithThreadMode<'a, DB>;

pub(crate) fn storage(context: &str, e: impl std::fmt::Display) -> JournalError {
    JournalError::Storage { reason: format!("{context}: {e}") }
}

pub(crate) fn cf<'a>(db: &'a DB, name: &str) -> Result<&'a ColumnFamily, JournalError> {
    db.cf_handle(name).ok_or_else(|| storage("column family missing", name))
}

/// The committed end of the journal: the last sequence and its chain hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tail {
    pub(crate) head: Option<Sequence>,
    pub(crate) hash: Hash,
}

impl Tail {
    pub(crate) const EMPTY: Self = Self { head: None, hash: GENESIS_HASH };
}

/// Opens the database, creating it if asked, and checks its format version. Column
/// families this build does not know (a newer build's) are opened too, so that such a
/// journal is refused with [`JournalError::UnsupportedFormat`] rather than a RocksDB error.
pub(crate) fn open_db(path: &Path, options: &RocksJournalOptions) -> Result<DB, JournalError> {
    let mut db_opts = Options::default();
    db_opts.create_if_missing(options.create_if_missing);
    db_opts.create_missing_column_families(true);
    // RocksDB's own informational logs otherwise grow without bound next to the journal.
    db_opts.set_keep_log_file_num(4);

    let mut records_opts = Options::default();
    records_opts.set_compression_type(DBCompressionType::Lz4);

    let mut names: BTreeSet<String> = DB::list_cf(&db_opts, path).unwrap_or_default().into_iter().collect();
    for ours in [RECORDS_CF, META_CF, SNAPSHOTS_CF] {
        names.insert(ours.to_owned());
    }
    let descriptors = names.into_iter().map(|name| {
        let opts = if name == RECORDS_CF { records_opts.clone() } else { Options::default() };
        ColumnFamilyDescriptor::new(name, opts)
    });
    let db = DB::open_cf_descriptors(&db_opts, path, descriptors).map_err(|e| {
        // RocksDB takes an exclusive lock on the directory's LOCK file. Another process
        // holding it is reported as "IO error: While lock file: <dir>/LOCK: Resource
        // temporarily unavailable" (another handle in this process: "lock hold by current
        // process ... <dir>/LOCK"), which says nothing a person can act on.
        if e.kind() == rocksdb::ErrorKind::IOError && e.as_ref().contains("/LOCK") {
            JournalError::InUse { path: path.display().to_string() }
        } else {
            storage(&format!("opening {}", path.display()), e)
        }
    })?;
    check_format(&db)?;
    Ok(db)
}

fn check_format(db: &DB) -> Result<(), JournalError> {
    let meta = cf(db, META_CF)?;
    match db.get_cf(meta, META_FORMAT_KEY).map_err(|e| storage("reading the format version", e))? {
        Some(bytes) => {
            let found = frame::decode_format(&bytes).map_err(|reason| metadata(0, reason))?;
            if found > FORMAT_VERSION {
                return Err(JournalError::UnsupportedFormat { found, supported: FORMAT_VERSION });
            }
            if found == 0 {
                return Err(metadata(0, "format version 0 was never written"));
            }
            Ok(())
        }
        None => {
            // Only a journal that has never been written may lack its format version.
            let has_head =
                db.get_cf(meta, META_HEAD_KEY).map_err(|e| storage("reading the head", e))?.is_some();
            let first = db.iterator_cf(cf(db, RECORDS_CF)?, IteratorMode::Start).next();
            if has_head || first.is_some() {
                return Err(metadata(0, "records exist but the format version is missing"));
            }
            let mut batch = WriteBatch::default();
            batch.put_cf(meta, META_FORMAT_KEY, FORMAT_VERSION.to_be_bytes());
            db.write_opt(batch, &synced()).map_err(|e| storage("writing the format version", e))
        }
    }
}

/// Write options for everything the journal acknowledges.
pub(crate) fn synced() -> WriteOptions {
    let mut opts = WriteOptions::default();
    opts.set_sync(true);
    opts
}

/// The head as the metadata records it, in `snapshot`.
pub(crate) fn meta_head(db: &DB, snapshot: &Snapshot<'_>) -> Result<Option<(Sequence, Hash)>, JournalError> {
    let bytes =
        snapshot.get_cf(cf(db, META_CF)?, META_HEAD_KEY).map_err(|e| storage("reading the head", e))?;
    bytes.map(|b| frame::decode_head(&b)).transpose().map_err(|reason| metadata(0, reason))
}

/// Recovers the tail at open: the head from the metadata, cross-checked against the last
/// stored record (same sequence, intact frame, same chain hash). The two are written in
/// one batch, so any disagreement is corruption, never a torn write.
pub(crate) fn load_tail(db: &DB) -> Result<Tail, JournalError> {
    let snapshot = db.snapshot();
    let head = meta_head(db, &snapshot)?;
    let mut last = snapshot.iterator_cf(cf(db, RECORDS_CF)?, IteratorMode::End);
    let last = last.next().transpose().map_err(|e| storage("reading the last record", e))?;
    match (head, last) {
        (None, None) => Ok(Tail::EMPTY),
        (None, Some((key, _))) => {
            let at = frame::sequence_of_key(&key).unwrap_or(0);
            Err(metadata(at, "records exist but the head metadata is missing"))
        }
        (Some((head, _)), None) => {
            Err(metadata(head, format!("head metadata says {head} but there are no records")))
        }
        (Some((head, hash)), Some((key, value))) => {
            let Some(at) = frame::sequence_of_key(&key) else {
                return Err(corrupt(head, Corruption::BadFrame));
            };
            if at > head {
                return Err(metadata(at, format!("record {at} lies beyond the head {head}")));
            }
            if at < head {
                return Err(metadata(head, format!("head is {head} but the last record is {at}")));
            }
            let stored = frame::decode_record(at, &value)?;
            if stored.hash != hash {
                return Err(metadata(head, "the head record's chain hash disagrees with the metadata"));
            }
            Ok(Tail { head: Some(head), hash })
        }
    }
}

/// Walks records `from..=to` in `snapshot`, checking contiguity, frames and — when `prev`
/// is the hash of record `from - 1` — the chain. Each record is passed to `visit`. Returns
/// the chain hash of record `to`.
pub(crate) fn walk(
    db: &DB,
    snapshot: &Snapshot<'_>,
    from: Sequence,
    to: Sequence,
    mut prev: Option<Hash>,
    mut visit: impl FnMut(Sequence, &[u8]) -> Result<(), JournalError>,
) -> Result<Option<Hash>, JournalError> {
    let mut iter =
        snapshot.iterator_cf(cf(db, RECORDS_CF)?, IteratorMode::From(&frame::key(from), Direction::Forward));
    let mut expected = from;
    while expected <= to {
        let Some(item) = iter.next() else {
            return Err(metadata(
                expected,
                format!("record {expected} is missing and no later record exists"),
            ));
        };
        let (key, value) = item.map_err(|e| storage("reading records", e))?;
        let Some(at) = frame::sequence_of_key(&key) else {
            return Err(corrupt(expected, Corruption::BadFrame));
        };
        if at != expected {
            return Err(corrupt(expected, Corruption::Gap { found: at }));
        }
        let record = frame::decode_record(at, &value)?;
        if let Some(prev) = &prev {
            frame::check_chain(at, prev, &record)?;
        }
        visit(at, record.payload)?;
        prev = Some(record.hash);
        expected = at.saturating_add(1);
        if at == Sequence::MAX {
            break;
        }
    }
    Ok(prev)
}

/// Up to `limit` records from `from`, each checked: frame, checksum and chain against the
/// stored hash of its predecessor.
pub(crate) fn read_range(db: &DB, from: Sequence, limit: usize) -> Result<Vec<JournalRecord>, JournalError> {
    let from = from.max(1);
    let snapshot = db.snapshot();
    let Some((head, head_hash)) = meta_head(db, &snapshot)? else {
        return Ok(Vec::new());
    };
    if limit == 0 || from > head {
        return Ok(Vec::new());
    }
    let span = u64::try_from(limit - 1).unwrap_or(u64::MAX);
    let to = from.saturating_add(span).min(head);
    // The predecessor is read only for its stored hash (its frame is checked, its own chain
    // is `verify`'s business), so a read costs one record more than it returns.
    let (start, prev) = if from == 1 { (1, Some(GENESIS_HASH)) } else { (from - 1, None) };
    let mut records = Vec::with_capacity(usize::try_from(to - from + 1).unwrap_or(0));
    let last_hash = walk(db, &snapshot, start, to, prev, |sequence, payload| {
        if sequence >= from {
            records.push(JournalRecord { sequence, fact: frame::decode_fact(sequence, payload)? });
        }
        Ok(())
    })?;
    if to == head && last_hash != Some(head_hash) {
        return Err(metadata(head, "the head record's chain hash disagrees with the metadata"));
    }
    Ok(records)
}

/// The sequences of the stored snapshots, oldest first.
pub(crate) fn snapshot_sequences(db: &DB) -> Result<BTreeSet<Sequence>, JournalError> {
    let mut iter = db.raw_iterator_cf(cf(db, SNAPSHOTS_CF)?);
    iter.seek_to_first();
    let mut out = BTreeSet::new();
    while let Some(key) = iter.key() {
        let sequence =
            frame::sequence_of_key(key).ok_or_else(|| metadata(0, "a snapshot key is not a sequence"))?;
        out.insert(sequence);
        iter.next();
    }
    iter.status().map_err(|e| storage("listing snapshots", e))?;
    Ok(out)
}

/// The newest snapshot, checked.
pub(crate) fn latest_snapshot(db: &DB) -> Result<Option<StoredSnapshot>, JournalError> {
    let mut iter = db.iterator_cf(cf(db, SNAPSHOTS_CF)?, IteratorMode::End);
    let Some(item) = iter.next() else {
        return Ok(None);
    };
    let (key, value) = item.map_err(|e| storage("reading the latest snapshot", e))?;
    let sequence =
        frame::sequence_of_key(&key).ok_or_else(|| metadata(0, "a snapshot key is not a sequence"))?;
    let bytes = frame::decode_snapshot(sequence, &value)?;
    Ok(Some(StoredSnapshot { sequence, bytes }))
}
