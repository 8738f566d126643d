//! `reconf journal dump [--from N] [--limit K] [--json]`.

use std::io::{BufWriter, Write};

use reconf_runtime::crates::effects::JournalRecord;
use reconf_runtime::{JournalEffects, JournalError};

use crate::cli::DumpArgs;
use crate::data::{Access, Store};
use crate::error::CliError;
use crate::output::{self, line_to, stdout_error};

/// Records read per page.
const PAGE: usize = 4096;

/// Lists records in order: text (`sequence kind details`, authorities as short ids) or
/// JSON Lines (one object per record, ids in full).
pub(crate) async fn dump(dir: &Store, args: DumpArgs) -> Result<(), CliError> {
    let journal = dir.open_journal(Access::Inspect).await?;
    let listed = list(journal.effects(), &args).await;
    let closed = journal.close().await;
    listed?;
    closed?;
    Ok(())
}

async fn list(journal: &dyn JournalEffects, args: &DumpArgs) -> Result<(), CliError> {
    let mut out = BufWriter::new(std::io::stdout().lock());
    let mut from = args.from.max(1);
    let mut left = args.limit.unwrap_or(usize::MAX);
    while left > 0 {
        let page = match journal.read(from, left.min(PAGE)).await {
            Ok(page) => page,
            // Forensics needs the records around the damage: print the good ones before the
            // bad record, then report it (and exit non-zero).
            Err(e @ JournalError::Corrupt { sequence, .. }) if sequence > from => {
                let good = journal.read(from, usize::try_from(sequence - from).unwrap_or(usize::MAX)).await?;
                print(&mut out, &good, args.json)?;
                out.flush().map_err(stdout_error)?;
                return Err(e.into());
            }
            Err(e) => {
                out.flush().map_err(stdout_error)?;
                return Err(e.into());
            }
        };
        let Some(last) = page.last() else { break };
        from = last.sequence + 1;
        left -= page.len();
        print(&mut out, &page, args.json)?;
    }
    out.flush().map_err(stdout_error)
}

fn print(out: &mut impl Write, records: &[JournalRecord], json: bool) -> Result<(), CliError> {
    for r in records {
        if json {
            let value = serde_json::to_string(&output::record_json(r.sequence, &r.fact)?)?;
            line_to(out, format_args!("{value}"))?;
        } else {
            line_to(out, format_args!("{:>8}  {}", r.sequence, output::fact_text(&r.fact)))?;
        }
    }
    Ok(())
}
