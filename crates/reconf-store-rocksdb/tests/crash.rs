//! Crash safety: a child process appends batches and prints every acknowledged sequence;
//! the parent kills it with SIGKILL at random moments, then reopens the journal and checks
//! that every acknowledged record is there (with the right fact), that `verify()` passes
//! and that appending continues without a gap.
//!
//! The child is this test binary re-invoked on the `crash_child` test with
//! `RECONF_CRASH_CHILD_DIR` set; without it, `crash_child` does nothing.
//!
//! SIGKILL ends the process but not the machine: data still in the OS page cache survives,
//! so this test proves the journal's own ordering and recovery (no acknowledgement before
//! the write, consistent head after a torn process), while synced writes are what carries
//! the same guarantee across power loss.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use common::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reconf_effects::{ExpectedHead, JournalEffects};

const CHILD_DIR_ENV: &str = "RECONF_CRASH_CHILD_DIR";
const CHILD_CYCLE_ENV: &str = "RECONF_CRASH_CYCLE";
const CHILD_WRITERS: u128 = 4;

/// A fact id unique across cycles, writers and batches.
fn id(cycle: u128, writer: u128, n: u128) -> u128 {
    (cycle << 96) | (writer << 64) | n
}

/// The child: concurrent writers appending forever, printing each acknowledgement as
/// `acked <first> <last> <id>...`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_child() {
    let Some(dir) = std::env::var_os(CHILD_DIR_ENV) else {
        return;
    };
    let cycle: u128 = std::env::var(CHILD_CYCLE_ENV).unwrap().parse().unwrap();
    let journal = Arc::new(open(Path::new(&dir)));
    let mut writers = tokio::task::JoinSet::new();
    for writer in 0..CHILD_WRITERS {
        let journal = Arc::clone(&journal);
        writers.spawn(async move {
            let mut rng = StdRng::from_os_rng();
            let mut n = 0u128;
            loop {
                let size = rng.random_range(1..=8u128);
                let ids: Vec<u128> = (n..n + size).map(|n| id(cycle, writer, n)).collect();
                let committed =
                    journal.commit(ids.iter().map(|&i| fact(i)).collect(), ExpectedHead::Any).await.unwrap();
                let ids: Vec<String> = ids.iter().map(u128::to_string).collect();
                // One `println!` per line: stdout is locked per call, so lines never interleave.
                println!("acked {} {} {}", committed.first, committed.last, ids.join(" "));
                n += size;
            }
        });
    }
    writers.join_next().await.unwrap().unwrap();
}

fn parse_ack(line: &str, acked: &mut BTreeMap<u64, u128>) {
    let mut words = line.split_whitespace().skip(1);
    let first: u64 = words.next().unwrap().parse().unwrap();
    let last: u64 = words.next().unwrap().parse().unwrap();
    let ids: Vec<u128> = words.map(|w| w.parse().unwrap()).collect();
    assert_eq!(ids.len() as u64, last - first + 1, "malformed ack line {line:?}");
    for (sequence, id) in (first..=last).zip(ids) {
        assert!(acked.insert(sequence, id).is_none(), "sequence {sequence} acknowledged twice");
    }
}

/// Runs one child until a random moment, kills it, and returns every line it printed.
fn run_and_kill(dir: &Path, cycle: usize, rng: &mut StdRng) -> (Vec<String>, String) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR_ENV, dir)
        .env(CHILD_CYCLE_ENV, cycle.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tick, ticks) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line.starts_with("acked ") {
                let _ = tick.send(());
                lines.push(line);
            }
        }
        lines
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    // Half the kills land after a number of acknowledgements, half after a delay that can
    // fall before, during or after the open.
    let how = if rng.random_bool(0.5) {
        let target = rng.random_range(0..=300);
        for _ in 0..target {
            let left = deadline.saturating_duration_since(Instant::now());
            ticks.recv_timeout(left).expect("child stopped acknowledging");
        }
        format!("after {target} acks")
    } else {
        let delay = Duration::from_millis(rng.random_range(0..=400));
        std::thread::sleep(delay);
        format!("after {delay:?}")
    };
    child.kill().unwrap();
    child.wait().unwrap();
    (reader.join().unwrap(), how)
}

fn crash_cycles(cycles: usize) {
    let seed =
        std::env::var("RECONF_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random);
    eprintln!("crash test: {cycles} cycles, seed {seed} (set RECONF_CRASH_SEED to replay)");
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let mut acked: BTreeMap<u64, u128> = BTreeMap::new();
    let started = Instant::now();
    for cycle in 0..cycles {
        let (lines, how) = run_and_kill(dir.path(), cycle, &mut rng);
        let before = acked.len();
        for line in &lines {
            parse_ack(line, &mut acked);
        }
        runtime.block_on(async {
            let journal = open(dir.path());
            let head = journal.head().await.unwrap().unwrap_or(0);
            if let Some((&last, _)) = acked.last_key_value() {
                assert!(head >= last, "cycle {cycle} ({how}): head {head} lost acknowledged {last}");
            }
            let records = journal.read(1, usize::try_from(head).unwrap()).await.unwrap();
            assert_eq!(records.len() as u64, head, "cycle {cycle}: read everything up to the head");
            for (&sequence, &id) in &acked {
                let record = &records[usize::try_from(sequence - 1).unwrap()];
                assert_eq!(record.sequence, sequence);
                assert_eq!(
                    fact_id(&record.fact),
                    id,
                    "cycle {cycle}: sequence {sequence} holds another fact"
                );
            }
            let report = journal.verify().await.unwrap();
            assert_eq!((report.head, report.records), (Some(head).filter(|&h| h > 0), head));
            // Appending continues right after the recovered head.
            let own = id(cycle as u128, 99, 0); // writer 99 is the parent
            let committed = journal
                .commit(vec![fact(own)], ExpectedHead::from_head(Some(head).filter(|&h| h > 0)))
                .await
                .unwrap();
            assert_eq!(committed.first, head + 1, "cycle {cycle}: append after recovery left a gap");
            acked.insert(committed.first, own);
            journal.close().await.unwrap();
        });
        eprintln!(
            "cycle {cycle}: killed {how}; {} records newly acknowledged, {} in all",
            acked.len() - before - 1,
            acked.len()
        );
    }
    eprintln!("crash test: {cycles} cycles in {:?}", started.elapsed());
}

#[test]
fn acknowledged_commits_survive_sigkill() {
    crash_cycles(24);
}

#[test]
#[ignore = "long crash run: cargo test --release -p reconf-store-rocksdb --test crash -- --ignored"]
fn acknowledged_commits_survive_sigkill_long() {
    crash_cycles(300);
}
