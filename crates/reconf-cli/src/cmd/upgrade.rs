//! `reconf upgrade --bundle X --request FILE.json` and `reconf upgrade --bundle X --seed a,b`.

use reconf_runtime::upgrade::{Member, RuntimeUpgradeRequest, UpgradeSnapshot};
use reconf_runtime::OnHistory;

use crate::cli::UpgradeArgs;
use crate::data::{Access, Store};
use crate::error::CliError;
use crate::ids;
use crate::output::say;

pub(crate) async fn run(dir: &Store, args: UpgradeArgs) -> Result<(), CliError> {
    // Everything is parsed before the journal is opened: bad input touches nothing.
    let bundle = ids::bundle("--bundle", &args.bundle)?;
    let request = match &args.request {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|source| CliError::Io { context: format!("reading {}", path.display()), source })?;
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
