//! The README's commands: set up what is missing, then run cargo.

use std::path::Path;
use std::process::Command;

use crate::deps::{self, Task};
use crate::Result;

/// Every test, in one profile and (for the workspace) one feature set, so RocksDB's C++ is
/// compiled once. The runtime is also tested on its own without RocksDB (memory journal
/// only), with upgrades alone and with metrics alone, because every feature combination
/// must build and pass.
const TEST_RUNS: &[&[&str]] = &[
    &["test", "--release", "--workspace", "--all-features"],
    &["test", "--release", "-p", "reconf-runtime"],
    &["test", "--release", "-p", "reconf-runtime", "--features", "upgrade-executor"],
    &["test", "--release", "-p", "reconf-runtime", "--features", "metrics"],
];

/// The cargo that is running us (cargo sets `CARGO` for `cargo run`), so a toolchain chosen
/// with `cargo +toolchain xtask` is the one that builds.
fn cargo(root: &Path, args: &[&str]) -> Result<bool> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!("== cargo {}", args.join(" "));
    let status = Command::new(cargo).args(args).current_dir(root).status()?;
    Ok(status.success())
}

/// `cargo xtask simulate [ARGS]`.
pub(crate) fn simulate(root: &Path, args: &[&str]) -> Result<bool> {
    deps::ensure(Task::Simulate, root)?;
    let mut run = vec!["run", "--release", "-p", "reconf-cli", "--", "simulate"];
    run.extend_from_slice(args);
    cargo(root, &run)
}

/// `cargo xtask test`: stops at the first failing run.
pub(crate) fn test(root: &Path) -> Result<bool> {
    deps::ensure(Task::Test, root)?;
    for run in TEST_RUNS {
        if !cargo(root, run)? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// `cargo xtask setup [simulate|test]`.
pub(crate) fn setup(root: &Path, task: Task) -> Result<bool> {
    deps::ensure(task, root)?;
    eprintln!("== everything `cargo xtask {}` needs is installed", task.name());
    Ok(true)
}
