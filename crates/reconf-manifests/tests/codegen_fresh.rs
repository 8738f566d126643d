//! Fails when `src/generated/` is not what `cargo xtask codegen` would write, so a plain
//! `cargo test` catches a spec edited without regenerating (or a hand-edited generated file).
//!
//! This repeats xtask's file handling on purpose: xtask must not be a dependency of anything,
//! and the generator itself is the shared library function.
// Test helpers fail loudly by design.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use reconf_manifests::codegen::{compare, generate, GeneratedFile};
use reconf_manifests::spec::SpecSource;

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn sorted_files(dir: &Path, extension: &str) -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == extension))
        .map(|p| (p.file_name().unwrap().to_str().unwrap().to_owned(), fs::read_to_string(&p).unwrap()))
        .collect();
    files.sort();
    files
}

/// The same rustfmt invocation as xtask's: edition 2021 and the workspace's rustfmt.toml.
fn rustfmt(source: &str) -> String {
    let config = crate_dir().join("../../rustfmt.toml");
    let mut child = Command::new("rustfmt")
        .args(["--edition", "2021", "--emit", "stdout", "--quiet", "--config-path"])
        .arg(config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("rustfmt is needed to check generated code: `rustup component add rustfmt`");
    child.stdin.take().unwrap().write_all(source.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "rustfmt rejected the generated code");
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn generated_code_is_fresh() {
    let specs = sorted_files(&crate_dir().join("protocols"), "choreo");
    let paths: Vec<String> =
        specs.iter().map(|(name, _)| format!("crates/reconf-manifests/protocols/{name}")).collect();
    let sources: Vec<SpecSource<'_>> =
        specs.iter().zip(&paths).map(|((_, text), path)| SpecSource { path, text }).collect();
    let mut expected = generate(&sources).unwrap_or_else(|e| panic!("{e}"));
    for file in &mut expected {
        file.contents = rustfmt(&file.contents);
    }
    let on_disk: Vec<GeneratedFile> = sorted_files(&crate_dir().join("src/generated"), "rs")
        .into_iter()
        .map(|(name, contents)| GeneratedFile { name, contents })
        .collect();
    let drift = compare(&expected, &on_disk);
    assert!(
        drift.is_empty(),
        "src/generated is out of date, run `cargo xtask codegen`:\n{}",
        drift.iter().map(|d| format!("  {d}\n")).collect::<String>()
    );
}

#[test]
fn every_generated_file_carries_the_preamble() {
    for (name, contents) in sorted_files(&crate_dir().join("src/generated"), "rs") {
        assert!(contents.starts_with(reconf_manifests::codegen::PREAMBLE), "{name}");
    }
}
