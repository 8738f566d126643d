//! `reconf upgrade --bundle X --request FILE.json` and `reconf upgrade --bundle X --seed a,b`.

use reconf_runtime::upgrade::{Member, RuntimeUpgradeRequest, UpgradeSnapshot};
use reconf_runtime::OnHistory;

use crate::cli::UpgradeArgs;
use crate::data::{Access, Store};
use crate::error::CliError;
use crate::ids;
use crate::output::say;

/// The largest request file read: a real request is a few kilobytes; anything near this is
/// a mistake, refused before it is held in memory.
const MAX_REQUEST_BYTES: u64 = 16 << 20;

/// Reads a request file of at most [`MAX_REQUEST_BYTES`] (reading one byte past it, so a
/// file that only claims a small size, or a device, is bounded too).
fn read_request(path: &std::path::Path) -> Result<String, CliError> {
    use std::io::Read;
    let io = |source| CliError::Io { context: format!("reading {}", path.display()), source };
    let mut text = String::new();
    std::fs::File::open(path)
        .map_err(io)?
        .take(MAX_REQUEST_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(io)?;
    if text.len() as u64 > MAX_REQUEST_BYTES {
        return Err(CliError::InvalidArguments(format!(
            "--request: {} is larger than {} MiB; an upgrade request is a small JSON file",
            path.display(),
            MAX_REQUEST_BYTES >> 20
        )));
    }
    Ok(text)
}

pub(crate) async fn run(dir: &Store, args: UpgradeArgs) -> Result<(), CliError> {
    // Everything is parsed before the journal is opened: bad input touches nothing.
    let bundle = ids::bundle("--bundle", &args.bundle)?;
    let request = match &args.request {
        Some(path) => {
            let text = read_request(path)?;
            let r: RuntimeUpgradeRequest = serde_json::from_str(&text)
                .map_err(|source| CliError::UpgradeRequest { path: path.clone(), source })?;
            Some(r)
        }
        None => None,
    };
    let seed = match &args.seed {
        Some(names) => Some(
            names
                .iter()
                .map(|n| {
                    Member::new(n.trim()).map_err(|e| CliError::InvalidArguments(format!("--seed: {e}")))
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
        None => None,
    };
    let (force, expected_epoch) = (args.force, args.expected_epoch);
    let snapshot: UpgradeSnapshot = dir
        .with_manager(Access::Create, async |m| {
            if let Some(members) = seed.clone() {
                let on_history = if force { OnHistory::Replace } else { OnHistory::Refuse };
                return Ok(m.seed_membership(bundle.clone(), members, on_history).await?);
            }
            if let Some(r) = request.clone() {
                let x = m.execute_upgrade(bundle.clone(), r, expected_epoch).await?;
                let phases: Vec<String> = x.phase_sequence().iter().map(ToString::to_string).collect();
                say!("upgrade {} of {bundle}: {}", x.upgrade_id, phases.join(" -> "))?;
            }
            m.upgrade_snapshot(&bundle).ok_or_else(|| {
                CliError::InvalidArguments(format!("bundle {bundle} has no seeded membership"))
            })
        })
        .await?;
    if args.json {
        say!("{}", serde_json::to_string(&snapshot)?)?;
        return Ok(());
    }
    let members: Vec<&str> = snapshot.active_members.iter().map(Member::as_str).collect();
    say!("bundle {bundle}: epoch {}, members [{}]", snapshot.epoch, members.join(", "))?;
    say!(
        "  {} membership event(s), {} upgrade execution(s)",
        snapshot.history.len(),
        snapshot.executions.len()
    )?;
    Ok(())
}
