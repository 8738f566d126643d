//! One module per command; [`run`] dispatches.

mod bundles;
mod delegate;
mod journal;
mod link;
mod open;
mod simulate;
mod status;
mod upgrade;
mod verify;

use clap::CommandFactory;

use crate::cli::{Cli, Command, JournalCommand};
use crate::error::CliError;

/// Runs the parsed command line.
pub(crate) async fn run(cli: Cli) -> Result<(), CliError> {
    let store = crate::data::Store::from_args(&cli.data_dir, &cli.etcd, &cli.etcd_prefix);
    let dir = &store;
    match cli.command {
        Command::Simulate(args) => simulate::run(dir, args).await,
        Command::Status(args) => status::run(dir, args.json).await,
        Command::Bundles(args) => bundles::run(dir, args.json).await,
        Command::Link(args) => link::run(dir, args).await,
        Command::Open(args) => open::run(dir, args).await,
        Command::Delegate(args) => delegate::run(dir, args).await,
        Command::Upgrade(args) => upgrade::run(dir, args).await,
        Command::Verify => verify::run(dir).await,
        Command::Journal(JournalCommand::Dump(args)) => journal::dump(dir, args).await,
        Command::Completions(args) => {
            let mut out = std::io::stdout().lock();
            clap_complete::generate(args.shell, &mut Cli::command(), "reconf", &mut out);
            Ok(())
        }
    }
}
