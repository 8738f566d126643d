//! # xtask
//!
//! Project automation, run as `cargo xtask <task>` (the alias is in `.cargo/config.toml`):
//!
//! - `cargo xtask codegen` parses and validates `crates/reconf-manifests/protocols/*.choreo`
//!   and writes the manifests they describe to `crates/reconf-manifests/src/generated/`,
//!   formatted with rustfmt; it removes generated files no spec produces any more.
//! - `cargo xtask codegen --check` writes nothing and exits non-zero, naming each stale,
//!   missing or extra file, when the committed code differs from what the specs generate.
//!
//! The parsing and generating is `reconf_manifests::codegen`; this binary only reads, formats
//! and writes files. It must not be a dependency of anything: it is a developer tool, and
//! depending on it would make the generator part of a library's build.
#![forbid(unsafe_code)]

mod codegen;
mod rustfmt;

use std::env;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Errors are reported, not matched on, so a boxed error with its context in the message is
/// enough here.
type Result<T, E = Box<dyn std::error::Error>> = std::result::Result<T, E>;

const USAGE: &str = "usage: cargo xtask codegen [--check]";

fn workspace_root() -> Result<PathBuf> {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    Ok(manifest_dir.parent().ok_or("xtask's manifest directory has no parent")?.to_path_buf())
}

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let mode = match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["codegen"] => codegen::Mode::Write,
        ["codegen", "--check"] => codegen::Mode::Check,
        ["help" | "--help" | "-h"] => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match workspace_root().and_then(|root| codegen::run(&root, mode)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
