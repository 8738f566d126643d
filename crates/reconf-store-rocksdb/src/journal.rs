//! [`RocksJournal`]: the handle async code holds.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use async_trait::async_trait;
use reconf_core::Fact;
use reconf_effects::{
    Committed, ExpectedHead, HeadSignal, JournalEffects, JournalError, JournalRecord, Sequence,
    StoredSnapshot,
};
use rocksdb::DB;
use tokio::sync::{mpsc, oneshot};

use crate::frame;
use crate::options::RocksJournalOptions;
use crate::slot::Slot;
use crate::store::{self, storage};
use crate::verify::{self, VerifyReport};
use crate::writer::{Request, Writer};

/// A durable, hash-chained journal in a RocksDB database.
///
/// Commits go to one writer thread that group-commits them (one `WriteBatch`, one synced
/// write per group); reads run on Tokio's blocking pool. Dropping the journal stops the
/// writer after its current group and waits for it, which releases the database; prefer
/// [`RocksJournal::close`] in async code, which waits off the async worker threads.
pub struct RocksJournal {
    slot: Arc<Slot>,
    path: PathBuf,
    head: Arc<AtomicU64>,
    signal: HeadSignal,
    tx: Option<mpsc::Sender<Request>>,
    writer: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for RocksJournal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksJournal")
            .field("path", &self.path)
            .field("head", &self.head.load(Ordering::Acquire))
            .field("open", &self.tx.is_some())
            .finish_non_exhaustive()
    }
}

impl RocksJournal {
    /// Opens (or, with `create_if_missing` in [`RocksJournalOptions`], creates) the journal at
    /// `path`.
    ///
    /// Recovers the head and its chain hash from the metadata and cross-checks them against
    /// the last record; with `verify_on_open` it checks every record.
    /// This call blocks (it opens the database); call it from a blocking context or accept
    /// a short stall.
    ///
    /// # Errors
    /// [`JournalError::UnsupportedFormat`] when a newer build wrote the journal,
    /// [`JournalError::Corrupt`] when the tail (or, with `verify_on_open`, any record) is
    /// corrupt, [`JournalError::Storage`] when RocksDB fails or the writer thread cannot be
    /// started.
    pub fn open(path: impl AsRef<Path>, options: RocksJournalOptions) -> Result<Self, JournalError> {
        let path = path.as_ref().to_path_buf();
        let db = store::open_db(&path, &options)?;
        let tail = store::load_tail(&db)?;
        if options.verify_on_open {
            verify::verify(&db)?;
        }
        let snapshots = store::snapshot_sequences(&db)?;
        let slot = Arc::new(Slot::new(db, path.clone(), options.clone()));
        let head = Arc::new(AtomicU64::new(tail.head.unwrap_or(0)));
        let signal = HeadSignal::new(tail.head.unwrap_or(0));
        let (tx, rx) = mpsc::channel(options.queue_capacity.get());
        let writer = Writer::new(
            Arc::clone(&slot),
            tail,
            Arc::clone(&head),
            signal.clone(),
            options.max_group.get(),
            snapshots,
            options.snapshots_to_keep.get(),
        );
        let writer = std::thread::Builder::new()
            .name("reconf-journal-writer".to_owned())
            .spawn(move || writer.run(rx))
            .map_err(|e| storage("starting the journal writer thread", e))?;
        tracing::info!(
            name: "reconf.journal.opened",
            path = %path.display(),
            head = ?tail.head,
            "journal opened"
        );
        Ok(Self { slot, path, head, signal, tx: Some(tx), writer: Some(writer) })
    }

    /// The directory of the database.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Walks the whole journal from sequence 1 to the head and checks every record: frame,
    /// format version, checksum, contiguity, hash chain, fact decoding, and agreement with
    /// the head metadata.
    ///
    /// # Errors
    /// The first problem found, as [`JournalError::Corrupt`] naming its sequence.
    pub async fn verify(&self) -> Result<VerifyReport, JournalError> {
        let result = self.blocking(verify::verify).await;
        if let Err(JournalError::Corrupt { sequence, corruption }) = &result {
            tracing::warn!(name: "reconf.journal.corrupt", sequence, corruption = %corruption, "journal verification failed");
        }
        result
    }

    /// One of RocksDB's named properties of the journal's database, for diagnostics: for
    /// example `rocksdb.dbstats` (whose "Cumulative WAL" line counts the write-ahead
    /// log's writes and syncs) or `rocksdb.estimate-live-data-size`. `None` when RocksDB
    /// has no property of that name.
    ///
    /// ```
    /// # fn main() -> Result<(), reconf_effects::JournalError> {
    /// use reconf_store_rocksdb::{RocksJournal, RocksJournalOptions};
    /// let dir = tempfile::tempdir().map_err(|e| reconf_effects::JournalError::Storage { reason: e.to_string() })?;
    /// let journal = RocksJournal::open(dir.path(), RocksJournalOptions::default())?;
    /// let stats = journal.property("rocksdb.dbstats")?.unwrap_or_default();
    /// assert!(stats.contains("Cumulative WAL"));
    /// assert_eq!(journal.property("no.such.property")?, None);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`JournalError::Storage`] when the database cannot be reached (a reopen after a
    /// failed write did not succeed) or RocksDB fails to read the property.
    pub fn property(&self, name: &str) -> Result<Option<String>, JournalError> {
        let db = self.slot.get()?;
        db.property_value(name).map_err(|e| storage(&format!("reading RocksDB property {name}"), e))
    }

    /// Stops the writer after the requests already sent and waits for it, off the async
    /// worker threads. The database is released when this returns (unless reads are still
    /// running on the blocking pool).
    ///
    /// # Errors
    /// [`JournalError::Storage`] when the writer thread had panicked.
    pub async fn close(mut self) -> Result<(), JournalError> {
        self.tx = None;
        let Some(writer) = self.writer.take() else {
            return Ok(());
        };
        let joined =
            run_blocking(move || writer.join().map_err(|_| storage("journal writer", "panicked"))).await;
        joined.and_then(|inner| inner)
    }

    async fn send<T>(&self, request: impl FnOnce(oneshot::Sender<T>) -> Request) -> Result<T, JournalError> {
        let tx = self.tx.as_ref().ok_or(JournalError::Closed)?;
        let (reply, rx) = oneshot::channel();
        tx.send(request(reply)).await.map_err(|_| JournalError::Closed)?;
        rx.await.map_err(|_| JournalError::Closed)
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&DB) -> Result<T, JournalError> + Send + 'static,
    ) -> Result<T, JournalError> {
        let slot = Arc::clone(&self.slot);
        run_blocking(move || f(&*slot.get()?)).await.and_then(|inner| inner)
    }
}

/// Runs `f` on Tokio's blocking pool, or on a fresh thread when no Tokio runtime is
/// current, so that RocksDB never blocks an async worker thread.
async fn run_blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, JournalError> {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => handle.spawn_blocking(f).await.map_err(|e| storage("journal read task", e)),
        Err(_) => {
            let (tx, rx) = oneshot::channel();
            std::thread::Builder::new()
                .name("reconf-journal-read".to_owned())
                .spawn(move || {
                    // The caller may have stopped waiting; the result then has no reader.
                    let _ = tx.send(f());
                })
                .map_err(|e| storage("starting a journal read thread", e))?;
            rx.await.map_err(|_| storage("journal read thread", "stopped without answering"))
        }
    }
}

impl Drop for RocksJournal {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(writer) = self.writer.take() {
            // The writer finishes at most one group once the channel closes; waiting for it
            // is what lets the same path be reopened right after the drop.
            drop(writer.join());
        }
    }
}

#[async_trait]
impl JournalEffects for RocksJournal {
    async fn commit(&self, batch: Vec<Fact>, expected: ExpectedHead) -> Result<Committed, JournalError> {
        if batch.is_empty() {
            return Err(JournalError::EmptyBatch);
        }
        // Encoding happens on the caller's task so the writer only frames and hashes.
        let payloads = batch.iter().map(frame::encode_fact).collect::<Result<Vec<_>, _>>()?;
        self.send(|reply| Request::Commit { payloads, expected, reply }).await?
    }

    async fn read(&self, from: Sequence, limit: usize) -> Result<Vec<JournalRecord>, JournalError> {
        if limit == 0 || from > self.head.load(Ordering::Acquire) {
            return Ok(Vec::new());
        }
        let result = self.blocking(move |db| store::read_range(db, from, limit)).await;
        if let Err(JournalError::Corrupt { sequence, corruption }) = &result {
            tracing::warn!(name: "reconf.journal.corrupt", sequence, corruption = %corruption, "corrupt record read");
        }
        result
    }

    async fn head(&self) -> Result<Option<Sequence>, JournalError> {
        if self.tx.is_none() {
            return Err(JournalError::Closed);
        }
        Ok(Some(self.head.load(Ordering::Acquire)).filter(|&h| h > 0))
    }

    async fn write_snapshot(&self, sequence: Sequence, bytes: Vec<u8>) -> Result<(), JournalError> {
        self.send(|reply| Request::Snapshot { sequence, bytes, reply }).await?
    }

    async fn latest_snapshot(&self) -> Result<Option<StoredSnapshot>, JournalError> {
        self.blocking(store::latest_snapshot).await
    }

    /// The database is locked to this process, so every commit goes through this handle's
    /// writer, which signals each new durable head.
    async fn wait_for_head(&self, after: Sequence) -> Result<Sequence, JournalError> {
        if self.tx.is_none() {
            return Err(JournalError::Closed);
        }
        Ok(self.signal.wait_past(after).await)
    }
}
