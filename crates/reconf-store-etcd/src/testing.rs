//! Real etcd servers for tests (feature `testing`): single members and loopback clusters,
//! each in its own temporary directory on free 127.0.0.1 ports, stopped by PID on drop.
//!
//! When `etcd` is not installed, [`EtcdCluster::start`] fails with one line saying how to
//! install it; tests must not skip silently.

// Test support: a server that cannot start is reported by panicking, as a test expects.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The line printed when `etcd` is missing.
pub const MISSING_ETCD: &str =
    "etcd is not installed: run `cargo xtask setup test` (or `sudo apt-get install -y etcd-server`), then run the tests again";

struct Member {
    name: String,
    client_port: u16,
    peer_port: u16,
    child: Option<Child>,
}

/// A running etcd cluster of one or more members on loopback.
pub struct EtcdCluster {
    dir: tempfile::TempDir,
    members: Vec<Member>,
    token: String,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or_else(|e| {
        panic!("no free loopback port for etcd: {e}");
    })
}

fn etcd_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("ETCD_BIN") {
        return PathBuf::from(path);
    }
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join("etcd"))
        .find(|p| p.is_file());
    found.unwrap_or_else(|| panic!("{MISSING_ETCD}"))
}

impl EtcdCluster {
    /// Starts `members` members (1 or 3, typically) and waits until every one answers.
    ///
    /// # Panics
    /// When `etcd` is missing ([`MISSING_ETCD`]) or the cluster does not come up in 30 s.
    pub fn start(members: usize) -> Self {
        let binary = etcd_binary();
        let dir = tempfile::tempdir().expect("a temporary directory for etcd");
        let members: Vec<Member> = (0..members)
            .map(|i| Member {
                name: format!("m{i}"),
                client_port: free_port(),
                peer_port: free_port(),
                child: None,
            })
            .collect();
        let token = format!("reconf-test-{}", std::process::id());
        let mut cluster = Self { dir, members, token };
        for i in 0..cluster.members.len() {
            cluster.spawn(i, &binary, "new");
        }
        cluster.wait_ready();
        cluster
    }

    fn initial_cluster(&self) -> String {
        self.members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer_port))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn spawn(&mut self, i: usize, binary: &PathBuf, state: &str) {
        let initial = self.initial_cluster();
        let m = &self.members[i];
        let data = self.dir.path().join(&m.name);
        let log =
            std::fs::File::create(self.dir.path().join(format!("{}.log", m.name))).expect("etcd log file");
        let client = format!("http://127.0.0.1:{}", m.client_port);
        let peer = format!("http://127.0.0.1:{}", m.peer_port);
        let child = Command::new(binary)
            .arg("--name")
            .arg(&m.name)
            .arg("--data-dir")
            .arg(&data)
            .args(["--listen-client-urls", &client, "--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer, "--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &initial, "--initial-cluster-state", state])
            .args(["--initial-cluster-token", &self.token])
            .args(["--heartbeat-interval", "50", "--election-timeout", "500"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("etcd log file"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e} ({MISSING_ETCD})", binary.display()));
        self.members[i].child = Some(child);
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        for m in self.members.iter().filter(|m| m.child.is_some()) {
            let addr = SocketAddr::from(([127, 0, 0, 1], m.client_port));
            while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
                assert!(
                    Instant::now() < deadline,
                    "etcd member {} did not listen within 30 s: {}",
                    m.name,
                    self.log(m)
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        // Listening is not serving: wait until some member reports a leader, on a thread of
        // its own so this works from inside a test's runtime too.
        let endpoints = self.endpoints();
        let ready = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            runtime.block_on(async {
                while Instant::now() < deadline {
                    if leader_among(&endpoints).await.is_some() {
                        return Some(());
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                None
            })
        });
        let led = ready.join().ok().flatten();
        assert!(
            led.is_some(),
            "the etcd cluster elected no leader within 30 s: {}",
            self.log(&self.members[0])
        );
    }

    fn log(&self, m: &Member) -> String {
        let text =
            std::fs::read_to_string(self.dir.path().join(format!("{}.log", m.name))).unwrap_or_default();
        text.lines().rev().take(5).collect::<Vec<_>>().join(" | ")
    }

    /// The client URLs of the members that are running.
    pub fn endpoints(&self) -> Vec<String> {
        self.members
            .iter()
            .filter(|m| m.child.is_some())
            .map(|m| format!("http://127.0.0.1:{}", m.client_port))
            .collect()
    }

    /// The client URLs of every member, running or not (what a client is configured with).
    pub fn all_endpoints(&self) -> Vec<String> {
        self.members.iter().map(|m| format!("http://127.0.0.1:{}", m.client_port)).collect()
    }

    /// The client URL of member `i`.
    pub fn endpoint(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.members[i].client_port)
    }

    /// The PID of member `i`, if it runs.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.members[i].child.as_ref().map(Child::id)
    }

    /// Kills member `i` with SIGKILL and reaps it.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.members[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts member `i` again on its data directory and waits until it listens.
    pub fn restart(&mut self, i: usize) {
        self.kill(i);
        let binary = etcd_binary();
        self.spawn(i, &binary, "existing");
        self.wait_ready();
    }

    /// The number of members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Always false: a cluster has at least one member.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The index of the member that leads, asked of every running member (`None` while
    /// there is no leader).
    pub async fn leader(&self) -> Option<usize> {
        let all = self.all_endpoints();
        let running = self.endpoints();
        let leader = leader_among(&running).await?;
        all.iter().position(|e| *e == leader)
    }

    /// Waits (up to 20 s) for a leader and returns its index.
    ///
    /// # Panics
    /// When no leader is elected in time.
    pub async fn wait_for_leader(&self) -> usize {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(i) = self.leader().await {
                return i;
            }
            assert!(Instant::now() < deadline, "the etcd cluster elected no leader within 20 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The endpoint, among `endpoints`, of the member that says it leads.
async fn leader_among(endpoints: &[String]) -> Option<String> {
    for url in endpoints {
        let options = etcd_client::ConnectOptions::new()
            .with_connect_timeout(Duration::from_millis(500))
            .with_timeout(Duration::from_millis(500));
        let Ok(mut client) = etcd_client::Client::connect([url.clone()], Some(options)).await else {
            continue;
        };
        let Ok(status) = client.status().await else { continue };
        let me = status.header().map(|h| h.member_id());
        if status.leader() != 0 && Some(status.leader()) == me {
            return Some(url.clone());
        }
    }
    None
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }
}
