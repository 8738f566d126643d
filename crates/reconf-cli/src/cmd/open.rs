//! `reconf open --authority X [--session UUID] [--bundle B]`.

use reconf_runtime::SessionId;

use crate::cli::OpenArgs;
use crate::data::{Access, Store};
use crate::error::CliError;
use crate::ids::{self, Authority};
use crate::output::{note, say};

/// Prints the session id alone on stdout (so scripts can capture it) and what was done on
/// stderr.
pub(crate) async fn run(dir: &Store, args: OpenArgs) -> Result<(), CliError> {
    let authority = Authority::parse("--authority", &args.authority)?;
    let session = match &args.session {
        Some(s) => ids::session("--session", s)?,
        None => SessionId::new_random(),
    };
    let bundle = args.bundle.as_deref().map(|b| ids::bundle("--bundle", b)).transpose()?;
    let generation = dir
        .with_manager(Access::Create, async |m| {
            Ok(m.open_session(session, authority.id, bundle.clone()).await?)
        })
        .await?;
    say!("{session}")?;
    note!(
        "opened session {session} held by {authority} ({}), generation {generation}, bundle {}",
        authority.id,
        bundle.as_ref().map_or_else(|| "none".to_owned(), ToString::to_string)
    );
    Ok(())
}
