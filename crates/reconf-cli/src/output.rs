//! Printing and formatting: stdout lines that never panic, sizes, facts as text and JSON.

use std::fmt;
use std::io::Write;

use reconf_runtime::{AuthorityId, CapabilityScope, Change, Fact};
use serde::Serialize;
use serde_json::{json, Value};

use crate::error::CliError;

/// Prints one line on stdout, like `println!`, but returns an error instead of panicking
/// when stdout is gone (a closed pipe ends the command quietly, see
/// [`CliError::StdoutClosed`]).
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::output::line(format_args!($($arg)*))
    };
}
pub(crate) use say;

/// Prints one line on stderr, like `eprintln!`, ignoring a closed stderr.
macro_rules! note {
    ($($arg:tt)*) => {
        $crate::output::note_line(format_args!($($arg)*))
    };
}
pub(crate) use note;

/// Maps a failed write to stdout.
pub(crate) fn stdout_error(source: std::io::Error) -> CliError {
    if source.kind() == std::io::ErrorKind::BrokenPipe {
        CliError::StdoutClosed
    } else {
        CliError::Io { context: "writing to stdout".to_owned(), source }
    }
}

/// Writes one line to `out`.
pub(crate) fn line_to(out: &mut impl Write, args: fmt::Arguments<'_>) -> Result<(), CliError> {
    out.write_fmt(args).and_then(|()| out.write_all(b"\n")).map_err(stdout_error)
}

/// Writes one line to stdout.
pub(crate) fn line(args: fmt::Arguments<'_>) -> Result<(), CliError> {
    line_to(&mut std::io::stdout().lock(), args)
}

/// Writes one line to stderr; there is nowhere left to report a failure.
pub(crate) fn note_line(args: fmt::Arguments<'_>) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_fmt(args).and_then(|()| err.write_all(b"\n"));
}

/// `1536` → `1.5 KiB`.
pub(crate) fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Prints `value` as one line of JSON on stdout.
pub(crate) fn print_json(value: &impl Serialize) -> Result<(), CliError> {
    let text = serde_json::to_string(value)?;
    say!("{text}")
}

fn scope_text(scope: &CapabilityScope) -> String {
    match scope {
        CapabilityScope::WholeSession => "*".to_owned(),
        CapabilityScope::Fragments(f) => f.iter().cloned().collect::<Vec<_>>().join(","),
    }
}

fn list(items: impl IntoIterator<Item = impl AsRef<str>>) -> String {
    let v: Vec<String> = items.into_iter().map(|s| s.as_ref().to_owned()).collect();
    format!("[{}]", v.join(", "))
}

fn short(a: &AuthorityId) -> String {
    a.short()
}

/// One fact as a readable line (without its sequence).
pub(crate) fn fact_text(fact: &Fact) -> String {
    let detail = match &fact.change {
        Change::BundleRegistered { bundle } => format!(
            "bundle={} protocols={} exports={} imports={}",
            bundle.id,
            list(&bundle.protocol_ids),
            list(&bundle.exports),
            list(&bundle.imports)
        ),
        Change::BundlesLinked { left, right, linked } => {
            format!("{left} + {right} -> {} protocols={}", linked.id, list(&linked.protocol_ids))
        }
        Change::SessionOpened { session, authority, bundle, generation } => format!(
            "session={session} authority={} bundle={} generation={generation}",
            short(authority),
            bundle.as_ref().map_or_else(|| "-".to_owned(), ToString::to_string)
        ),
        Change::SessionDelegated(d) => format!(
            "session={} from={} to={} bundle={} scope={} generation={} at_ms={}",
            d.session,
            short(&d.from),
            short(&d.to),
            d.bundle,
            scope_text(&d.scope),
            d.generation,
            d.at_ms
        ),
        Change::SessionClosed { session, authority } => {
            format!("session={session} authority={}", short(authority))
        }
        Change::Upgrade(u) => format!("bundle={} (--json shows the record)", u.bundle()),
        other => format!("{other:?}"),
    };
    format!("{:<18} {detail}", fact.kind())
}

fn scope_json(scope: &CapabilityScope) -> Value {
    match scope {
        CapabilityScope::WholeSession => json!("*"),
        CapabilityScope::Fragments(f) => json!(f),
    }
}

/// A journal record as `journal dump --json` prints it.
#[derive(Debug, Serialize)]
pub(crate) struct RecordJson {
    sequence: u64,
    kind: &'static str,
    schema_version: u16,
    fact: Value,
}

/// One journal record for JSON output, ids as hex and UUID strings.
pub(crate) fn record_json(sequence: u64, fact: &Fact) -> Result<RecordJson, CliError> {
    let detail = match &fact.change {
        Change::BundleRegistered { bundle } => json!({
            "bundle": bundle.id,
            "protocols": bundle.protocol_ids,
            "exports": bundle.exports,
            "imports": bundle.imports,
        }),
        Change::BundlesLinked { left, right, linked } => json!({
            "left": left,
            "right": right,
            "linked": linked.id,
            "protocols": linked.protocol_ids,
        }),
        Change::SessionOpened { session, authority, bundle, generation } => json!({
            "session": session.to_string(),
            "authority": authority.to_string(),
            "bundle": bundle,
            "generation": generation,
        }),
        Change::SessionDelegated(d) => json!({
            "session": d.session.to_string(),
            "from": d.from.to_string(),
            "to": d.to.to_string(),
            "bundle": d.bundle,
            "context": d.context.to_string(),
            "scope": scope_json(&d.scope),
            "generation": d.generation,
            "at_ms": d.at_ms,
        }),
        Change::SessionClosed { session, authority } => json!({
            "session": session.to_string(),
            "authority": authority.to_string(),
        }),
        Change::Upgrade(u) => json!({ "bundle": u.bundle(), "upgrade": serde_json::to_value(u)? }),
        other => serde_json::to_value(other)?,
    };
    Ok(RecordJson { sequence, kind: fact.kind(), schema_version: fact.schema_version, fact: detail })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_readable() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(3 * 1024 * 1024), "3.0 MiB");
    }
}
