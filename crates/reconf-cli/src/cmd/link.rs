//! `reconf link A B --as C`.

use crate::cli::LinkArgs;
use crate::data::{Access, Store};
use crate::error::CliError;
use crate::ids;
use crate::output::say;

pub(crate) async fn run(dir: &Store, args: LinkArgs) -> Result<(), CliError> {
    let left = ids::bundle("LEFT", &args.left)?;
    let right = ids::bundle("RIGHT", &args.right)?;
    let linked = ids::bundle("--as", &args.linked)?;
    let bundle = dir
        .with_manager(Access::Create, async |m| {
            Ok(m.link_bundles(left.clone(), right.clone(), linked.clone()).await?)
        })
        .await?;
    say!(
        "linked {left} + {right} as {}: protocols [{}], exports [{}], imports [{}]",
        bundle.id,
        bundle.protocol_ids.join(", "),
        bundle.exports.iter().cloned().collect::<Vec<_>>().join(", "),
        bundle.imports.iter().cloned().collect::<Vec<_>>().join(", "),
    )?;
    Ok(())
}
