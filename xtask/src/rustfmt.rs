//! Formats generated source with the workspace's rustfmt settings.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::Result;

/// `source` as `cargo fmt` would leave it: edition 2021 (the workspace's) and the root
/// `rustfmt.toml`, so the committed files also pass `cargo fmt --check`.
pub(crate) fn format(root: &Path, name: &str, source: &str) -> Result<String> {
    let mut child = Command::new("rustfmt")
        .args(["--edition", "2021", "--emit", "stdout", "--quiet", "--config-path"])
        .arg(root.join("rustfmt.toml"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run rustfmt (`rustup component add rustfmt`): {e}"))?;
    // rustfmt reads all of its input before it writes, so writing first cannot deadlock.
    child.stdin.take().ok_or("rustfmt's stdin is not piped")?.write_all(source.as_bytes())?;
    let output = child.wait_with_output()?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(format!("rustfmt rejected the generated {name}: {stderr}").into());
    }
    Ok(String::from_utf8(output.stdout)?)
}
