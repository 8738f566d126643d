//! Command-line arguments.
//!
//! Ids are taken as text and parsed by the commands (see [`crate::ids`]), so a malformed
//! id is reported as one `error:` line like every other bad input.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Live reconfiguration of choreographic protocol sessions, on an embedded RocksDB journal
/// (or one shared on etcd, with `--etcd`).
///
/// Authorities are given as a 64-hex-digit id or as a label (any other text, hashed into
/// an id; text of 16 or more hex digits only is refused as a mistyped id). Sessions are
/// UUIDs.
#[derive(Debug, Parser)]
#[command(name = "reconf", version, propagate_version = true)]
pub(crate) struct Cli {
    /// Directory of the RocksDB journal.
    #[arg(long, global = true, value_name = "DIR", default_value = "./reconf-data")]
    pub(crate) data_dir: PathBuf,

    /// Use the journal on this etcd cluster instead of a data directory: comma-separated
    /// endpoints (`host:port` or `http://host:port`). Every process given the same cluster
    /// and prefix shares one journal.
    #[arg(long, global = true, value_name = "ENDPOINTS", value_delimiter = ',')]
    pub(crate) etcd: Vec<String>,

    /// The key prefix of the etcd journal.
    #[arg(long, global = true, value_name = "PREFIX", default_value = "/reconf", requires = "etcd")]
    pub(crate) etcd_prefix: String,

    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the main job: open sessions, delegate them concurrently (with live handoffs and
    /// deliberately invalid requests mixed in), then print a summary and the coherence
    /// audit.
    Simulate(SimulateArgs),
    /// Show bundles, authorities, session counts by class, and the journal's head and size.
    Status(JsonFlag),
    /// List the registered bundles.
    Bundles(JsonFlag),
    /// Link two registered bundles into a new one.
    Link(LinkArgs),
    /// Open a native session held by an authority; prints the session id.
    Open(OpenArgs),
    /// Delegate a session from its active holder to another authority.
    Delegate(DelegateArgs),
    /// Seed a bundle's membership, or run a staged runtime upgrade of it from a JSON
    /// request (staged, admitted, committed — or failed / rolled back — each phase
    /// journaled).
    Upgrade(UpgradeArgs),
    /// Check the journal (frames, checksums, hash chain), replay it and audit coherence.
    Verify,
    /// Inspect the journal.
    #[command(subcommand)]
    Journal(JournalCommand),
    /// Print a shell completion script (e.g. `reconf completions bash > /etc/bash_completion.d/reconf`).
    Completions(CompletionsArgs),
}

#[derive(Debug, Args)]
pub(crate) struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub(crate) shell: clap_complete::Shell,
}

/// A `--json` switch.
#[derive(Debug, Args)]
pub(crate) struct JsonFlag {
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct SimulateArgs {
    /// Sessions to open in this run (fresh random ids, so reruns never collide).
    #[arg(long, default_value_t = 10_000)]
    pub(crate) sessions: usize,
    /// Authorities the sessions are spread over (labels `sim-000`, `sim-001`, ...).
    #[arg(long, default_value_t = 16)]
    pub(crate) authorities: usize,
    /// Delegation requests to send, invalid ones included.
    #[arg(long, default_value_t = 20_000)]
    pub(crate) delegations: usize,
    /// Concurrent callers; each owns a disjoint share of the sessions.
    #[arg(long, default_value_t = 64)]
    pub(crate) concurrency: usize,
    /// Managers in this process sharing the one journal (needs `--etcd`); the callers are
    /// dealt round-robin to them.
    #[arg(long, default_value_t = 1)]
    pub(crate) managers: usize,
    /// Fraction of requests that are deliberately invalid (wrong holder, self-delegation,
    /// unknown bundle, bad boundary) and must be rejected.
    #[arg(long, default_value_t = 0.05, value_name = "FRACTION")]
    pub(crate) invalid_fraction: f64,
    /// Fraction of requests that are live handoffs (owner attached, then handed over
    /// together with the delegation).
    #[arg(long, default_value_t = 0.10, value_name = "FRACTION")]
    pub(crate) handoff_fraction: f64,
    /// Seed of the workload's choices (random when omitted; printed in the summary).
    #[arg(long)]
    pub(crate) seed: Option<u64>,
    /// Print the summary as one JSON object (no progress bar).
    #[arg(long)]
    pub(crate) json: bool,
    /// Print a line on stdout the moment each change is acknowledged, before the summary:
    /// `ack open SESSION AUTHORITY` and `ack delegate SEQUENCE SESSION FROM TO GENERATION`
    /// (ids in full). For crash tests: what was printed must survive a kill -9.
    #[arg(long)]
    pub(crate) print_acks: bool,
    /// Serve the manager's metrics in the Prometheus text format on this address
    /// (`http://ADDR/metrics`, any path) while the run lasts, e.g. `127.0.0.1:9000`.
    #[arg(long, value_name = "ADDR")]
    pub(crate) metrics_listen: Option<std::net::SocketAddr>,
}

#[derive(Debug, Args)]
pub(crate) struct LinkArgs {
    /// The left bundle.
    pub(crate) left: String,
    /// The right bundle.
    pub(crate) right: String,
    /// The id of the linked bundle.
    #[arg(long = "as", value_name = "BUNDLE")]
    pub(crate) linked: String,
}

#[derive(Debug, Args)]
pub(crate) struct OpenArgs {
    /// The authority that will hold the session (64 hex digits, or a label).
    #[arg(long)]
    pub(crate) authority: String,
    /// The session id (a UUID; a fresh one when omitted).
    #[arg(long)]
    pub(crate) session: Option<String>,
    /// The registered bundle the session runs.
    #[arg(long)]
    pub(crate) bundle: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct DelegateArgs {
    /// The session (a UUID).
    #[arg(long)]
    pub(crate) session: String,
    /// Its active holder (64 hex digits, or a label).
    #[arg(long)]
    pub(crate) from: String,
    /// The receiving authority (64 hex digits, or a label).
    #[arg(long)]
    pub(crate) to: String,
    /// The registered bundle the delegation goes through.
    #[arg(long)]
    pub(crate) bundle: String,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("action").required(true).args(["request", "seed"])))]
pub(crate) struct UpgradeArgs {
    /// The bundle to upgrade.
    #[arg(long)]
    pub(crate) bundle: String,
    /// A runtime upgrade request as JSON (upgrade id, plan steps with member sets,
    /// compatibility contract, carried/invalidated ids).
    #[arg(long, value_name = "FILE.json")]
    pub(crate) request: Option<std::path::PathBuf>,
    /// Refuse the upgrade unless the bundle is at this membership epoch.
    #[arg(long, requires = "request")]
    pub(crate) expected_epoch: Option<u64>,
    /// Seed the bundle's membership instead (comma-separated member names).
    #[arg(long, value_delimiter = ',', num_args = 1..)]
    pub(crate) seed: Option<Vec<String>>,
    /// With --seed: replace a membership that already has history.
    #[arg(long, requires = "seed")]
    pub(crate) force: bool,
    /// Print the resulting snapshot as JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum JournalCommand {
    /// List the journal's facts in order.
    Dump(DumpArgs),
}

#[derive(Debug, Args)]
pub(crate) struct DumpArgs {
    /// The first sequence to list.
    #[arg(long, default_value_t = 1)]
    pub(crate) from: u64,
    /// At most this many records (all up to the head when omitted).
    #[arg(long)]
    pub(crate) limit: Option<usize>,
    /// One JSON object per line (JSON Lines) instead of text.
    #[arg(long)]
    pub(crate) json: bool,
}
