//! [`EtcdOwners`]: the live-owner registry on etcd, next to the journal it guards.
//!
//! One key per live session (`{prefix}/o/{session}`), put with this node's lease. Every
//! write compares the records it changes ([`OwnerExpect`]) and, when it carries facts,
//! the journal head too, in the journal's own commit transaction: a live handoff's
//! delegation fact and its new owner record land together or not at all.
//!
//! The lease is granted at start and renewed in the background every third of its TTL.
//! This node counts it valid only until *the send time of the last renewal etcd
//! acknowledged plus the TTL*: etcd started that TTL when it received the renewal, which
//! was later, so the node stops counting on its lease before etcd can expire it (a paused
//! process wakes up already knowing). A lease that lapses is reported
//! ([`OwnerEvent::LeaseLost`]), revoked (best effort, so its records go at once rather
//! than at etcd's expiry), and replaced by a fresh one.
//!
//! The deadline is measured on the monotonic clock, which keeps running while a process is
//! stopped but not while the whole machine is suspended: after a suspend, the node may count
//! a lapsed lease as valid until its next renewal round (a third of the TTL) finds out.
//! Writes are safe regardless (they are fenced by the compare); only local ingress checks
//! can be wrong in that window.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use etcd_client::{
    Client, Compare, CompareOp, EventType, GetOptions, GetResponse, PutOptions, TxnOp, WatchOptions,
};
use reconf_core::SessionId;
use reconf_effects::{
    JournalError, OwnerEntry, OwnerEvent, OwnerExpect, OwnerRegistryEffects, OwnerTxn, OwnerTxnDone,
    OwnerTxnError, OwnerWrite,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::journal::{storage, EtcdJournal, Guard, Guarded};
use crate::layout::Keys;

/// The lease as this node sees it.
struct Lease {
    /// etcd's lease id (0: none).
    id: AtomicI64,
    /// Nanoseconds after `base` until which the lease is certainly held.
    valid_until: AtomicU64,
    base: Instant,
}

impl Lease {
    fn nanos(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.base).as_nanos()).unwrap_or(u64::MAX)
    }

    fn valid(&self) -> bool {
        self.id.load(Ordering::Acquire) != 0
            && self.nanos(Instant::now()) < self.valid_until.load(Ordering::Acquire)
    }

    /// The lease id, if the lease is valid now.
    fn current(&self) -> Option<i64> {
        self.valid().then(|| self.id.load(Ordering::Acquire))
    }

    fn extend(&self, sent: Instant, ttl: Duration) {
        self.valid_until.fetch_max(self.nanos(sent + ttl), Ordering::AcqRel);
    }

    fn set(&self, id: i64, sent: Instant, ttl: Duration) {
        self.valid_until.store(self.nanos(sent + ttl), Ordering::Release);
        self.id.store(id, Ordering::Release);
    }

    fn deadline(&self) -> Instant {
        self.base + Duration::from_nanos(self.valid_until.load(Ordering::Acquire))
    }

    fn drop_lease(&self) -> i64 {
        self.valid_until.store(0, Ordering::Release);
        self.id.swap(0, Ordering::AcqRel)
    }
}

/// The live-owner registry of one etcd journal, for one node.
///
/// ```no_run
/// use std::sync::Arc;
/// use std::time::Duration;
/// use reconf_effects::OwnerRegistryEffects;
/// use reconf_store_etcd::{EtcdJournal, EtcdJournalOptions, EtcdOwners};
/// # async fn run() -> Result<(), reconf_effects::JournalError> {
/// let options = EtcdJournalOptions::new(["http://127.0.0.1:2379"]).node("node-a").lease_ttl(Duration::from_secs(5));
/// let journal = Arc::new(EtcdJournal::connect(options).await?);
/// let owners = EtcdOwners::start(Arc::clone(&journal)).await?;
/// assert!(owners.lease_valid());
/// # Ok(()) }
/// ```
pub struct EtcdOwners {
    journal: Arc<EtcdJournal>,
    keys: Keys,
    node: String,
    lease: Arc<Lease>,
    events: Mutex<Option<mpsc::UnboundedReceiver<OwnerEvent>>>,
    tasks: Vec<JoinHandle<()>>,
    counters: Arc<OwnerCounters>,
}

#[derive(Default)]
struct OwnerCounters {
    leases_granted: AtomicU64,
    leases_lost: AtomicU64,
    renewals: AtomicU64,
}

/// What the registry has done, for an operator.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct EtcdOwnersStats {
    /// Leases granted (1 at start, one more after each loss).
    pub leases_granted: u64,
    /// Leases lost (not renewed in time, or expired in etcd).
    pub leases_lost: u64,
    /// Renewals etcd acknowledged.
    pub renewals: u64,
}

impl std::fmt::Debug for EtcdOwners {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdOwners").field("node", &self.node).finish_non_exhaustive()
    }
}

impl Drop for EtcdOwners {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

async fn timed<T, E: std::fmt::Display>(
    limit: Duration,
    what: &str,
    call: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, JournalError> {
    match tokio::time::timeout(limit, call).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(storage(what, e)),
        Err(_) => Err(storage(what, format!("no answer within {limit:?}"))),
    }
}

impl EtcdOwners {
    /// Grants this node's lease (waiting until etcd grants it, up to the connect timeout)
    /// and starts renewing it and following the registry. The node's name and the lease's
    /// TTL come from the journal's options ([`crate::EtcdJournalOptions::node`],
    /// [`crate::EtcdJournalOptions::lease_ttl`]).
    ///
    /// # Errors
    /// [`JournalError::Storage`] when no lease is granted in time.
    pub async fn start(journal: Arc<EtcdJournal>) -> Result<Self, JournalError> {
        let options = journal.options().clone();
        let client = journal.client().clone();
        let keys = journal.keys().clone();
        let lease =
            Arc::new(Lease { id: AtomicI64::new(0), valid_until: AtomicU64::new(0), base: Instant::now() });
        let counters = Arc::new(OwnerCounters::default());
        let deadline = Instant::now() + options.connect_timeout;
        loop {
            match grant(&client, &lease, options.lease_ttl, options.request_timeout).await {
                Ok(()) => break,
                Err(e) if Instant::now() >= deadline => return Err(e),
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        counters.leases_granted.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::unbounded_channel();
        let mut owners = Self {
            journal,
            keys: keys.clone(),
            node: options.node.clone(),
            lease: Arc::clone(&lease),
            events: Mutex::new(Some(rx)),
            tasks: Vec::new(),
            counters: Arc::clone(&counters),
        };
        let (_, revision) = owners.list().await?;
        owners.tasks.push(tokio::spawn(keep_lease(
            client.clone(),
            Arc::clone(&lease),
            options.lease_ttl,
            options.request_timeout,
            tx.clone(),
            Arc::clone(&counters),
        )));
        owners.tasks.push(tokio::spawn(follow_owners(client, keys, revision + 1, tx)));
        tracing::info!(name: "reconf.owners.started", node = %owners.node, ttl_ms = options.lease_ttl.as_millis() as u64, "live-owner lease granted");
        Ok(owners)
    }

    /// What the registry has counted.
    pub fn stats(&self) -> EtcdOwnersStats {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        EtcdOwnersStats {
            leases_granted: get(&self.counters.leases_granted),
            leases_lost: get(&self.counters.leases_lost),
            renewals: get(&self.counters.renewals),
        }
    }

    /// The journal it shares a cluster (and transactions) with.
    pub fn journal(&self) -> &Arc<EtcdJournal> {
        &self.journal
    }

    /// When this node stops counting on its lease, if it holds one (the lease is renewed
    /// long before, unless renewals fail).
    pub fn lease_deadline(&self) -> Option<Instant> {
        self.lease.current().map(|_| self.lease.deadline())
    }

    /// The compares, writes and failure reads of `writes`.
    fn guard(&self, writes: &[OwnerWrite]) -> Result<Guard, OwnerTxnError> {
        let mut guard = Guard::default();
        let lease = if writes.iter().any(|w| matches!(w, OwnerWrite::Put { .. })) {
            Some(self.lease.current().ok_or(OwnerTxnError::LeaseLost)?)
        } else {
            None
        };
        for write in writes {
            let key = self.keys.owner(&write.session());
            let expect = expectation(write);
            match expect {
                OwnerExpect::Absent => {
                    guard.compares.push(Compare::version(key.clone(), CompareOp::Equal, 0))
                }
                OwnerExpect::Is(value) => {
                    guard.compares.push(Compare::value(key.clone(), CompareOp::Equal, value.clone()))
                }
                OwnerExpect::Anything => {}
            }
            if compared(write) {
                guard.reads.push(TxnOp::get(key.clone(), None));
            }
            guard.ops.push(match write {
                OwnerWrite::Put { value, .. } => {
                    let options = lease.map(|id| PutOptions::new().with_lease(id));
                    TxnOp::put(key, value.clone(), options)
                }
                OwnerWrite::Delete { .. } => TxnOp::delete(key, None),
            });
        }
        Ok(guard)
    }

    /// The compared sessions' records as a failed guard's reads found them.
    fn found(&self, writes: &[OwnerWrite], reads: &[GetResponse]) -> Vec<(SessionId, Option<OwnerEntry>)> {
        writes
            .iter()
            .filter(|w| compared(w))
            .zip(reads)
            .map(|(w, r)| {
                (
                    w.session(),
                    r.kvs().first().and_then(|kv| self.entry(kv.key(), kv.value(), kv.mod_revision())),
                )
            })
            .collect()
    }

    fn entry(&self, key: &[u8], value: &[u8], revision: i64) -> Option<OwnerEntry> {
        Some(OwnerEntry { session: self.keys.owner_session(key)?, value: value.to_vec(), revision })
    }

    /// Whether every write of `writes` is visible now (a lost write that landed): each put
    /// record is there (its value carries a fresh token, so it is this write's), each
    /// deleted one is gone. Returns the latest revision seen.
    async fn visible(&self, writes: &[OwnerWrite]) -> Result<Option<i64>, JournalError> {
        let mut revision = 0;
        for write in writes {
            let response =
                self.journal.timed_get("owner read", self.keys.owner(&write.session()), None).await?;
            let kv = response.kvs().first();
            let there = match (write, kv) {
                (OwnerWrite::Put { value, .. }, Some(kv)) => {
                    revision = revision.max(kv.mod_revision());
                    kv.value() == value.as_slice()
                }
                (OwnerWrite::Put { .. }, None) => false,
                (OwnerWrite::Delete { .. }, kv) => kv.is_none(),
            };
            if !there {
                return Ok(None);
            }
            revision = revision.max(response.header().map_or(0, |h| h.revision()));
        }
        Ok(Some(revision))
    }
}

#[async_trait]
impl OwnerRegistryEffects for EtcdOwners {
    fn node(&self) -> &str {
        &self.node
    }

    fn lease_valid(&self) -> bool {
        self.lease.valid()
    }

    async fn write(&self, txn: OwnerTxn) -> Result<OwnerTxnDone, OwnerTxnError> {
        let guard = self.guard(&txn.owners)?;
        if !txn.facts.is_empty() {
            let expected = txn.head.unwrap_or(reconf_effects::ExpectedHead::Any);
            return match self.journal.commit_guarded(&txn.facts, expected, &guard).await {
                Ok((committed, revision)) => Ok(OwnerTxnDone { committed: Some(committed), revision }),
                Err(Guarded::Guard(reads)) => {
                    Err(OwnerTxnError::Fenced { found: self.found(&txn.owners, &reads) })
                }
                Err(Guarded::Journal(e)) => Err(e.into()),
                Err(Guarded::Lost(reason)) => Err(JournalError::Ambiguous { reason }.into()),
            };
        }
        if txn.owners.is_empty() {
            return Ok(OwnerTxnDone { committed: None, revision: 0 });
        }
        let deadline = Instant::now() + self.journal.options().resolve_timeout;
        let mut pause = Duration::from_millis(10);
        loop {
            match self.journal.guarded_write(txn.head, &guard).await {
                Ok(revision) => return Ok(OwnerTxnDone { committed: None, revision }),
                Err(Guarded::Guard(reads)) => {
                    return Err(OwnerTxnError::Fenced { found: self.found(&txn.owners, &reads) })
                }
                Err(Guarded::Journal(e)) => return Err(e.into()),
                Err(Guarded::Lost(reason)) => {
                    // The write can no longer land when it compared the head (that head is
                    // fenced); without a head compare a retry is safe anyway: every write
                    // compares a record carrying a fresh token, or deletes regardless.
                    // Its effect is there: it landed (a head-guarded write can no longer land
                    // later), or, for a removal, the record is gone either way.
                    if let Ok(Some(revision)) = self.visible(&txn.owners).await {
                        return Ok(OwnerTxnDone { committed: None, revision });
                    }
                    if Instant::now() + pause >= deadline {
                        return Err(JournalError::Ambiguous {
                            reason: format!("live-owner write: {reason}"),
                        }
                        .into());
                    }
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(200));
                }
            }
        }
    }

    async fn get(&self, session: SessionId) -> Result<Option<OwnerEntry>, JournalError> {
        let response = self.journal.timed_get("owner read", self.keys.owner(&session), None).await?;
        Ok(response.kvs().first().and_then(|kv| self.entry(kv.key(), kv.value(), kv.mod_revision())))
    }

    async fn list(&self) -> Result<(Vec<OwnerEntry>, i64), JournalError> {
        let response = self
            .journal
            .timed_get("owner list", self.keys.owners(), Some(GetOptions::new().with_prefix()))
            .await?;
        let entries = response
            .kvs()
            .iter()
            .filter_map(|kv| self.entry(kv.key(), kv.value(), kv.mod_revision()))
            .collect();
        Ok((entries, response.header().map_or(0, |h| h.revision())))
    }

    fn events(&self) -> Option<mpsc::UnboundedReceiver<OwnerEvent>> {
        self.events.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

fn expectation(write: &OwnerWrite) -> &OwnerExpect {
    match write {
        OwnerWrite::Put { expect, .. } | OwnerWrite::Delete { expect, .. } => expect,
    }
}

/// Whether a write compares its record (and so has a read on the failure branch).
fn compared(write: &OwnerWrite) -> bool {
    !matches!(expectation(write), OwnerExpect::Anything)
}

fn ttl_secs(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_secs().max(1)).unwrap_or(i64::MAX)
}

async fn grant(client: &Client, lease: &Lease, ttl: Duration, limit: Duration) -> Result<(), JournalError> {
    let sent = Instant::now();
    let mut leases = client.lease_client();
    let granted = timed(limit, "lease grant", leases.grant(ttl_secs(ttl), None)).await?;
    let ttl = Duration::from_secs(u64::try_from(granted.ttl()).unwrap_or(0));
    lease.set(granted.id(), sent, ttl);
    Ok(())
}

/// Renews the lease until it lapses, then reports it, revokes it and takes a new one.
async fn keep_lease(
    client: Client,
    lease: Arc<Lease>,
    ttl: Duration,
    limit: Duration,
    events: mpsc::UnboundedSender<OwnerEvent>,
    counters: Arc<OwnerCounters>,
) {
    loop {
        let reason = renew(&client, &lease, ttl, limit, &counters).await;
        let id = lease.drop_lease();
        counters.leases_lost.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(name: "reconf.owners.lease_lost", lease = id, reason = %reason, "live-owner lease lost");
        if events.send(OwnerEvent::LeaseLost { reason }).is_err() {
            return;
        }
        // Its records go now rather than at etcd's expiry; if etcd has expired it already,
        // this fails, and that is fine.
        let mut leases = client.lease_client();
        let _ = timed(limit, "lease revoke", leases.revoke(id)).await;
        while grant(&client, &lease, ttl, limit).await.is_err() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        counters.leases_granted.fetch_add(1, Ordering::Relaxed);
        tracing::info!(name: "reconf.owners.lease_granted", lease = lease.id.load(Ordering::Acquire));
        if events.send(OwnerEvent::LeaseGranted).is_err() {
            return;
        }
    }
}

/// Renews the current lease every third of its TTL (and again at once, every 100 ms, after
/// a renewal that failed: a leader election or a member that went down must not cost a
/// lease whose TTL outlasts it); returns why it lapsed.
async fn renew(
    client: &Client,
    lease: &Lease,
    ttl: Duration,
    limit: Duration,
    counters: &OwnerCounters,
) -> String {
    let id = lease.id.load(Ordering::Acquire);
    let every = (ttl / 3).max(Duration::from_millis(100));
    let retry = Duration::from_millis(100);
    let mut wait = every;
    let mut stream = None;
    loop {
        tokio::time::sleep(wait).await;
        // Checked after the sleep: a process that was paused past its TTL learns it here,
        // before anything else it does relies on the lease.
        if !lease.valid() {
            return format!("not renewed within the {ttl:?} TTL");
        }
        wait = retry;
        let sent = Instant::now();
        let remaining = lease.deadline().saturating_duration_since(sent).min(limit);
        // Opening the stream is itself a renewal (the client reads its answer and fails
        // the call when etcd no longer knows the lease); an open one is asked for the next.
        let Some((mut keeper, mut responses)) = stream.take() else {
            let mut leases = client.lease_client();
            match tokio::time::timeout(remaining, leases.keep_alive(id)).await {
                Ok(Ok(pair)) => {
                    lease.extend(sent, ttl);
                    counters.renewals.fetch_add(1, Ordering::Relaxed);
                    stream = Some(pair);
                    wait = every;
                }
                Ok(Err(etcd_client::Error::LeaseKeepAliveError(e))) => {
                    return format!("etcd refused the renewal: {e}")
                }
                _ => {}
            }
            continue;
        };
        if keeper.keep_alive().await.is_err() {
            continue;
        }
        match tokio::time::timeout(remaining, responses.message()).await {
            Ok(Ok(Some(response))) if response.ttl() > 0 => {
                lease.extend(sent, Duration::from_secs(u64::try_from(response.ttl()).unwrap_or(0)));
                counters.renewals.fetch_add(1, Ordering::Relaxed);
                stream = Some((keeper, responses));
                wait = every;
            }
            Ok(Ok(Some(_))) => return "etcd expired the lease".to_owned(),
            // A broken stream is opened again on the next round.
            _ => {}
        }
    }
}

/// Follows the registry's keys with an etcd watch, resumed after disconnects; after a
/// compaction, every record is read again and sent as one [`OwnerEvent::Reset`].
async fn follow_owners(
    client: Client,
    keys: Keys,
    mut next_revision: i64,
    events: mpsc::UnboundedSender<OwnerEvent>,
) {
    let mut pause = Duration::from_millis(50);
    loop {
        let mut watcher = client.watch_client();
        let options = WatchOptions::new().with_prefix().with_start_revision(next_revision);
        if let Ok(mut stream) = watcher.watch(keys.owners(), Some(options)).await {
            while let Ok(Some(response)) = stream.message().await {
                pause = Duration::from_millis(50);
                if response.compact_revision() > 0 || response.canceled() {
                    let mut kv = client.kv_client();
                    let Ok(all) = kv.get(keys.owners(), Some(GetOptions::new().with_prefix())).await else {
                        break;
                    };
                    let revision = all.header().map_or(next_revision, |h| h.revision());
                    let entries = all
                        .kvs()
                        .iter()
                        .filter_map(|kv| {
                            Some(OwnerEntry {
                                session: keys.owner_session(kv.key())?,
                                value: kv.value().to_vec(),
                                revision: kv.mod_revision(),
                            })
                        })
                        .collect();
                    if events.send(OwnerEvent::Reset { entries, revision }).is_err() {
                        return;
                    }
                    next_revision = revision + 1;
                    break;
                }
                for event in response.events() {
                    let Some(kv) = event.kv() else { continue };
                    next_revision = next_revision.max(kv.mod_revision() + 1);
                    let Some(session) = keys.owner_session(kv.key()) else { continue };
                    let sent = match event.event_type() {
                        EventType::Put => events.send(OwnerEvent::Put(OwnerEntry {
                            session,
                            value: kv.value().to_vec(),
                            revision: kv.mod_revision(),
                        })),
                        EventType::Delete => {
                            events.send(OwnerEvent::Deleted { session, revision: kv.mod_revision() })
                        }
                    };
                    if sent.is_err() {
                        return;
                    }
                }
            }
        }
        if events.is_closed() {
            return;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(1));
    }
}
