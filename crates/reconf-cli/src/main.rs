//! # reconf
//!
//! The `reconf` binary: a command-line front to the reconf libraries over an embedded
//! RocksDB journal (the data directory, `./reconf-data` by default).
//!
//! - `reconf simulate` runs the main job: a concurrent live-reconfiguration workload
//!   (plain delegations, live handoffs and deliberately invalid requests) and prints a
//!   summary with throughput, latency, journal size and the full coherence audit.
//! - `reconf status`, `bundles`, `link`, `open`, `delegate` inspect and change the state.
//! - `reconf verify` checks the journal (checksums, hash chain), replays it and audits
//!   coherence; `reconf journal dump` lists its facts.
//!
//! Authorities are given either as a 64-hex-digit id or as a label hashed with
//! [`reconf_runtime::AuthorityId::from_label`]; see [`ids`] for the exact rule.
//!
//! This crate only parses arguments, calls the libraries and prints. It must not contain
//! logic a library user would also need: such logic belongs in `reconf-core`,
//! `reconf-runtime` or `reconf-store-rocksdb`.
//!
//! Errors print one line, `error: ...`, on stderr and exit with status 1 (clap's usage
//! errors exit with 2). `RUST_LOG` enables `tracing` output on stderr (off by default).
#![forbid(unsafe_code)]

mod cli;
mod cmd;
mod data;
mod error;
mod ids;
mod output;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::EnvFilter;

use crate::cli::Cli;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    init_tracing();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return report(&error::CliError::Runtime(e)),
    };
    match runtime.block_on(cmd::run(cli)) {
        Ok(()) | Err(error::CliError::StdoutClosed) => ExitCode::SUCCESS,
        Err(e) => report(&e),
    }
}

/// Help and version go out as clap prints them; a bad command line is one `error:` line
/// (clap's first, without its usage block) and exit code 2, like every other error's one line.
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        e.exit();
    }
    let rendered = e.render().to_string();
    let first = rendered.lines().find(|l| !l.trim().is_empty()).unwrap_or("invalid command line");
    let first = first.strip_prefix("error: ").unwrap_or(first);
    output::note!("error: {first} (see --help)");
    ExitCode::from(2)
}

fn report(e: &error::CliError) -> ExitCode {
    output::note!("error: {e}");
    ExitCode::FAILURE
}

/// `RUST_LOG` selects what is logged (to stderr); nothing is by default, so that a failed
/// command prints exactly one line.
fn init_tracing() {
    let filter = EnvFilter::builder().with_default_directive(LevelFilter::OFF.into()).from_env_lossy();
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}
