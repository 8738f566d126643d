//! `reconf --etcd`: the CLI on a shared journal, on a real single-member etcd on loopback.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use assert_cmd::Command;
use reconf_store_etcd::testing::EtcdCluster;
use serde_json::Value;

fn reconf(etcd: &EtcdCluster, prefix: &str) -> Command {
    let mut c = Command::cargo_bin("reconf").unwrap();
    c.arg("--etcd").arg(etcd.endpoints().join(",")).args(["--etcd-prefix", prefix]).env_remove("RUST_LOG");
    c
}

fn simulate_args(sessions: &str, delegations: &str, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "simulate",
        "--sessions",
        sessions,
        "--authorities",
        "6",
        "--delegations",
        delegations,
        "--concurrency",
        "12",
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    args.extend(extra.iter().map(ToString::to_string));
    args
}

fn json_of(out: &std::process::Output) -> Value {
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "reconf failed: {text}\n{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[test]
fn simulate_with_three_managers_in_one_process_then_verify_and_status() {
    let etcd = EtcdCluster::start(1);
    let out = reconf(&etcd, "/cli3")
        .args(simulate_args("300", "1500", &["--managers", "3", "--json", "--seed", "5"]))
        .output()
        .unwrap();
    let s = json_of(&out);
    assert_eq!(s["ok"], true, "{s:#}");
    assert_eq!(s["delegation"]["unexpected"], 0, "{s:#}");
    let managers = s["managers"].as_array().unwrap();
    assert_eq!(managers.len(), 3);
    let accepted: u64 = managers.iter().map(|m| m["accepted"].as_u64().unwrap()).sum();
    assert_eq!(accepted, s["delegation"]["accepted"].as_u64().unwrap());
    assert!(managers.iter().all(|m| m["accepted"].as_u64().unwrap() > 0), "{s:#}");
    assert!(s["journal"]["size_bytes"].as_u64().unwrap() > 0);

    let out = reconf(&etcd, "/cli3").arg("verify").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("journal    ok:") && text.contains("coherence  ok:"), "{text}");

    let status = json_of(&reconf(&etcd, "/cli3").args(["status", "--json"]).output().unwrap());
    assert_eq!(status["sessions"]["open"], 300, "{status:#}");
}

#[test]
fn three_simulate_processes_share_one_journal() {
    let etcd = EtcdCluster::start(1);
    let endpoints = etcd.endpoints().join(",");
    let handles: Vec<_> = (0..3)
        .map(|i| {
            let endpoints = endpoints.clone();
            std::thread::spawn(move || {
                let mut c = Command::cargo_bin("reconf").unwrap();
                c.args(["--etcd", &endpoints, "--etcd-prefix", "/cliprocs-concurrent"])
                    .env_remove("RUST_LOG");
                c.args(simulate_args("200", "800", &["--json", "--seed", &i.to_string()])).output().unwrap()
            })
        })
        .collect();
    let mut facts = 0;
    for h in handles {
        let s = json_of(&h.join().unwrap());
        assert_eq!(s["ok"], true, "{s:#}");
        assert_eq!(s["delegation"]["unexpected"], 0, "{s:#}");
        facts += s["journal"]["facts_this_run"].as_u64().unwrap();
    }
    let status = json_of(&reconf(&etcd, "/cliprocs-concurrent").args(["status", "--json"]).output().unwrap());
    assert_eq!(status["sessions"]["open"], 600, "{status:#}");
    assert!(facts > 0);
    let out = reconf(&etcd, "/cliprocs-concurrent").arg("verify").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn several_managers_need_a_shared_journal() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::cargo_bin("reconf")
        .unwrap()
        .arg("--data-dir")
        .arg(dir.path().join("d"))
        .args(["simulate", "--managers", "2"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("error: --managers needs --etcd"), "{err}");
}

#[test]
fn inspecting_an_empty_prefix_is_an_error() {
    let etcd = EtcdCluster::start(1);
    let out = reconf(&etcd, "/nothing-here").arg("status").output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.starts_with("error: no journal at etcd "), "{err}");
}
