//! Live owners across manager *processes* on one etcd: two processes attach the same
//! sessions at once; a process paused with SIGSTOP past its lease has every write refused
//! when it wakes; a process killed with SIGKILL frees its sessions after the TTL, and no
//! session ever has two live owners in the registry meanwhile.
//!
//! Each child is this test binary run again with `RECONF_OWNER_WORKER` set: a real manager
//! in its own process, driven line by line over stdin, answering one line per command.
#![cfg(feature = "etcd")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use reconf_core::LinkBoundary;
use reconf_runtime::crates::store_etcd::testing::EtcdCluster;
use reconf_runtime::crates::store_etcd::EtcdJournalOptions;
use reconf_runtime::*;

const WORKER: &str = "RECONF_OWNER_WORKER";

fn a(n: u128) -> AuthorityId {
    AuthorityId::from_label(&format!("authority-{n}"))
}
fn s(n: u128) -> SessionId {
    SessionId::from_u128(0x0a00 + n)
}
fn x() -> BundleId {
    BundleId::new("x").unwrap()
}

/// The answer to a command: `OK`, or the error's kind, with the node an `AlreadyLive`
/// names (`already_live@node-x`).
fn outcome<T>(r: &Result<T, ManagerError>) -> String {
    match r {
        Ok(_) => "OK".to_owned(),
        Err(ManagerError::Ownership(OwnershipError::AlreadyLive { node: Some(n), .. })) => {
            format!("already_live@{n}")
        }
        Err(e) => e.kind().to_owned(),
    }
}

/// The worker: `RECONF_OWNER_WORKER=endpoints;prefix;node;ttl_secs`. Commands (one per
/// line; `i` a session number, `n` a count): `SETUP n`, `SYNC`, `ATTACH i..j`,
/// `HANDOFF i`, `DETACH i`, `CLOSE i`, `CHECK i`, `OWN n` (how many of sessions `0..n`
/// this process's handles still pass the local ingress check for), `NOTICES`, `QUIT`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owner_worker() {
    let Ok(spec) = std::env::var(WORKER) else { return };
    let p: Vec<&str> = spec.split(';').collect();
    let options = EtcdJournalOptions::new(p[0].split(',').map(str::to_owned))
        .prefix(p[1])
        .node(p[2])
        .lease_ttl(Duration::from_secs(p[3].parse().unwrap()))
        .request_timeout(Duration::from_millis(800));
    let m = ManagerBuilder::new().etcd_journal(options).without_manifests().open().await.unwrap();
    let mut notices = m.owner_notices();
    let mut noticed = 0;
    // Whole-session owners: closing and detaching by handle need one.
    let boundary = LinkBoundary { bundle: x(), scope: CapabilityScope::WholeSession };
    let mut handles: HashMap<u128, OwnedSession> = HashMap::new();
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    println!("READY");
    loop {
        let line = match rx.try_recv() {
            Ok(line) => line,
            Err(mpsc::TryRecvError::Empty) => {
                tokio::time::sleep(Duration::from_millis(2)).await;
                continue;
            }
            Err(mpsc::TryRecvError::Disconnected) => break,
        };
        let words: Vec<&str> = line.split(' ').collect();
        let n = |i: usize| words.get(i).and_then(|w| w.parse::<u128>().ok()).unwrap_or(0);
        let reply = match words[0] {
            "SETUP" => {
                m.register_bundle(ComposedBundle::new(x())).await.unwrap();
                for i in 0..n(1) {
                    m.open_session(s(i), a(0), Some(x())).await.unwrap();
                }
                "OK".to_owned()
            }
            "SYNC" => outcome(&m.sync().await),
            "ATTACH" => {
                let mut out = Vec::new();
                for i in n(1)..n(2) {
                    let r = m
                        .attach_owner(s(i), OwnerLabel::new(format!("w-{}", p[2])).unwrap(), boundary.clone())
                        .await;
                    out.push(outcome(&r));
                    if let Ok(h) = r {
                        handles.insert(i, h);
                    }
                }
                out.join(" ")
            }
            "HANDOFF" => match handles.get(&n(1)) {
                Some(h) => {
                    let holder = m.session(&s(n(1))).map_or(a(0), |r| r.holder);
                    let to = if holder == a(1) { a(2) } else { a(1) };
                    let request = DelegationRequest::new(s(n(1)), holder, to, x());
                    outcome(&m.delegate_active_session(h, request, OwnerLabel::new("next").unwrap()).await)
                }
                None => "no_handle".to_owned(),
            },
            "DETACH" => match handles.get(&n(1)) {
                Some(h) => outcome(&m.detach_owner(h).await),
                None => "no_handle".to_owned(),
            },
            "CLOSE" => match handles.get(&n(1)) {
                Some(h) => outcome(&m.close_owned_session(h).await),
                None => "no_handle".to_owned(),
            },
            "CHECK" => match handles.get(&n(1)) {
                Some(h) => match m.check_ingress(&h.capability, &boundary) {
                    Ok(()) => "OK".to_owned(),
                    Err(e) => e.kind().to_owned(),
                },
                None => "no_handle".to_owned(),
            },
            "OWN" => {
                let own = (0..n(1))
                    .filter(|i| {
                        handles.get(i).is_some_and(|h| m.check_ingress(&h.capability, &boundary).is_ok())
                    })
                    .count();
                let listed = (0..n(1))
                    .filter(|i| {
                        m.live_owner(&s(*i)).is_some_and(|o| o.owner.as_str() == format!("w-{}", p[2]))
                    })
                    .count();
                format!("{own} {listed}")
            }
            "NOTICES" => {
                while notices.try_recv().is_ok() {
                    noticed += 1;
                }
                noticed.to_string()
            }
            "QUIT" => break,
            other => format!("unknown command {other}"),
        };
        println!("{reply}");
        std::io::stdout().flush().unwrap();
    }
    m.shutdown().await.unwrap();
}

struct Worker {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
}

impl Worker {
    fn spawn(endpoints: &str, prefix: &str, node: &str, ttl_secs: u64) -> Self {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "owner_worker", "--nocapture", "--test-threads", "1"])
            .env(WORKER, format!("{endpoints};{prefix};{node};{ttl_secs}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let w = Self { child, stdin, lines };
        assert_eq!(w.next(Duration::from_secs(30)), "READY", "the worker did not open its manager");
        w
    }

    /// The next line the worker printed that is an answer (libtest's own lines skipped).
    fn next(&self, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.lines.recv_timeout(left).expect("the worker did not answer in time");
            // libtest prints `test owner_worker ... ` with no newline before the first answer.
            let line = match line.split_once(" ... ") {
                Some((test, rest)) if test.starts_with("test ") => rest.to_owned(),
                _ => line,
            };
            let noise = line.starts_with("running ") || line.is_empty();
            if !noise {
                return line;
            }
        }
    }

    fn send(&mut self, command: &str) {
        writeln!(self.stdin, "{command}").unwrap();
        self.stdin.flush().unwrap();
    }

    fn ask(&mut self, command: &str) -> String {
        self.send(command);
        self.next(Duration::from_secs(30))
    }

    fn signal(&self, sig: &str) {
        let status = Command::new("kill").args([sig, &self.child.id().to_string()]).status().unwrap();
        assert!(status.success(), "kill {sig} failed");
    }

    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The node owning each session with a record under `prefix` (linearizable read).
async fn registry(client: &mut etcd_client::Client, prefix: &str) -> HashMap<String, String> {
    let response =
        client.get(format!("{prefix}/o/"), Some(etcd_client::GetOptions::new().with_prefix())).await.unwrap();
    response
        .kvs()
        .iter()
        .map(|kv| {
            // The record names its node in clear text: enough to tell the two apart.
            let value = String::from_utf8_lossy(kv.value()).into_owned();
            let node = ["node-x", "node-y"].into_iter().find(|n| value.contains(n)).unwrap_or("?").to_owned();
            (kv.key_str().unwrap().to_owned(), node)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_attach_the_same_sessions_at_once() {
    if std::env::var(WORKER).is_ok() {
        return;
    }
    let etcd = EtcdCluster::start(1);
    let endpoints = etcd.endpoints().join(",");
    let mut px = Worker::spawn(&endpoints, "/p-race", "node-x", 5);
    let mut py = Worker::spawn(&endpoints, "/p-race", "node-y", 5);
    assert_eq!(px.ask("SETUP 32"), "OK");
    assert_eq!(py.ask("SYNC"), "OK");
    // Both at once: the commands are written before either answer is read.
    px.send("ATTACH 0 32");
    py.send("ATTACH 0 32");
    let rx: Vec<String> = px.next(Duration::from_secs(60)).split(' ').map(str::to_owned).collect();
    let ry: Vec<String> = py.next(Duration::from_secs(60)).split(' ').map(str::to_owned).collect();
    assert_eq!((rx.len(), ry.len()), (32, 32));
    let mut wins = (0, 0);
    for i in 0..32 {
        match (rx[i].as_str(), ry[i].as_str()) {
            ("OK", "already_live@node-x") => wins.0 += 1,
            ("already_live@node-y", "OK") => wins.1 += 1,
            other => {
                panic!("session {i}: exactly one attach must win, the other naming the winner: {other:?}")
            }
        }
    }
    let mut client = etcd_client::Client::connect(etcd.endpoints(), None).await.unwrap();
    let records = registry(&mut client, "/p-race").await;
    assert_eq!(records.len(), 32);
    assert_eq!(records.values().filter(|n| *n == "node-x").count(), wins.0);
    println!("two processes attaching 32 sessions at once: node-x won {}, node-y won {}", wins.0, wins.1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_paused_past_its_lease_has_every_write_refused_when_it_wakes() {
    if std::env::var(WORKER).is_ok() {
        return;
    }
    let etcd = EtcdCluster::start(1);
    let endpoints = etcd.endpoints().join(",");
    let mut px = Worker::spawn(&endpoints, "/p-pause", "node-x", 1);
    let mut py = Worker::spawn(&endpoints, "/p-pause", "node-y", 5);
    assert_eq!(px.ask("SETUP 4"), "OK");
    assert_eq!(px.ask("ATTACH 0 4"), "OK OK OK OK");
    assert_eq!(px.ask("OWN 4"), "4 4");
    assert_eq!(py.ask("SYNC"), "OK");
    assert_eq!(py.ask("ATTACH 0 1"), "already_live@node-x");
    px.signal("-STOP");
    let paused = Instant::now();
    // Node y attaches every session once node x's lease has expired in etcd.
    let mut taken = 0;
    for i in 0..4 {
        loop {
            assert!(paused.elapsed() < Duration::from_secs(20), "node x's sessions never became attachable");
            if py.ask(&format!("ATTACH {i} {}", i + 1)) == "OK" {
                taken += 1;
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    assert_eq!(taken, 4);
    let attachable_after = paused.elapsed();
    px.signal("-CONT");
    let woke = Instant::now();
    // Every write the woken node attempts on those sessions is refused.
    let handoff = px.ask("HANDOFF 0");
    let detach = px.ask("DETACH 1");
    let close = px.ask("CLOSE 2");
    let check = px.ask("CHECK 3");
    for (what, answer) in
        [("handoff", &handoff), ("detach", &detach), ("close", &close), ("ingress check", &check)]
    {
        assert_ne!(answer, "OK", "the woken node's {what} was not refused");
    }
    // Its local view drops them within the bound: the lease's own deadline for checks (at
    // once), the registry's watch for the table (a round trip; 2 s allowed here).
    let mut own = px.ask("OWN 4");
    while own != "0 0" {
        assert!(woke.elapsed() < Duration::from_secs(2), "the woken node still lists its owners: {own}");
        std::thread::sleep(Duration::from_millis(20));
        own = px.ask("OWN 4");
    }
    let dropped_after = woke.elapsed();
    assert_ne!(px.ask("NOTICES"), "0", "the embedder is told its owners are gone");
    // Node y's owners are intact, and nothing the woken node tried was journaled.
    assert_eq!(py.ask("OWN 4"), "4 4");
    assert_eq!(py.ask("SYNC"), "OK");
    let mut client = etcd_client::Client::connect(etcd.endpoints(), None).await.unwrap();
    let records = registry(&mut client, "/p-pause").await;
    assert!(records.len() == 4 && records.values().all(|n| n == "node-y"), "{records:?}");
    println!(
        "SIGSTOP past a 1 s lease: attachable elsewhere after {attachable_after:?}; woken node refused \
         handoff ({handoff}), detach ({detach}), close ({close}), ingress ({check}); its view dropped them {dropped_after:?} after waking"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_process_frees_its_sessions_after_the_ttl_and_never_two_owners() {
    if std::env::var(WORKER).is_ok() {
        return;
    }
    let etcd = EtcdCluster::start(1);
    let endpoints = etcd.endpoints().join(",");
    let mut px = Worker::spawn(&endpoints, "/p-kill", "node-x", 1);
    let mut py = Worker::spawn(&endpoints, "/p-kill", "node-y", 5);
    const N: u128 = 8;
    assert_eq!(px.ask(&format!("SETUP {N}")), "OK");
    assert_eq!(px.ask(&format!("ATTACH 0 {N}")).matches("OK").count(), N as usize);
    assert_eq!(py.ask("SYNC"), "OK");
    let mut client = etcd_client::Client::connect(etcd.endpoints(), None).await.unwrap();
    px.kill9();
    let killed = Instant::now();
    let mut freed_after: Vec<Duration> = Vec::new();
    let mut pending: Vec<u128> = (0..N).collect();
    let mut seen_y: std::collections::HashSet<String> = Default::default();
    while !pending.is_empty() {
        assert!(killed.elapsed() < Duration::from_secs(20), "sessions never became attachable");
        let mut still = Vec::new();
        for i in pending {
            if py.ask(&format!("ATTACH {i} {}", i + 1)) == "OK" {
                freed_after.push(killed.elapsed());
            } else {
                still.push(i);
            }
            // After every step: one record per session at most (one key each), and a session
            // once owned by node y never shows node x again.
            let records = registry(&mut client, "/p-kill").await;
            for (key, node) in &records {
                if node == "node-y" {
                    seen_y.insert(key.clone());
                } else {
                    assert!(!seen_y.contains(key), "{key} went back to the dead node");
                }
            }
        }
        pending = still;
        std::thread::sleep(Duration::from_millis(20));
    }
    freed_after.sort();
    // The last renewal may have been up to a third of the TTL before the kill; etcd's
    // expiry is the TTL after it.
    assert!(
        freed_after[0] >= Duration::from_millis(600),
        "attachable before the 1 s lease lapsed: {freed_after:?}"
    );
    assert_eq!(py.ask(&format!("OWN {N}")), format!("{N} {N}"));
    println!(
        "kill -9 with a 1 s lease: sessions attachable elsewhere after {:?} (first) .. {:?} (last)",
        freed_after[0],
        freed_after[freed_after.len() - 1]
    );
}
