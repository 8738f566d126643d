//! `reconf bundles`: the registered bundles.

use serde::Serialize;

use crate::data::{Access, Store};
use crate::error::CliError;
use crate::output;
use crate::output::say;

#[derive(Debug, Serialize)]
struct Bundle {
    id: String,
    protocols: Vec<String>,
    exports: Vec<String>,
    imports: Vec<String>,
    /// The two bundles it was linked from, if it is a link.
    linked_from: Option<[String; 2]>,
}

pub(crate) async fn run(dir: &Store, json: bool) -> Result<(), CliError> {
    let bundles = dir
        .with_manager(Access::Inspect, async |m| {
            let links: std::collections::BTreeMap<_, _> = m.links().into_iter().collect();
            Ok(m.bundles()
                .into_iter()
                .map(|b| Bundle {
                    linked_from: links.get(&b.id).map(|l| [l.left.to_string(), l.right.to_string()]),
                    id: b.id.to_string(),
                    protocols: b.protocol_ids,
                    exports: b.exports.into_iter().collect(),
                    imports: b.imports.into_iter().collect(),
                })
                .collect::<Vec<_>>())
        })
        .await?;
    if json {
        return output::print_json(&bundles);
    }
    if bundles.is_empty() {
        say!("no bundles registered")?;
    }
    for b in &bundles {
        let origin =
            b.linked_from.as_ref().map_or_else(String::new, |[l, r]| format!("  (linked from {l} + {r})"));
        say!("{}{origin}", b.id)?;
        say!("  protocols  {}", b.protocols.join(", "))?;
        say!("  exports    {}", b.exports.join(", "))?;
        say!("  imports    {}", b.imports.join(", "))?;
    }
    Ok(())
}
