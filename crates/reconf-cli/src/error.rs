//! The CLI's errors. Each prints as one line after `error: `.

use std::path::PathBuf;

use reconf_runtime::IdParseError;
use reconf_runtime::JournalError;
use reconf_runtime::ManagerError;
use reconf_runtime::RegistryError;

/// Everything a command can fail with.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    /// A malformed id on the command line.
    #[error("{flag}: {source}")]
    InvalidId {
        /// The argument, e.g. `--session`.
        flag: &'static str,
        /// Why it did not parse.
        source: IdParseError,
    },
    /// An authority argument that is neither a 64-hex-digit id nor an acceptable label.
    #[error("{flag}: {reason}")]
    InvalidAuthority {
        /// The argument.
        flag: &'static str,
        /// Why.
        reason: String,
    },
    /// Arguments that make no sense together.
    #[error("{0}")]
    InvalidArguments(String),
    /// A read-only command on a directory without a journal.
    #[error("no journal at {location}: run `reconf simulate` or `reconf open` first, or pass --data-dir or --etcd")]
    NoJournal {
        /// The data directory, or the etcd endpoints and prefix.
        location: String,
    },
    /// The manager refused or failed.
    #[error(transparent)]
    Manager(#[from] ManagerError),
    /// The journal refused or failed (corruption names its sequence).
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// The linked manifests are unusable.
    #[error("manifest registry: {0}")]
    Registry(#[from] RegistryError),
    /// The coherence audit found violations.
    #[error("coherence audit found {count} violation(s); first: {first}")]
    Incoherent {
        /// How many.
        count: usize,
        /// The first, in the audit's order.
        first: String,
    },
    /// The simulation saw outcomes it did not expect (an invalid request accepted, a valid
    /// one rejected) or an incoherent state.
    #[error("simulation failed: {0}")]
    Simulation(String),
    /// A filesystem operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The metrics exporter could not start (the address is taken, or not ours).
    #[error("--metrics-listen {addr}: {reason}")]
    MetricsListen {
        /// The address asked for.
        addr: std::net::SocketAddr,
        /// The exporter's message.
        reason: String,
    },
    /// Stdout was closed (e.g. `reconf journal dump | head`): the command stops quietly.
    #[error("stdout closed")]
    StdoutClosed,
    /// JSON output failed.
    #[error("writing JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// An upgrade request file that is not a valid request.
    #[error("{}: not a valid upgrade request: {source}", path.display())]
    UpgradeRequest {
        /// The file.
        path: PathBuf,
        /// Why it did not parse.
        source: serde_json::Error,
    },
    /// The async runtime could not start.
    #[error("starting the async runtime: {0}")]
    Runtime(std::io::Error),
}
