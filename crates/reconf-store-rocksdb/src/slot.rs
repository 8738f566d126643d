//! The open database, which the writer may close and reopen in place.
//!
//! RocksDB refuses every write after one failed write (a WAL append that hit a full disk
//! stops the database), and this build's C API offers no `Resume`. Reopening is what
//! clears that state, and it also recovers the true head from disk. Reads and the writer
//! therefore borrow the database from this slot per operation instead of each holding it
//! for the journal's life, so the writer can take it back, close it and put a new one in.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use reconf_effects::JournalError;
use rocksdb::DB;

use crate::options::RocksJournalOptions;
use crate::store::{self, storage};

/// How long a read waits for a reopen in progress, and the writer for reads still holding
/// the old database, before giving up with a storage error.
/// (The crate's unit tests wait a fifth of a second, so the giving up is tested quickly.)
const REOPEN_WAIT: Duration = if cfg!(test) { Duration::from_millis(200) } else { Duration::from_secs(10) };

/// Free space a reopen needs at least (a new MANIFEST and write-ahead log, and the flush of
/// what the old log held). Probed first, so a disk that is still full fails the write fast
/// and keeps the old database open for reads.
const REOPEN_ROOM: usize = 1 << 20;

/// The file the probe writes next to the database (RocksDB ignores names it did not make).
const PROBE_FILE: &str = "reconf-space-probe";

pub(crate) struct Slot {
    db: RwLock<Option<Arc<DB>>>,
    path: PathBuf,
    options: RocksJournalOptions,
}

impl Slot {
    pub(crate) fn new(db: DB, path: PathBuf, options: RocksJournalOptions) -> Self {
        Self { db: RwLock::new(Some(Arc::new(db))), path, options }
    }

    /// The open database; during a reopen, waits for it (blocking: call from the writer or
    /// a blocking task).
    pub(crate) fn get(&self) -> Result<Arc<DB>, JournalError> {
        let deadline = Instant::now() + REOPEN_WAIT;
        loop {
            if let Some(db) = self.db.read().unwrap_or_else(PoisonError::into_inner).as_ref() {
                return Ok(Arc::clone(db));
            }
            if Instant::now() >= deadline {
                return Err(storage(
                    "reading the journal",
                    "the database is being reopened after a failed write and is not back yet",
                ));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Closes the database and opens it again from disk. When the disk has no room yet, or
    /// reads keep holding the old database, it stays open as it was and the error says why.
    /// When the new open fails the slot stays empty; the next call tries again.
    pub(crate) fn reopen(&self) -> Result<Arc<DB>, JournalError> {
        probe_room(&self.path)?;
        let taken = self.db.write().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(mut old) = taken {
            // Every borrower drops its clone when its read ends; RocksDB's directory lock is
            // released only when the last one goes.
            let deadline = Instant::now() + REOPEN_WAIT;
            loop {
                match Arc::try_unwrap(old) {
                    Ok(db) => {
                        drop(db);
                        break;
                    }
                    Err(back) if Instant::now() >= deadline => {
                        *self.db.write().unwrap_or_else(PoisonError::into_inner) = Some(back);
                        return Err(storage("reopening the journal", "reads still hold the database"));
                    }
                    Err(back) => {
                        old = back;
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
            }
        }
        let db = Arc::new(store::open_db(&self.path, &self.options)?);
        *self.db.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::clone(&db));
        Ok(db)
    }
}

/// Writes and syncs [`REOPEN_ROOM`] bytes next to the database, then removes them.
fn probe_room(dir: &Path) -> Result<(), JournalError> {
    let path = dir.join(PROBE_FILE);
    let written = std::fs::File::create(&path).and_then(|mut f| {
        f.write_all(&vec![0u8; REOPEN_ROOM])?;
        f.sync_all()
    });
    // Removed whether or not it fit: a partial probe must not eat the space it measured.
    let removed = std::fs::remove_file(&path);
    match written {
        Err(e) if e.kind() == std::io::ErrorKind::StorageFull => Err(JournalError::StorageFull {
            reason: format!("{} has less than {REOPEN_ROOM} bytes free", dir.display()),
        }),
        Err(e) => Err(storage("probing free space", e)),
        Ok(()) => removed.map_err(|e| storage("removing the free-space probe", e)),
    }
}

/// Whether a RocksDB write failed because the disk is full. RocksDB reports ENOSPC as an
/// I/O error whose message carries the system's text for it.
pub(crate) fn is_no_space(e: &rocksdb::Error) -> bool {
    e.kind() == rocksdb::ErrorKind::IOError && e.as_ref().contains("No space left on device")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn slot(dir: &Path) -> Slot {
        let options = RocksJournalOptions::default();
        Slot::new(store::open_db(dir, &options).unwrap(), dir.to_path_buf(), options)
    }

    /// A reopen waits for reads still holding the old database, but not forever: it gives
    /// up with a storage error and puts the same database back, so reads go on. Once the
    /// reads are done, the reopen goes through.
    #[test]
    fn a_reopen_that_reads_keep_blocking_gives_up_and_keeps_the_database() {
        let dir = tempfile::tempdir().unwrap();
        let slot = slot(dir.path());
        let held = slot.get().unwrap();
        let started = Instant::now();
        let e = slot.reopen().unwrap_err();
        assert!(started.elapsed() >= REOPEN_WAIT);
        assert!(e.to_string().contains("reads still hold the database"), "{e}");
        let again = slot.get().unwrap();
        assert!(Arc::ptr_eq(&held, &again), "the same database is back");
        drop((held, again));
        let reopened = slot.reopen().unwrap();
        assert!(Arc::ptr_eq(&reopened, &slot.get().unwrap()));
    }
}
