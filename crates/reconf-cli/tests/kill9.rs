//! kill -9, end to end: `reconf simulate --print-acks` is killed at a random moment, over
//! and over on one data directory. After each kill `reconf verify` must pass, and every
//! change whose acknowledgement line was printed must be in the journal with the printed
//! content: a delegation at its sequence with its session, holders and generation, an
//! opened session with its authority.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::Reconf;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// What the cycles checked.
#[derive(Debug, Default)]
struct Figures {
    cycles: u64,
    delegations: u64,
    opens: u64,
    killed_before_any_ack: u64,
}

#[test]
fn simulate_killed_at_random_keeps_every_printed_acknowledgement() {
    let figures = soak(4, 0x5eed_0001);
    assert!(figures.delegations > 0, "{figures:?}");
}

/// `SOAK_CYCLES` cycles (default 200), `SOAK_SEED` for the kill moments.
#[test]
#[ignore = "long soak; run with --ignored (SOAK_CYCLES=200 by default)"]
fn simulate_kill9_soak() {
    let cycles = std::env::var("SOAK_CYCLES").ok().and_then(|v| v.parse().ok()).unwrap_or(200);
    let seed = std::env::var("SOAK_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or_else(rand::random);
    println!("soak seed {seed}");
    let started = Instant::now();
    let f = soak(cycles, seed);
    println!(
        "{} cycles of kill -9 in {:.0} s: {} acknowledged delegations and {} acknowledged opens checked, \
         none lost; {} kills came before the first acknowledgement",
        f.cycles,
        started.elapsed().as_secs_f64(),
        f.delegations,
        f.opens,
        f.killed_before_any_ack
    );
}

fn soak(cycles: u64, seed: u64) -> Figures {
    let r = Reconf::new();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut figures = Figures::default();
    let mut head = 0u64;
    for cycle in 0..cycles {
        let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("reconf"))
            .arg("--data-dir")
            .arg(&r.dir)
            .env_remove("RUST_LOG")
            .args(["simulate", "--print-acks", "--json", "--sessions", "64", "--authorities", "6"])
            .args(["--delegations", "1000000", "--concurrency", "8", "--seed", &cycle.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        // Whole lines only: a line cut by the kill was never a complete acknowledgement.
        let reader = std::thread::spawn(move || {
            let mut lines = Vec::new();
            let mut out = BufReader::new(stdout);
            let mut buf = Vec::new();
            while out.read_until(b'\n', &mut buf).is_ok_and(|n| n > 0) {
                if buf.ends_with(b"\n") {
                    lines.push(String::from_utf8_lossy(&buf).trim_end().to_owned());
                }
                buf.clear();
            }
            lines
        });
        std::thread::sleep(Duration::from_millis(rng.random_range(5..1500)));
        child.kill().unwrap();
        child.wait().unwrap();
        let lines = reader.join().unwrap();

        let verified = r.run(&["verify"]);
        if !verified.success() && lines.is_empty() && head == 0 {
            // Killed before the journal was created: nothing to verify, nothing acknowledged.
            figures.killed_before_any_ack += 1;
            figures.cycles += 1;
            continue;
        }
        assert!(verified.success(), "cycle {cycle}: verify failed:\n{}{}", verified.stdout, verified.stderr);
        let records = dump_from(&r, head + 1);
        if let Some(last) = records.keys().max() {
            head = *last;
        }
        let (delegations, opens) = check(cycle, &lines, &records);
        if delegations + opens == 0 {
            figures.killed_before_any_ack += 1;
        }
        figures.delegations += delegations;
        figures.opens += opens;
        figures.cycles += 1;
    }
    figures
}

/// The journal's records from `from` on, by sequence.
fn dump_from(r: &Reconf, from: u64) -> HashMap<u64, serde_json::Value> {
    let dump = r.ok(&["journal", "dump", "--json", "--from", &from.to_string()]);
    dump.stdout
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (v["sequence"].as_u64().unwrap(), v)
        })
        .collect()
}

/// Checks every acknowledgement line against the records this cycle added; returns the
/// delegations and opens checked.
fn check(cycle: u64, lines: &[String], records: &HashMap<u64, serde_json::Value>) -> (u64, u64) {
    let opened: HashMap<&str, &str> = records
        .values()
        .filter(|v| v["kind"] == "session.opened")
        .map(|v| (v["fact"]["session"].as_str().unwrap(), v["fact"]["authority"].as_str().unwrap()))
        .collect();
    let (mut delegations, mut opens) = (0, 0);
    for line in lines.iter().filter(|l| l.starts_with("ack ")) {
        let words: Vec<&str> = line.split(' ').collect();
        match words[1] {
            "open" => {
                let (session, authority) = (words[2], words[3]);
                assert_eq!(
                    opened.get(session),
                    Some(&authority),
                    "cycle {cycle}: acknowledged `{line}` lost"
                );
                opens += 1;
            }
            "delegate" => {
                let sequence: u64 = words[2].parse().unwrap();
                let record = records.get(&sequence).unwrap_or_else(|| {
                    panic!("cycle {cycle}: acknowledged `{line}` has no record at {sequence}")
                });
                let f = &record["fact"];
                assert_eq!(record["kind"], "session.delegated", "cycle {cycle}: `{line}`: {record}");
                assert_eq!(
                    [&f["session"], &f["from"], &f["to"]].map(|v| v.as_str().unwrap()),
                    [words[3], words[4], words[5]],
                    "cycle {cycle}: `{line}`: {record}"
                );
                assert_eq!(f["generation"].as_u64().unwrap(), words[6].parse::<u64>().unwrap(), "`{line}`");
                delegations += 1;
            }
            other => panic!("cycle {cycle}: unknown acknowledgement `{other}` in `{line}`"),
        }
    }
    (delegations, opens)
}

/// The check itself: an acknowledgement the journal does not hold, or holds with other
/// content, fails it.
#[test]
fn the_check_catches_a_lost_or_altered_acknowledgement() {
    let session = "00000000-0000-0000-0000-000000000001";
    let (from, to) = ("aa".repeat(32), "bb".repeat(32));
    let record = serde_json::json!({
        "sequence": 7, "kind": "session.delegated",
        "fact": { "session": session, "from": from, "to": to, "generation": 3 },
    });
    let records = HashMap::from([(7, record)]);
    let ok = format!("ack delegate 7 {session} {from} {to} 3");
    assert_eq!(check(0, &[ok], &records), (1, 0));
    for bad in [
        format!("ack delegate 8 {session} {from} {to} 3"),
        format!("ack delegate 7 {session} {to} {from} 3"),
        format!("ack delegate 7 {session} {from} {to} 4"),
        format!("ack open {session} {from}"),
    ] {
        let caught = std::panic::catch_unwind(|| check(0, std::slice::from_ref(&bad), &records));
        assert!(caught.is_err(), "`{bad}` passed the check");
    }
}
