//! Metrics served while `reconf simulate` runs, and shell completions.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Reconf;

/// A port nothing listens on right now (the OS picks it; the race with another process
/// taking it in between is harmless for a test on loopback).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// One HTTP GET of `/metrics`; `None` while nothing answers yet.
fn scrape(port: u16) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    Some(response)
}

#[test]
fn simulate_serves_prometheus_metrics_while_it_runs() {
    let r = Reconf::new();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("reconf"))
        .args(["--data-dir", r.dir.to_str().unwrap(), "simulate", "--json", "--seed", "5"])
        .args(["--sessions", "20000", "--delegations", "150000", "--metrics-listen", &addr])
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let body = loop {
        if let Some(response) = scrape(port) {
            // Counters appear once the delegation phase has accepted one.
            if response.contains("reconf_delegations_accepted") {
                break response;
            }
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("simulate ended ({status}) before its metrics could be scraped");
        }
        assert!(Instant::now() < deadline, "no metrics from {addr} within two minutes");
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    for metric in [
        "reconf_delegations_accepted{kind=\"plain\"}",
        "reconf_journal_commits",
        "reconf_journal_facts",
        "reconf_journal_head",
        "reconf_sessions{class=\"native\"}",
        "reconf_batch_size",
        "reconf_command_seconds",
    ] {
        assert!(body.contains(metric), "{metric} missing from:\n{body}");
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("metrics on http://{addr}/metrics")), "{stderr}");
}

#[test]
fn a_taken_metrics_address_is_one_error_line() {
    let r = Reconf::new();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let run = r.run(&["simulate", "--sessions", "10", "--delegations", "10", "--metrics-listen", &addr]);
    let line = run.one_error_line();
    assert!(line.starts_with(&format!("error: --metrics-listen {addr}: ")), "{line}");
    assert!(!r.dir.exists(), "nothing may be written when the run cannot start");
}

#[test]
fn completions_are_printed_for_each_shell() {
    let r = Reconf::new();
    for (shell, marker) in [("bash", "_reconf()"), ("zsh", "#compdef reconf"), ("fish", "complete -c reconf")]
    {
        let run = r.run(&["completions", shell]);
        assert!(run.success(), "{shell}: {}", run.stderr);
        assert!(run.stdout.contains(marker), "{shell} script lacks {marker:?}");
        assert!(run.stdout.contains("simulate") && run.stdout.contains("metrics-listen"), "{shell}");
    }
    let run = r.run(&["completions", "cmd.exe"]);
    assert_eq!(run.code, Some(2), "an unknown shell is a usage error");
}
