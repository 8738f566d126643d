//! The core must stay sans-I/O: its normal dependency tree may not contain a runtime,
//! a storage engine, async-trait or linkme.

// Test and bench code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

#[test]
fn core_dependency_tree_has_no_io_crates() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let out = Command::new(cargo)
        .args(["tree", "-p", "reconf-core", "-e", "normal", "--prefix", "none", "--format", "{p}"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo tree runs");
    assert!(out.status.success(), "cargo tree failed: {}", String::from_utf8_lossy(&out.stderr));
    let tree = String::from_utf8_lossy(&out.stdout);
    let names: Vec<&str> = tree.lines().filter_map(|l| l.split_whitespace().next()).collect();
    assert!(names.contains(&"serde"), "sanity: the tree was read ({names:?})");
    for banned in ["tokio", "rocksdb", "librocksdb-sys", "async-trait", "linkme"] {
        assert!(!names.contains(&banned), "reconf-core depends on {banned}: {tree}");
    }
}
