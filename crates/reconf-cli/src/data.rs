//! Where the journal is (a RocksDB data directory, or an etcd cluster and key prefix):
//! opening it and a manager over it, and its size.

use std::path::{Path, PathBuf};

use reconf_runtime::crates::effects::JournalEffects;
use reconf_runtime::crates::store_etcd::{EtcdJournal, EtcdJournalOptions};
use reconf_runtime::{ManagerBuilder, ReconfigurationManager};
use reconf_runtime::{RocksJournal, RocksJournalOptions};

use crate::error::CliError;

/// What a command may do to the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Inspection only: the journal must exist, and nothing is registered at open.
    Inspect,
    /// Changes to an existing journal (the linked manifests are registered at open, if a
    /// journal written before them lacks them).
    Update,
    /// Changes, creating the journal if missing.
    Create,
}

/// Where the journal lives.
#[derive(Debug, Clone)]
pub(crate) enum Store {
    /// The embedded RocksDB journal in this directory (one process at a time).
    Rocks(PathBuf),
    /// The shared journal on etcd (any number of processes).
    Etcd(EtcdJournalOptions),
}

/// An open journal of either kind.
pub(crate) enum Journal {
    Rocks(RocksJournal),
    // The etcd client is kilobytes; the journal is opened once per command.
    Etcd(Box<EtcdJournal>),
}

/// What a journal's full check found.
pub(crate) struct Verified {
    pub(crate) head: Option<u64>,
    pub(crate) records: u64,
    pub(crate) chain_hash: [u8; 32],
}

impl Journal {
    pub(crate) fn effects(&self) -> &dyn JournalEffects {
        match self {
            Journal::Rocks(j) => j,
            Journal::Etcd(j) => j.as_ref(),
        }
    }

    /// Checks every record (frames, checksums, contiguity, hash chain, head).
    pub(crate) async fn verify(&self) -> Result<Verified, CliError> {
        Ok(match self {
            Journal::Rocks(j) => {
                let r = j.verify().await?;
                Verified { head: r.head, records: r.records, chain_hash: r.chain_hash }
            }
            Journal::Etcd(j) => {
                let r = j.verify().await?;
                Verified { head: r.head, records: r.records, chain_hash: r.chain_hash }
            }
        })
    }

    /// Closes it (for RocksDB: waits for the writer, releasing the directory).
    pub(crate) async fn close(self) -> Result<(), CliError> {
        match self {
            Journal::Rocks(j) => Ok(j.close().await?),
            Journal::Etcd(j) => {
                drop(j);
                Ok(())
            }
        }
    }
}

impl Store {
    /// From the command line: `--etcd` wins over `--data-dir`.
    pub(crate) fn from_args(data_dir: &Path, etcd: &[String], prefix: &str) -> Self {
        if etcd.is_empty() {
            return Store::Rocks(data_dir.to_path_buf());
        }
        let endpoints =
            etcd.iter().map(|e| if e.contains("://") { e.clone() } else { format!("http://{e}") });
        Store::Etcd(EtcdJournalOptions::new(endpoints).prefix(prefix))
    }

    /// Where, for people.
    pub(crate) fn describe(&self) -> String {
        match self {
            Store::Rocks(dir) => dir.display().to_string(),
            Store::Etcd(o) => format!("etcd {} under {}", o.endpoints().join(","), o.key_prefix()),
        }
    }

    /// Whether the store can serve several managers at once.
    pub(crate) fn is_shared(&self) -> bool {
        matches!(self, Store::Etcd(_))
    }

    /// Opens the journal (created only with [`Access::Create`]).
    pub(crate) async fn open_journal(&self, access: Access) -> Result<Journal, CliError> {
        match self {
            Store::Rocks(dir) => {
                let create = access == Access::Create;
                if !create && !dir.join("CURRENT").exists() {
                    return Err(CliError::NoJournal { location: dir.display().to_string() });
                }
                // Opening directly (rather than through `ManagerBuilder::rocksdb_journal`)
                // keeps the typed journal error, which names the corrupt sequence.
                Ok(Journal::Rocks(RocksJournal::open(
                    dir,
                    RocksJournalOptions::default().create_if_missing(create),
                )?))
            }
            Store::Etcd(options) => {
                let journal = EtcdJournal::connect(options.clone()).await?;
                if access != Access::Create && journal.head().await?.is_none() {
                    return Err(CliError::NoJournal { location: self.describe() });
                }
                Ok(Journal::Etcd(Box::new(journal)))
            }
        }
    }

    /// Opens a manager over the journal; `configure` may adjust the builder.
    pub(crate) async fn open_manager(
        &self,
        access: Access,
        configure: impl FnOnce(ManagerBuilder) -> ManagerBuilder,
    ) -> Result<ReconfigurationManager, CliError> {
        let builder = match self.open_journal(access).await? {
            Journal::Rocks(j) => ManagerBuilder::new().journal(j),
            Journal::Etcd(j) => ManagerBuilder::new().journal(*j),
        };
        // Inspecting must write nothing, not even the manifests' registration.
        let builder = if access == Access::Inspect { builder.without_manifests() } else { builder };
        let manager = configure(builder).open().await?;
        if access == Access::Inspect && self.is_shared() {
            // Inspect what every manager has written, not what this one happened to read.
            manager.sync().await?;
        }
        Ok(manager)
    }

    /// Runs `f` with a manager and shuts it down afterwards, whatever `f` returned, so the
    /// journal is closed before the process exits.
    pub(crate) async fn with_manager<T>(
        &self,
        access: Access,
        f: impl AsyncFnOnce(&ReconfigurationManager) -> Result<T, CliError>,
    ) -> Result<T, CliError> {
        let manager = self.open_manager(access, |b| b).await?;
        let result = f(&manager).await;
        let closed = manager.shutdown().await;
        let value = result?;
        closed?;
        Ok(value)
    }

    /// Bytes the journal occupies: the data directory's files, or the etcd member's
    /// database.
    pub(crate) async fn size_bytes(&self) -> Result<u64, CliError> {
        match self {
            Store::Rocks(dir) => dir_size(dir),
            Store::Etcd(options) => Ok(EtcdJournal::connect(options.clone()).await?.store_bytes().await?),
        }
    }
}

/// Bytes of every file under `dir` (the journal's size on disk).
pub(crate) fn dir_size(dir: &Path) -> Result<u64, CliError> {
    let io = |source| CliError::Io { context: format!("measuring {}", dir.display()), source };
    let mut total = 0;
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let meta = entry.metadata().map_err(io)?;
        total += if meta.is_dir() { dir_size(&entry.path())? } else { meta.len() };
    }
    Ok(total)
}
