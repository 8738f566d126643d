//! [`EtcdJournalOptions`]: where the journal is and how long each step may take.

use std::time::Duration;

/// How to reach the journal and how long its operations may take.
///
/// ```
/// use std::time::Duration;
/// use reconf_store_etcd::EtcdJournalOptions;
/// let options = EtcdJournalOptions::new(["http://127.0.0.1:2379"])
///     .prefix("/reconf/prod")
///     .request_timeout(Duration::from_secs(2));
/// assert_eq!(options.key_prefix(), "/reconf/prod");
/// ```
#[derive(Debug, Clone)]
pub struct EtcdJournalOptions {
    pub(crate) endpoints: Vec<String>,
    pub(crate) prefix: String,
    pub(crate) connect_timeout: Duration,
    pub(crate) request_timeout: Duration,
    pub(crate) resolve_timeout: Duration,
    pub(crate) max_commit_bytes: usize,
    pub(crate) snapshots_to_keep: usize,
    pub(crate) node: String,
    pub(crate) lease_ttl: Duration,
}

impl EtcdJournalOptions {
    /// Options for the cluster at `endpoints` (`http://host:port`), with the defaults:
    /// prefix `/reconf`, 5 s to connect, 5 s per request, 30 s to resolve an ambiguous
    /// commit, commits of at most 1 MiB, two snapshots kept; a node name made of the process
    /// id and a random suffix, and a 10 s live-owner lease.
    pub fn new<S: Into<String>>(endpoints: impl IntoIterator<Item = S>) -> Self {
        Self {
            endpoints: endpoints.into_iter().map(Into::into).collect(),
            prefix: "/reconf".to_owned(),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(5),
            resolve_timeout: Duration::from_secs(30),
            max_commit_bytes: 1 << 20,
            snapshots_to_keep: 2,
            node: format!("node-{}-{:04x}", std::process::id(), rand::random::<u16>()),
            lease_ttl: Duration::from_secs(10),
        }
    }

    /// The key prefix every key of this journal lives under (several journals can share a
    /// cluster under different prefixes).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The key prefix.
    pub fn key_prefix(&self) -> &str {
        &self.prefix
    }

    /// The endpoints.
    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    /// How long connecting may take.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long one etcd request may take before it counts as lost.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// How long a commit whose reply was lost keeps trying to learn its outcome before it
    /// reports [`reconf_effects::JournalError::Ambiguous`].
    pub fn resolve_timeout(mut self, timeout: Duration) -> Self {
        self.resolve_timeout = timeout;
        self
    }

    /// The largest commit in encoded bytes; larger ones are refused whole (never split).
    /// Keep it under the cluster's `--max-request-bytes` (1.5 MiB by default).
    pub fn max_commit_bytes(mut self, bytes: usize) -> Self {
        self.max_commit_bytes = bytes;
        self
    }

    /// How many snapshots to keep (at least 1).
    pub fn snapshots_to_keep(mut self, n: usize) -> Self {
        self.snapshots_to_keep = n.max(1);
        self
    }

    /// The name of this node in the live-owner registry (what `AlreadyLive` errors on
    /// other nodes name).
    pub fn node(mut self, name: impl Into<String>) -> Self {
        self.node = name.into();
        self
    }

    /// The node's name.
    pub fn node_name(&self) -> &str {
        &self.node
    }

    /// The live-owner lease's time to live, in whole seconds (at least 1): how long after a
    /// node stops renewing its live owners expire and their sessions become attachable
    /// elsewhere.
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = Duration::from_secs(ttl.as_secs().max(1));
        self
    }
}
