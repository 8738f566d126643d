//! The data directory: opening its journal and a manager over it, and its size on disk.

use std::path::Path;

use reconf_runtime::{ManagerBuilder, ReconfigurationManager};
use reconf_runtime::{RocksJournal, RocksJournalOptions};

use crate::error::CliError;

/// What a command may do to the data directory.
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

/// Opens the journal in `dir` (created only with [`Access::Create`]).
pub(crate) fn open_journal(dir: &Path, access: Access) -> Result<RocksJournal, CliError> {
    let create = access == Access::Create;
    if !create && !dir.join("CURRENT").exists() {
        return Err(CliError::NoJournal { path: dir.to_path_buf() });
    }
    // Opening directly (rather than through `ManagerBuilder::rocksdb_journal`) keeps the
    // typed journal error, which names the corrupt sequence.
    Ok(RocksJournal::open(dir, RocksJournalOptions::default().create_if_missing(create))?)
}

/// Opens a manager over the journal in `dir`; `configure` may adjust the builder.
pub(crate) async fn open_manager(
    dir: &Path,
    access: Access,
    configure: impl FnOnce(ManagerBuilder) -> ManagerBuilder,
) -> Result<ReconfigurationManager, CliError> {
    let journal = open_journal(dir, access)?;
    let builder = ManagerBuilder::new().journal(journal);
    // Inspecting must write nothing, not even the manifests' registration.
    let builder = if access == Access::Inspect { builder.without_manifests() } else { builder };
    Ok(configure(builder).open().await?)
}

/// Runs `f` with a manager over `dir` and shuts the manager down afterwards, whatever `f`
/// returned, so the journal is closed before the process exits.
pub(crate) async fn with_manager<T>(
    dir: &Path,
    access: Access,
    f: impl AsyncFnOnce(&ReconfigurationManager) -> Result<T, CliError>,
) -> Result<T, CliError> {
    let manager = open_manager(dir, access, |b| b).await?;
    let result = f(&manager).await;
    let closed = manager.shutdown().await;
    let value = result?;
    closed?;
    Ok(value)
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
