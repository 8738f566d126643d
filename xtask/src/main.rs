//! # xtask
//!
//! Project automation, run as `cargo xtask <task>` (the alias is in `.cargo/config.toml`). It
//! builds in seconds (no C++), so it can set up what the real build needs:
//!
//! - `cargo xtask simulate [ARGS]` installs what building the CLI needs when it is missing
//!   (libclang, for RocksDB's bindings), then runs `reconf simulate ARGS` in the release
//!   profile on the embedded RocksDB journal.
//! - `cargo xtask test` installs what the build and the tests need, then runs every test
//!   (the whole workspace with every feature, and the runtime's other feature sets).
//! - `cargo xtask setup [simulate|test]` only installs, for people who then run `cargo`
//!   themselves.
//! - `cargo xtask codegen` parses and validates `crates/reconf-manifests/protocols/*.choreo`
//!   and writes the manifests they describe to `crates/reconf-manifests/src/generated/`,
//!   formatted with rustfmt; it removes generated files no spec produces any more.
//! - `cargo xtask codegen --check` writes nothing and exits non-zero, naming each stale,
//!   missing or extra file, when the committed code differs from what the specs generate.
//!
//! Installing means `apt-get`, as root, on a Debian-like system; anywhere else a missing
//! package is one line naming it and the command to install it, and a non-zero exit. Nothing
//! is downloaded but packages from the system's package manager and crates from crates.io.
//!
//! The parsing and generating is `reconf_manifests::codegen`; this binary only reads, formats
//! and writes files. It must not be a dependency of anything: it is a developer tool, and
//! depending on it would make the generator part of a library's build.
#![forbid(unsafe_code)]

mod codegen;
mod deps;
mod probe;
mod rustfmt;
mod tasks;

use std::env;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Errors are reported, not matched on, so a boxed error with its context in the message is
/// enough here.
type Result<T, E = Box<dyn std::error::Error>> = std::result::Result<T, E>;

const USAGE: &str = "usage: cargo xtask simulate [ARGS] | test | setup [simulate|test] | codegen [--check]";

fn workspace_root() -> Result<PathBuf> {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    Ok(manifest_dir.parent().ok_or("xtask's manifest directory has no parent")?.to_path_buf())
}

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let Some((task, rest)) = args.split_first() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
    let outcome = workspace_root().and_then(|root| match (task.as_str(), rest.as_slice()) {
        ("simulate", args) => tasks::simulate(&root, args),
        ("test", []) => tasks::test(&root),
        ("setup", []) => tasks::setup(&root, deps::Task::Test),
        ("setup", ["simulate"]) => tasks::setup(&root, deps::Task::Simulate),
        ("setup", ["test"]) => tasks::setup(&root, deps::Task::Test),
        ("codegen", []) => codegen::run(&root, codegen::Mode::Write),
        ("codegen", ["--check"]) => codegen::run(&root, codegen::Mode::Check),
        ("help" | "--help" | "-h", []) => {
            println!("{USAGE}");
            Ok(true)
        }
        _ => Err(USAGE.into()),
    });
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
