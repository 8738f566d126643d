//! A small disk for tests that fill one up: the test re-runs one of its own (ignored)
//! tests in a private mount namespace (`unshare --mount`, with a user namespace when not
//! root), which mounts a size-limited tmpfs there, so the filesystem disappears with the
//! child whatever happens to it. Included by path from other crates' tests too.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Set in the child: the worker test runs only there.
pub const WORKER_ENV: &str = "RECONF_SMALL_DISK_WORKER";

/// Whether this process is the child that should run the worker.
pub fn in_worker() -> bool {
    std::env::var_os(WORKER_ENV).is_some()
}

/// Runs the test named `worker` of this test binary in a private mount namespace, prints
/// what it printed and fails with its output if it failed.
pub fn run_worker(worker: &str) {
    let root = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    let mut cmd = Command::new("unshare");
    if !root {
        cmd.args(["--user", "--map-root-user"]);
    }
    cmd.args(["--mount", "--propagation", "private", "--"]);
    run_in(cmd, worker, "run `unshare` (util-linux) to get a private mount namespace");
}

/// Runs the test named `worker` of this test binary as the last arguments of `wrapper`
/// (a command that sets the child up, then runs its arguments), with [`WORKER_ENV`] set;
/// prints what it printed, fails with its output if it failed, and returns its stdout.
/// `missing` says what to install when `wrapper` cannot be started.
pub fn run_in(mut wrapper: Command, worker: &str, missing: &str) -> String {
    wrapper
        .arg(std::env::current_exe().unwrap())
        .args([worker, "--exact", "--nocapture", "--test-threads=1", "--include-ignored"])
        .env(WORKER_ENV, "1");
    let out = wrapper.output().expect(missing);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    print!("{stdout}");
    assert!(
        out.status.success(),
        "worker {}:\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Mounts a tmpfs of `size` (as `mount -o size=`, e.g. `24m`) on `dir`; in the worker only.
pub fn mount_tmpfs(dir: &Path, size: &str) {
    let mounted =
        Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"]).arg(dir).status();
    assert!(mounted.is_ok_and(|s| s.success()), "mounting a tmpfs in the private namespace failed");
}

/// Fills the filesystem at `dir` with one file; returns its path (remove it to free the
/// space again).
pub fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).unwrap();
    let chunk = vec![0u8; 4096];
    loop {
        match f.write_all(&chunk) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::StorageFull => break,
            Err(e) => panic!("filling the disk: {e}"),
        }
    }
    path
}
