//! `cargo xtask codegen [--check]`: the file side of `reconf_manifests::codegen`.

use std::fs;
use std::path::Path;

use reconf_manifests::codegen::{compare, generate, Drift, GeneratedFile};
use reconf_manifests::spec::SpecSource;

use crate::{rustfmt, Result};

const PROTOCOLS_DIR: &str = "crates/reconf-manifests/protocols";
const GENERATED_DIR: &str = "crates/reconf-manifests/src/generated";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Write,
    Check,
}

/// File names in `dir` with the given extension, sorted so the output does not depend on the
/// file system's order.
fn files_with_extension(dir: &Path, extension: &str) -> Result<Vec<String>> {
    let mut names = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(names),
        Err(e) => return Err(format!("{}: {e}", dir.display()).into()),
    };
    for entry in entries {
        let path = entry?.path();
        if path.is_file() && path.extension().is_some_and(|e| e == extension) {
            if let Some(name) = path.file_name().and_then(|n| n.to_str()) {
                names.push(name.to_owned());
            }
        }
    }
    names.sort();
    Ok(names)
}

fn read(path: &Path) -> Result<String> {
    fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()).into())
}

/// What the specs generate, formatted.
fn expected_files(root: &Path) -> Result<Vec<GeneratedFile>> {
    let mut specs = Vec::new();
    for name in files_with_extension(&root.join(PROTOCOLS_DIR), "choreo")? {
        let path = format!("{PROTOCOLS_DIR}/{name}");
        let text = read(&root.join(&path))?;
        specs.push((path, text));
    }
    let sources: Vec<SpecSource<'_>> = specs.iter().map(|(path, text)| SpecSource { path, text }).collect();
    let mut files = generate(&sources)?;
    for file in &mut files {
        file.contents = rustfmt::format(root, &file.name, &file.contents)?;
    }
    Ok(files)
}

fn files_on_disk(root: &Path) -> Result<Vec<GeneratedFile>> {
    let dir = root.join(GENERATED_DIR);
    files_with_extension(&dir, "rs")?
        .into_iter()
        .map(|name| Ok(GeneratedFile { contents: read(&dir.join(&name))?, name }))
        .collect()
}

/// Returns whether the generated code is (now) up to date.
pub(crate) fn run(root: &Path, mode: Mode) -> Result<bool> {
    let expected = expected_files(root)?;
    let drift = compare(&expected, &files_on_disk(root)?);
    if drift.is_empty() {
        println!("{GENERATED_DIR} is up to date");
        return Ok(true);
    }
    if mode == Mode::Check {
        for d in &drift {
            eprintln!("error: {GENERATED_DIR}/{d}");
        }
        eprintln!("run `cargo xtask codegen` to regenerate");
        return Ok(false);
    }
    let dir = root.join(GENERATED_DIR);
    fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for d in &drift {
        match d {
            Drift::Stale(name) | Drift::Missing(name) => {
                let contents = expected.iter().find(|f| &f.name == name).map(|f| f.contents.as_str());
                let path = dir.join(name);
                fs::write(&path, contents.unwrap_or_default())
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                println!("wrote {GENERATED_DIR}/{name}");
            }
            Drift::Extra(name) => {
                let path = dir.join(name);
                fs::remove_file(&path).map_err(|e| format!("{}: {e}", path.display()))?;
                println!("removed {GENERATED_DIR}/{name}");
            }
        }
    }
    Ok(true)
}
