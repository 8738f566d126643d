//! The `reconf` binary, run as a user would, on temporary data directories.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{corrupt_record, Reconf};
use serde_json::Value;

const SHIPPED: [&str; 3] = ["device_migration", "epoch_rotation_transfer", "guardian_handoff"];

fn small_simulation(extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "simulate",
        "--sessions",
        "40",
        "--authorities",
        "4",
        "--delegations",
        "300",
        "--concurrency",
        "8",
        "--invalid-fraction",
        "0.2",
        "--handoff-fraction",
        "0.3",
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    args.extend(extra.iter().map(ToString::to_string));
    args
}

fn run_simulation(r: &Reconf, extra: &[&str]) -> Value {
    let args = small_simulation(extra);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = r.ok(&args);
    assert!(run.stderr.is_empty(), "no progress bar or logs when not a terminal: {}", run.stderr);
    run.json()
}

#[test]
fn simulate_json_summary_accounts_for_every_request_and_reruns_do_not_collide() {
    let r = Reconf::new();
    let s = run_simulation(&r, &["--seed", "7", "--json"]);
    assert_eq!(s["ok"], true, "{s:#}");
    assert_eq!(s["seed"], 7);
    let d = &s["delegation"];
    assert_eq!(d["requests"], 300);
    assert_eq!(d["callers"], 8);
    assert_eq!(d["unexpected"], 0, "{s:#}");
    let rejected = &d["rejected_as_expected"];
    let accepted = d["accepted"].as_u64().unwrap();
    let total_rejected = rejected["total"].as_u64().unwrap();
    assert_eq!(accepted + total_rejected, 300);
    assert_eq!(d["plain"].as_u64().unwrap() + d["live_handoffs"].as_u64().unwrap(), accepted);
    assert!(d["live_handoffs"].as_u64().unwrap() > 0, "{s:#}");
    for kind in ["wrong_holder", "self_delegation", "unknown_bundle", "bad_boundary"] {
        assert!(rejected[kind].as_u64().unwrap() > 0, "no {kind} request in {s:#}");
    }
    let lat = &d["latency_ms"];
    assert!(lat["p50"].as_f64().unwrap() <= lat["p99"].as_f64().unwrap());
    assert!(lat["p99"].as_f64().unwrap() <= lat["max"].as_f64().unwrap());
    assert_eq!(s["open"]["sessions"], 40);
    assert_eq!(s["state"]["sessions"], 40);
    assert_eq!(s["state"]["bundles"], 3);
    // 3 manifests + 40 opens + every accepted delegation.
    assert_eq!(s["journal"]["head"].as_u64().unwrap(), 3 + 40 + accepted);
    assert_eq!(s["journal"]["facts_this_run"], s["journal"]["head"]);
    assert!(s["journal"]["size_bytes"].as_u64().unwrap() > 0);
    assert_eq!(s["coherence"]["coherent"], true);
    assert_eq!(s["coherence"]["sessions_checked"], 40);

    // Same seed, same directory: fresh session ids, so the earlier sessions stay and the
    // new ones add up.
    let again = run_simulation(&r, &["--seed", "7", "--json"]);
    assert_eq!(again["ok"], true, "{again:#}");
    assert_eq!(again["state"]["sessions"], 80);
    assert_eq!(again["coherence"]["sessions_checked"], 80);
    let head = s["journal"]["head"].as_u64().unwrap();
    let accepted_again = again["delegation"]["accepted"].as_u64().unwrap();
    assert_eq!(again["journal"]["head"].as_u64().unwrap(), head + 40 + accepted_again);
    r.ok(&["verify"]);
}

#[test]
fn simulate_text_summary_names_every_part() {
    let r = Reconf::new();
    let args = small_simulation(&[]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = r.ok(&args).stdout;
    for needle in [
        "sessions opened   40 over 4 authorities",
        "delegations       300 requests from 8 callers",
        "rejected",
        "as expected: wrong holder",
        "unexpected      0",
        "delegations/s",
        "latency           p50",
        "journal           head",
        "live owners",
        "coherence         ok: 40 sessions checked, 0 violations",
    ] {
        assert!(out.contains(needle), "{needle:?} missing from:\n{out}");
    }
}

#[test]
fn simulate_refuses_nonsense_arguments_before_touching_anything() {
    let r = Reconf::new();
    let line = r.run(&["simulate", "--authorities", "1"]).one_error_line().to_owned();
    assert!(line.contains("--authorities"), "{line}");
    let line = r
        .run(&["simulate", "--invalid-fraction", "0.7", "--handoff-fraction", "0.5"])
        .one_error_line()
        .to_owned();
    assert!(line.contains("must not exceed 1"), "{line}");
    assert!(!r.dir.exists(), "nothing may be created");
}

#[test]
fn status_bundles_open_delegate_and_link() {
    let r = Reconf::new();
    let session = r.open("alice", "device_migration");
    let status = r.state();
    assert_eq!(status["bundles"], serde_json::json!(SHIPPED));
    assert_eq!(status["sessions"]["open"], 1);
    assert_eq!(status["sessions"]["native"], 1);

    let out = r
        .ok(&[
            "delegate",
            "--session",
            &session,
            "--from",
            "alice",
            "--to",
            "bob",
            "--bundle",
            "device_migration",
        ])
        .stdout;
    assert!(out.contains("from alice ["), "{out}");
    assert!(out.contains("to bob ["), "{out}");
    assert!(out.contains("generation 2"), "{out}");

    // A raw 64-hex id names the same authority as its label.
    let bob = r.ok(&["status", "--json"]).json()["authorities"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["delegated_in"] == 1)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // A session runs one bundle: delegating it through another is refused, not a rebinding.
    let other =
        ["delegate", "--session", &session, "--from", &bob, "--to", "carol", "--bundle", "guardian_handoff"];
    let line = r.run(&other).one_error_line().to_owned();
    assert_eq!(line, format!("error: session {session} runs bundle device_migration, not guardian_handoff"));
    r.ok(&[
        "delegate",
        "--session",
        &session,
        "--from",
        &bob,
        "--to",
        "carol",
        "--bundle",
        "device_migration",
    ]);

    let status = r.state();
    assert_eq!(status["sessions"]["delegated"], 1);
    assert_eq!(status["authorities"].as_array().unwrap().len(), 3);
    assert_eq!(status["coherence"]["coherent"], true);
    let text = r.ok(&["status"]).stdout;
    assert!(text.contains("sessions     1 open (0 native, 1 delegated), 0 closed"), "{text}");
    assert!(text.contains("coherence    ok"), "{text}");

    let out =
        r.ok(&["link", "device_migration", "guardian_handoff", "--as", "migration_with_guardians"]).stdout;
    assert!(out.contains("linked device_migration + guardian_handoff as migration_with_guardians"), "{out}");
    let bundles = r.ok(&["bundles", "--json"]).json();
    let linked = bundles.as_array().unwrap().iter().find(|b| b["id"] == "migration_with_guardians").unwrap();
    assert_eq!(linked["linked_from"], serde_json::json!(["device_migration", "guardian_handoff"]));
    let text = r.ok(&["bundles"]).stdout;
    for b in SHIPPED {
        assert!(text.contains(b), "{b} missing from:\n{text}");
    }
}

#[test]
fn open_takes_a_given_session_id_and_prints_it() {
    let r = Reconf::new();
    let id = "67e55044-10b1-426f-9247-bb680e5fe0c8";
    let run = r.ok(&["open", "--authority", "alice", "--session", id]);
    assert_eq!(run.stdout.trim(), id);
    assert!(run.stderr.contains("held by alice ["), "{}", run.stderr);
    // Opening it again is refused: it is already held.
    let line = r.run(&["open", "--authority", "bob", "--session", id]).one_error_line().to_owned();
    assert!(line.contains("already held"), "{line}");
}

#[test]
fn state_persists_across_processes() {
    let r = Reconf::new();
    let session = r.open("alice", "epoch_rotation_transfer");
    // A second process sees what the first wrote.
    let status = r.state();
    assert_eq!(status["sessions"]["open"], 1);
    assert_eq!(status["journal"]["head"], 4);
    // A third changes it, a fourth sees that.
    r.ok(&[
        "delegate",
        "--session",
        &session,
        "--from",
        "alice",
        "--to",
        "bob",
        "--bundle",
        "epoch_rotation_transfer",
    ]);
    let status = r.state();
    assert_eq!(status["journal"]["head"], 5);
    assert_eq!(status["sessions"]["delegated"], 1);
    let dump = r.ok(&["journal", "dump"]).stdout;
    assert!(dump.contains(&format!("session.delegated  session={session}")), "{dump}");
}

#[test]
fn bad_input_prints_one_line_and_changes_nothing() {
    let r = Reconf::new();
    let session = r.open("alice", "device_migration");
    let before = r.state();
    let hex63 = "0".repeat(63);
    let not_hex = format!("{}g", "0".repeat(63));
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec![
                "delegate",
                "--session",
                "not-a-uuid",
                "--from",
                "alice",
                "--to",
                "bob",
                "--bundle",
                "device_migration",
            ],
            "--session: invalid session id \"not-a-uuid\"",
        ),
        (
            vec![
                "delegate",
                "--session",
                &session,
                "--from",
                &hex63,
                "--to",
                "bob",
                "--bundle",
                "device_migration",
            ],
            "--from: ",
        ),
        (
            vec![
                "delegate",
                "--session",
                &session,
                "--from",
                "alice",
                "--to",
                &not_hex,
                "--bundle",
                "device_migration",
            ],
            "invalid hex digit 'g' at position 63",
        ),
        (
            vec![
                "delegate",
                "--session",
                &session,
                "--from",
                "alice",
                "--to",
                "bob",
                "--bundle",
                "no_such_bundle",
            ],
            "bundle no_such_bundle is not registered",
        ),
        (
            vec![
                "delegate",
                "--session",
                &session,
                "--from",
                "mallory",
                "--to",
                "bob",
                "--bundle",
                "device_migration",
            ],
            "is not the active holder",
        ),
        (
            vec![
                "delegate",
                "--session",
                &session,
                "--from",
                "alice",
                "--to",
                "alice",
                "--bundle",
                "device_migration",
            ],
            "to itself",
        ),
        (
            vec![
                "delegate",
                "--session",
                "67e55044-10b1-426f-9247-bb680e5fe0c8",
                "--from",
                "alice",
                "--to",
                "bob",
                "--bundle",
                "device_migration",
            ],
            "is not open",
        ),
        (
            vec!["open", "--authority", "alice", "--bundle", "no_such_bundle"],
            "bundle no_such_bundle is not registered",
        ),
        (vec!["open", "--authority", "", "--bundle", "device_migration"], "--authority"),
        (vec!["link", "device_migration", "no_such_bundle", "--as", "x"], "no_such_bundle is not registered"),
        (vec!["link", "device_migration", "device_migration", "--as", "x"], "with itself"),
    ];
    for (args, expected) in cases {
        let run = r.run(&args);
        let line = run.one_error_line();
        assert!(line.contains(expected), "reconf {args:?}: {line:?} should mention {expected:?}");
        assert_eq!(r.state(), before, "reconf {args:?} changed the state");
    }
}

#[test]
fn inspecting_a_missing_data_dir_is_an_error_and_creates_nothing() {
    let r = Reconf::new();
    let delegate = [
        "delegate",
        "--session",
        "67e55044-10b1-426f-9247-bb680e5fe0c8",
        "--from",
        "alice",
        "--to",
        "bob",
        "--bundle",
        "device_migration",
    ];
    for args in [&["status"][..], &["bundles"], &["verify"], &["journal", "dump"], &delegate] {
        let line = r.run(args).one_error_line().to_owned();
        assert!(line.contains("no journal at"), "{args:?}: {line}");
    }
    assert!(!r.dir.exists());
}

#[test]
fn journal_dump_lists_ranges_as_text_and_json() {
    let r = Reconf::new();
    let s1 = r.open("alice", "device_migration");
    let s2 = r.open("bob", "guardian_handoff");
    r.ok(&["delegate", "--session", &s1, "--from", "alice", "--to", "bob", "--bundle", "device_migration"]);

    let all = r.ok(&["journal", "dump"]).stdout;
    let lines: Vec<&str> = all.lines().collect();
    assert_eq!(lines.len(), 6, "{all}");
    assert!(lines[0].trim_start().starts_with("1  bundle.registered"), "{all}");
    assert!(lines[4].contains(&s2), "{all}");
    assert!(lines[5].contains("session.delegated"), "{all}");

    let some = r.ok(&["journal", "dump", "--from", "4", "--limit", "2", "--json"]).stdout;
    let records: Vec<Value> = some.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(records.len(), 2);
    assert_eq!(records[0]["sequence"], 4);
    assert_eq!(records[0]["kind"], "session.opened");
    assert_eq!(records[0]["fact"]["session"], s1.as_str());
    assert_eq!(records[0]["fact"]["authority"].as_str().unwrap().len(), 64);
    assert_eq!(records[1]["fact"]["bundle"], "guardian_handoff");

    let last = r.ok(&["journal", "dump", "--from", "6", "--json"]).stdout;
    let v: Value = serde_json::from_str(last.trim()).unwrap();
    assert_eq!(v["kind"], "session.delegated");
    assert_eq!(v["fact"]["generation"], 2);
    assert_eq!(v["fact"]["scope"], serde_json::json!(["bundle:device_migration"]));
    assert!(r.ok(&["journal", "dump", "--from", "7"]).stdout.is_empty());
}

#[test]
fn verify_passes_on_a_sound_journal() {
    let r = Reconf::new();
    run_simulation(&r, &["--json"]);
    let out = r.ok(&["verify"]).stdout;
    assert!(out.contains("journal    ok:"), "{out}");
    assert!(out.contains("coherence  ok: 40 sessions checked"), "{out}");
}

#[test]
fn verify_names_the_corrupt_record_and_every_reader_refuses() {
    let r = Reconf::new();
    let s = run_simulation(&r, &["--json"]);
    let head = s["journal"]["head"].as_u64().unwrap();
    let victim = head / 2;
    corrupt_record(&r.dir, victim);

    let line = r.run(&["verify"]).one_error_line().to_owned();
    assert_eq!(line, format!("error: journal record {victim} is corrupt: checksum mismatch"));
    // Recovery reads the same records: status refuses too, naming the same sequence.
    let line = r.run(&["status"]).one_error_line().to_owned();
    assert!(line.contains(&format!("journal record {victim} is corrupt")), "{line}");
    // Records before the damage stay readable.
    let before = r.ok(&["journal", "dump", "--limit", &(victim - 1).to_string()]).stdout;
    assert_eq!(before.lines().count() as u64, victim - 1);
    // A dump over the damage prints every good record before it, then the error, and
    // fails: forensics needs the records around the damage.
    for (from, json) in [(1, false), (victim.saturating_sub(3).max(1), true)] {
        let mut args = vec!["journal".to_owned(), "dump".into(), "--from".into(), from.to_string()];
        args.extend(["--limit".into(), "100000".into()]);
        if json {
            args.push("--json".into());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let run = r.run(&args);
        assert_eq!(run.code, Some(1), "{}", run.stderr);
        let printed: Vec<&str> = run.stdout.lines().collect();
        assert_eq!(printed.len() as u64, victim - from, "every good record before {victim}");
        let last = printed.last().unwrap();
        let last_seq = if json {
            serde_json::from_str::<Value>(last).unwrap()["sequence"].as_u64().unwrap()
        } else {
            last.split_whitespace().next().unwrap().parse::<u64>().unwrap()
        };
        assert_eq!(last_seq, victim - 1);
        let errors: Vec<&str> = run.stderr.lines().collect();
        assert_eq!(errors, [format!("error: journal record {victim} is corrupt: checksum mismatch")]);
    }
}

#[test]
fn a_journal_held_by_another_process_is_named_as_in_use() {
    use reconf_runtime::{RocksJournal, RocksJournalOptions};
    let r = Reconf::new();
    r.open("alice", "device_migration");
    // This test process holds the journal open; every `reconf` process is another one.
    let held = RocksJournal::open(&r.dir, RocksJournalOptions::default()).unwrap();
    let expected = format!("error: journal at {} is in use by another process", r.dir.display());
    for command in [&["status"][..], &["verify"], &["journal", "dump"], &["open", "--authority", "bob"]] {
        let run = r.run(command);
        assert_eq!(run.one_error_line(), expected, "{command:?}");
    }
    drop(held);
    r.ok(&["status"]);
}

#[test]
fn a_fact_of_a_newer_schema_is_named_as_newer_not_corrupt() {
    use reconf_runtime::{Change, ExpectedHead, Fact, JournalEffects, RocksJournal, RocksJournalOptions};
    let r = Reconf::new();
    let session = r.open("alice", "device_migration");
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let head = rt.block_on(async {
        let journal = RocksJournal::open(&r.dir, RocksJournalOptions::default()).unwrap();
        let head = journal.head().await.unwrap().unwrap();
        let fact = Fact {
            schema_version: reconf_runtime::crates::core::FACT_SCHEMA_VERSION + 1,
            change: Change::SessionClosed {
                session: session.parse().unwrap(),
                authority: reconf_runtime::AuthorityId::from_label("alice"),
            },
        };
        journal.commit(vec![fact], ExpectedHead::At(head)).await.unwrap();
        journal.close().await.unwrap();
        head + 1
    });
    let supported = reconf_runtime::crates::core::FACT_SCHEMA_VERSION;
    let expected = format!(
        "journal record {head} holds a fact of schema version {}, newer than the supported {supported}; upgrade reconf",
        supported + 1
    );
    for command in [&["verify"][..], &["status"], &["journal", "dump"]] {
        let run = r.run(command);
        assert_eq!(run.code, Some(1), "{command:?}");
        let line = run.stderr.lines().last().unwrap_or_default();
        assert!(line.starts_with("error: ") && line.ends_with(&expected), "{command:?}: {line}");
        assert!(!line.contains("corrupt"), "{line}");
    }
}

#[test]
fn status_json_carries_every_authoritys_footprint_summary() {
    let r = Reconf::new();
    let s1 = r.open("alice", "device_migration");
    r.ok(&["delegate", "--session", &s1, "--from", "alice", "--to", "bob", "--bundle", "device_migration"]);
    let status = r.ok(&["status", "--json"]).json();
    let authorities = status["authorities"].as_array().unwrap();
    assert_eq!(authorities.len(), 2);
    for a in authorities {
        let digest = a["digest"].as_str().unwrap();
        assert_eq!(digest.len(), 16, "{a}");
        assert!(digest.chars().all(|c| c.is_ascii_hexdigit()), "{a}");
        assert_ne!(digest, "0000000000000000", "both hold or gave a session: {a}");
    }
    let counts: Vec<(u64, u64, u64)> = authorities
        .iter()
        .map(|a| {
            (
                a["native"].as_u64().unwrap(),
                a["delegated_in"].as_u64().unwrap(),
                a["delegated_out"].as_u64().unwrap(),
            )
        })
        .collect();
    assert!(counts.contains(&(0, 1, 0)) && counts.contains(&(0, 0, 1)), "{counts:?}");
    // Equal journals give equal summaries; a different one does not.
    let again = r.ok(&["status", "--json"]).json();
    assert_eq!(again["authorities"], status["authorities"]);
}

#[test]
fn rust_log_turns_tracing_on() {
    let r = Reconf::new();
    r.open("alice", "device_migration");
    let quiet = r.ok(&["status"]);
    assert!(quiet.stderr.is_empty(), "{}", quiet.stderr);
    let out = r.cmd().args(["status"]).env("RUST_LOG", "info").output().unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("INFO"), "{stderr}");
}

#[test]
fn upgrade_seeds_runs_repeats_and_refuses_invalid_plans() {
    let r = Reconf::new();
    let files = tempfile::tempdir().unwrap();
    let req = files.path().join("req.json");
    std::fs::write(
        &req,
        r#"{"upgrade_id": "release-1", "plan": {"plan_id": "p1", "steps": [
            {"step_id": "s1", "next_members": ["g1", "g2", "g4"]},
            {"step_id": "s2", "next_members": ["g2", "g4", "g5"]}]}}"#,
    )
    .unwrap();
    let bundle = ["--bundle", "guardian_handoff"];
    // Not seeded yet: refused with one line, nothing journaled.
    let line = r
        .run(&["upgrade", bundle[0], bundle[1], "--request", req.to_str().unwrap()])
        .one_error_line()
        .to_owned();
    assert!(line.contains("not seeded") || line.contains("seed"), "{line}");
    let seeded = r.ok(&["upgrade", bundle[0], bundle[1], "--seed", "g1,g2,g3", "--json"]).json();
    assert_eq!(seeded["epoch"], 0, "seeding is epoch 0");
    let out = r.ok(&["upgrade", bundle[0], bundle[1], "--request", req.to_str().unwrap()]);
    assert!(out.stdout.contains("staged -> admitted -> committed cutover"), "{}", out.stdout);
    assert!(out.stdout.contains("epoch 2, members [g2, g4, g5]"), "{}", out.stdout);
    let head = r.state()["journal"]["head"].clone();
    // Repeating the id answers from the record and writes nothing.
    r.ok(&["upgrade", bundle[0], bundle[1], "--request", req.to_str().unwrap()]);
    assert_eq!(r.state()["journal"]["head"], head);
    // An invalid plan is refused naming the broken rule; its failed phases are journaled.
    let bad = files.path().join("bad.json");
    std::fs::write(&bad, r#"{"upgrade_id": "r2", "plan": {"plan_id": "p2", "steps": [{"step_id": "s1", "next_members": ["x1"]}]}}"#).unwrap();
    let line = r
        .run(&["upgrade", bundle[0], bundle[1], "--request", bad.to_str().unwrap()])
        .one_error_line()
        .to_owned();
    assert!(line.contains("ownership continuity"), "{line}");
    let after = r.ok(&["upgrade", bundle[0], bundle[1], "--seed", "g1", "--force", "--json"]).json();
    assert_eq!(after["executions"].as_array().unwrap().len(), 2);
    // A malformed request file touches nothing.
    let broken = files.path().join("broken.json");
    std::fs::write(&broken, "{").unwrap();
    let head = r.state()["journal"]["head"].clone();
    let line = r
        .run(&["upgrade", bundle[0], bundle[1], "--request", broken.to_str().unwrap()])
        .one_error_line()
        .to_owned();
    assert!(line.contains("not a valid upgrade request"), "{line}");
    assert_eq!(r.state()["journal"]["head"], head);
    r.ok(&["verify"]);
}

/// Asserts one `error:` line on stderr, nothing on stdout, a non-zero exit and no panic
/// or backtrace; returns the line.
fn one_hostile_line(run: &common::Run, what: &str) -> String {
    assert!(!run.success(), "{what}: accepted");
    assert!(matches!(run.code, Some(1) | Some(2)), "{what}: exit {:?}", run.code);
    assert!(run.stdout.is_empty(), "{what}: stdout {:?}", run.stdout);
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{what}: expected one stderr line, got:\n{}", run.stderr);
    assert!(lines[0].starts_with("error: "), "{what}: {}", lines[0]);
    assert!(!run.stderr.contains("panicked") && !run.stderr.contains("backtrace"), "{what}: {}", run.stderr);
    lines[0].to_owned()
}

#[test]
fn hostile_input_through_the_front_door_gets_one_error_line_and_changes_nothing() {
    let r = Reconf::new();
    let session = r.open("alice", "device_migration");
    let before = r.state();
    let tmp = tempfile::tempdir().unwrap();
    // The OS refuses a single argument over 128 KiB (MAX_ARG_STRLEN) at exec, before any
    // program runs: the largest that can arrive is just under it.
    let huge = "z".repeat(120 * 1024);
    let hex65 = "a".repeat(65);
    let deep = tmp.path().join("deep.json");
    // Nested under a field a request does not know, which serde walks (and bounds) all the same.
    std::fs::write(&deep, format!("{}1{}", "{\"x\":".repeat(100_000), "}".repeat(100_000))).unwrap();
    let big = tmp.path().join("big.json");
    {
        let f = std::fs::File::create(&big).unwrap();
        f.set_len(100 << 20).unwrap(); // 100 MB (sparse: zeros)
    }
    let deep = deep.to_str().unwrap().to_owned();
    let big = big.to_str().unwrap().to_owned();
    let delegate = |from: &str, to: &str, bundle: &str, s: &str| -> Vec<String> {
        ["delegate", "--session", s, "--from", from, "--to", to, "--bundle", bundle]
            .map(str::to_owned)
            .to_vec()
    };
    let cases: Vec<(&str, Vec<String>, &str)> = vec![
        ("a session id too short", delegate("alice", "bob", "device_migration", "1234"), "--session"),
        ("an authority of 65 hex digits", delegate(&hex65, "bob", "device_migration", &session), "65 digits"),
        (
            "a 120 KiB authority label",
            delegate(&huge, "bob", "device_migration", &session),
            "ids are at most 1024",
        ),
        ("a 120 KiB bundle name", delegate("alice", "bob", &huge, &session), "ids are at most 1024"),
        ("a 120 KiB session id", delegate("alice", "bob", "device_migration", &huge), "ids are at most 1024"),
        ("a negative count", ["simulate", "--sessions", "-5"].map(str::to_owned).to_vec(), "-5"),
        (
            "a count past u64",
            ["simulate", "--sessions", "99999999999999999999999"].map(str::to_owned).to_vec(),
            "--sessions",
        ),
        (
            "a count past the limit",
            ["simulate", "--sessions", "10000000000"].map(str::to_owned).to_vec(),
            "--sessions must be between",
        ),
        (
            "--concurrency 0",
            ["simulate", "--concurrency", "0"].map(str::to_owned).to_vec(),
            "--concurrency must be between",
        ),
        ("an unknown flag", ["status", "--no-such-flag"].map(str::to_owned).to_vec(), "--no-such-flag"),
        (
            "a deeply nested request",
            ["upgrade", "--bundle", "device_migration", "--request", &deep].map(str::to_owned).to_vec(),
            "not a valid upgrade request",
        ),
        (
            "a 100 MB request",
            ["upgrade", "--bundle", "device_migration", "--request", &big].map(str::to_owned).to_vec(),
            "larger than 16 MiB",
        ),
    ];
    for (what, args, expected) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let line = one_hostile_line(&r.run(&args), what);
        assert!(line.len() < 600, "{what}: the error line echoes too much ({} bytes)", line.len());
        assert!(line.contains(expected), "{what}: {line:?} should mention {expected:?}");
        assert_eq!(r.state(), before, "{what} changed the state");
    }

    // A data dir that is a file.
    let file = tmp.path().join("a-file");
    std::fs::write(&file, b"not a journal").unwrap();
    one_hostile_line(&open_in(&file), "a data dir that is a file");
    assert_eq!(std::fs::read(&file).unwrap(), b"not a journal", "the file is untouched");

    // A read-only data dir: a read-only mount when running as root (root ignores mode
    // bits), else a directory without write permission.
    let ro = tmp.path().join("ro");
    std::fs::create_dir(&ro).unwrap();
    let mounted = read_only(&ro);
    let line = one_hostile_line(&open_in(&ro.join("data")), "a read-only data dir");
    if mounted {
        let _ = std::process::Command::new("umount").arg(&ro).status();
    }
    assert!(line.contains("data") || line.contains("journal"), "{line}");
}

/// `reconf --data-dir DIR open …`.
fn open_in(dir: &std::path::Path) -> common::Run {
    let mut c = assert_cmd::Command::cargo_bin("reconf").unwrap();
    let out = c
        .arg("--data-dir")
        .arg(dir)
        .args(["open", "--authority", "a", "--bundle", "device_migration"])
        .output()
        .unwrap();
    common::Run {
        code: out.status.code(),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

/// Makes `dir` read-only for this process; returns whether a mount was made (to undo).
fn read_only(dir: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let root =
        std::process::Command::new("id").arg("-u").output().map(|o| o.stdout == b"0\n").unwrap_or(false);
    if root {
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "ro,size=1m", "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok,
            "running as root, but a read-only tmpfs could not be mounted for the read-only data dir case"
        );
        return true;
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o555)).unwrap();
    false
}
