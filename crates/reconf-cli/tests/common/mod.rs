//! Helpers for running the `reconf` binary against a temporary data directory.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use serde_json::Value;

/// A temporary data directory and a way to run `reconf` on it.
pub struct Reconf {
    _tmp: tempfile::TempDir,
    pub dir: PathBuf,
}

/// What a run printed.
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// Asserts a failure that printed exactly one `error: ...` line on stderr and nothing
    /// on stdout; returns that line.
    pub fn one_error_line(&self) -> &str {
        assert!(!self.success(), "expected a failure, got success; stdout:\n{}", self.stdout);
        assert_eq!(self.code, Some(1), "stderr: {}", self.stderr);
        assert!(self.stdout.is_empty(), "stdout should be empty, got:\n{}", self.stdout);
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "expected one stderr line, got:\n{}", self.stderr);
        assert!(lines[0].starts_with("error: "), "{}", lines[0]);
        lines[0]
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(self.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {}", self.stdout))
    }
}

impl Reconf {
    /// A fresh, empty data directory (not created yet: the binary creates it).
    pub fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        Self { _tmp: tmp, dir }
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::cargo_bin("reconf").unwrap();
        c.arg("--data-dir").arg(&self.dir).env_remove("RUST_LOG");
        c
    }

    pub fn run(&self, args: &[&str]) -> Run {
        let out = self.cmd().args(args).output().unwrap();
        Run {
            code: out.status.code(),
            stdout: String::from_utf8(out.stdout).unwrap(),
            stderr: String::from_utf8(out.stderr).unwrap(),
        }
    }

    /// Runs and asserts success.
    pub fn ok(&self, args: &[&str]) -> Run {
        let r = self.run(args);
        assert!(r.success(), "reconf {args:?} failed ({:?}):\n{}\n{}", r.code, r.stdout, r.stderr);
        r
    }

    /// Opens a session held by `authority`; returns its id.
    pub fn open(&self, authority: &str, bundle: &str) -> String {
        let r = self.ok(&["open", "--authority", authority, "--bundle", bundle]);
        let id = r.stdout.trim().to_owned();
        assert_eq!(id.len(), 36, "a UUID on stdout, got {:?}", r.stdout);
        id
    }

    /// `status --json`, without the parts that change when nothing logical does (the
    /// on-disk size moves with RocksDB's own files at every open).
    pub fn state(&self) -> Value {
        let mut v = self.ok(&["status", "--json"]).json();
        let journal = v["journal"].as_object_mut().unwrap();
        journal.remove("size_bytes");
        journal.remove("records_replayed_at_open");
        v
    }
}

/// Flips a byte inside the payload of journal record `sequence` where it sits in a RocksDB
/// write-ahead log of `dir`, and re-seals that WAL record's own checksum so RocksDB replays
/// it as if nothing happened: only the journal's frame checksum can notice.
///
/// The journal must be closed and the record still in the WAL (written by the last process
/// that had the journal open). Frame layout: see `reconf_store_rocksdb::layout`.
pub fn corrupt_record_in_wal(dir: &Path, sequence: u64) -> usize {
    let mut hits = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("log") {
            continue;
        }
        let mut bytes = std::fs::read(&path).unwrap();
        let key = sequence.to_be_bytes();
        let Some(frame) = (0..bytes.len().saturating_sub(50))
            .find(|&i| bytes[i..i + 2] == [0, 1] && bytes[i + 6..i + 14] == key)
        else {
            continue;
        };
        let target = frame + 50 + 1; // a payload byte
        bytes[target] ^= 0x5a;
        reseal_wal_record(&mut bytes, target);
        std::fs::write(&path, &bytes).unwrap();
        hits += 1;
    }
    hits
}

/// RocksDB log format: 32 KiB blocks of physical records `crc32c (masked, LE u32) ‖ length
/// (LE u16) ‖ type (u8) [‖ log number (LE u32), recyclable types 5..=8] ‖ payload`, the crc
/// covering type, log number and payload.
fn reseal_wal_record(bytes: &mut [u8], target: usize) {
    const BLOCK: usize = 32 * 1024;
    let mut pos = 0;
    while pos + 7 <= bytes.len() {
        let left = BLOCK - pos % BLOCK;
        if left < 7 {
            pos += left;
            continue;
        }
        let len = usize::from(u16::from_le_bytes([bytes[pos + 4], bytes[pos + 5]]));
        let kind = bytes[pos + 6];
        assert!(kind != 0 || len != 0, "reached the WAL's end without finding byte {target}");
        let header = if (5..=8).contains(&kind) { 11 } else { 7 };
        let end = pos + header + len;
        if (pos + header..end).contains(&target) {
            let crc = crc32c::crc32c(&bytes[pos + 6..end]);
            let masked = (crc.rotate_right(15)).wrapping_add(0xa282_ead8);
            bytes[pos..pos + 4].copy_from_slice(&masked.to_le_bytes());
            return;
        }
        pos = end;
    }
    panic!("byte {target} is not inside a WAL record");
}
