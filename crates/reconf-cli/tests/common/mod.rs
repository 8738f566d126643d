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

/// Flips a byte inside the payload of journal record `sequence`, writing the altered frame
/// back through plain RocksDB so that RocksDB's own checksums stay valid: only the
/// journal's frame checksum can notice. The journal must be closed.
pub fn corrupt_record(dir: &Path, sequence: u64) {
    use reconf_runtime::crates::store_rocksdb::layout::{
        META_CF, RECORDS_CF, RECORD_HEADER_LEN, SNAPSHOTS_CF,
    };
    let db =
        rocksdb::DB::open_cf(&rocksdb::Options::default(), dir, [RECORDS_CF, META_CF, SNAPSHOTS_CF]).unwrap();
    let cf = db.cf_handle(RECORDS_CF).unwrap();
    let key = sequence.to_be_bytes();
    let mut frame = db.get_cf(cf, key).unwrap().expect("record present");
    frame[RECORD_HEADER_LEN + 1] ^= 0x5a;
    db.put_cf(cf, key, &frame).unwrap();
    db.flush_cf(cf).unwrap();
}
