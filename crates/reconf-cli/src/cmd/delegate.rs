//! `reconf delegate --session S --from A --to B --bundle X`.

use reconf_runtime::DelegationRequest;

use crate::cli::DelegateArgs;
use crate::data::{Access, Store};
use crate::error::CliError;
use crate::ids::{self, Authority};
use crate::output::say;

pub(crate) async fn run(dir: &Store, args: DelegateArgs) -> Result<(), CliError> {
    // Everything is parsed before the journal is opened: bad input touches nothing.
    let session = ids::session("--session", &args.session)?;
    let from = Authority::parse("--from", &args.from)?;
    let to = Authority::parse("--to", &args.to)?;
    let bundle = ids::bundle("--bundle", &args.bundle)?;
    let request = DelegationRequest::new(session, from.id, to.id, bundle);
    let outcome =
        dir.with_manager(Access::Update, async |m| Ok(m.delegate_session(request.clone()).await?)).await?;
    let r = &outcome.receipt;
    say!(
        "delegated session {} from {from} to {to} through {}: generation {}, journal sequence {}",
        r.session,
        r.bundle,
        r.generation,
        r.sequence
    )?;
    say!(
        "  {} holds {} native, {} delegated-in; {} holds {} native, {} delegated-in",
        from.id.short(),
        r.from_after.native,
        r.from_after.delegated_in,
        to.id.short(),
        r.to_after.native,
        r.to_after.delegated_in
    )?;
    Ok(())
}
