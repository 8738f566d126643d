//! Live owners across nodes on one etcd: attaching races, a live handoff between nodes in
//! one transaction, a node whose record was taken has every write refused, a node that
//! stops renewing frees its sessions after the TTL, and an etcd leader change while leases
//! are renewed and handoffs run loses nothing; and, through a registry wrapper that
//! injects faults, the retry paths: moved heads, stale compares, a lapsed lease.
#![cfg(feature = "etcd")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use reconf_core::{Change, LinkBoundary};
use reconf_effects::JournalEffects;
use reconf_runtime::crates::store_etcd::testing::EtcdCluster;
use reconf_runtime::crates::store_etcd::{EtcdJournal, EtcdJournalOptions};
use reconf_runtime::*;

fn a(n: u128) -> AuthorityId {
    AuthorityId::from_label(&format!("authority-{n}"))
}
fn s(n: u128) -> SessionId {
    SessionId::from_u128(0x0e00 + n)
}
fn x() -> BundleId {
    BundleId::new("x").unwrap()
}
fn label(l: &str) -> OwnerLabel {
    OwnerLabel::new(l).unwrap()
}

fn options(endpoints: Vec<String>, prefix: &str, node: &str, ttl_secs: u64) -> EtcdJournalOptions {
    EtcdJournalOptions::new(endpoints)
        .prefix(prefix)
        .node(node)
        .lease_ttl(Duration::from_secs(ttl_secs))
        .request_timeout(Duration::from_millis(1500))
        .resolve_timeout(Duration::from_secs(20))
}

async fn node(etcd: &EtcdCluster, prefix: &str, name: &str, ttl_secs: u64) -> ReconfigurationManager {
    ManagerBuilder::new()
        .etcd_journal(options(etcd.endpoints(), prefix, name, ttl_secs))
        .without_manifests()
        .open()
        .await
        .unwrap()
}

/// Registers the bundle and opens `n` sessions held by authority 0 (tolerating a second
/// node that finds them done).
async fn setup(m: &ReconfigurationManager, n: u128) {
    m.register_bundle(ComposedBundle::new(x())).await.unwrap();
    for i in 0..n {
        m.open_session(s(i), a(0), Some(x())).await.unwrap();
    }
}

/// Waits up to 10 s for `cond`.
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn raw(etcd: &EtcdCluster) -> etcd_client::Client {
    etcd_client::Client::connect(etcd.endpoints(), None).await.unwrap()
}

/// The live-owner records under `prefix`, by session, read linearizably.
async fn records(client: &mut etcd_client::Client, prefix: &str) -> Vec<(String, i64)> {
    let options = etcd_client::GetOptions::new().with_prefix();
    let response = client.get(format!("{prefix}/o/"), Some(options)).await.unwrap();
    response.kvs().iter().map(|kv| (kv.key_str().unwrap().to_owned(), kv.mod_revision())).collect()
}

fn is_already_live_on(e: &ManagerError, node: &str) -> bool {
    matches!(e, ManagerError::Ownership(OwnershipError::AlreadyLive { node: Some(n), .. }) if n.as_str() == node)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_attach_the_same_sessions_at_once_and_exactly_one_wins_each() {
    let etcd = EtcdCluster::start(1);
    let (nx, ny) = (node(&etcd, "/race", "node-x", 5).await, node(&etcd, "/race", "node-y", 5).await);
    setup(&nx, 16).await;
    ny.sync().await.unwrap();
    let boundary = LinkBoundary::for_bundle(&x());
    let mut wins = [0, 0];
    for i in 0..16 {
        let (rx, ry) = tokio::join!(
            nx.attach_owner(s(i), label("worker"), boundary.clone()),
            ny.attach_owner(s(i), label("worker"), boundary.clone())
        );
        match (rx, ry) {
            (Ok(_), Err(e)) => {
                assert!(is_already_live_on(&e, "node-x"), "the loser names the winner's node: {e}");
                wins[0] += 1;
            }
            (Err(e), Ok(_)) => {
                assert!(is_already_live_on(&e, "node-x") || is_already_live_on(&e, "node-y"), "{e}");
                assert!(is_already_live_on(&e, "node-y"), "the loser names the winner's node: {e}");
                wins[1] += 1;
            }
            (a, b) => {
                panic!("session {i}: exactly one attach must win, got {:?} and {:?}", a.is_ok(), b.is_ok())
            }
        }
    }
    assert_eq!(wins[0] + wins[1], 16);
    let mut client = raw(&etcd).await;
    assert_eq!(records(&mut client, "/race").await.len(), 16, "one record per session");
    // Each node sees the other's owners too (the registry's watch), with their node.
    eventually("both nodes to see all 16 owners", || {
        nx.stats().live_sessions == 16 && ny.stats().live_sessions == 16
    })
    .await;
}

/// A node that opens after others attached owners sees them the moment `open` returns
/// (read from the registry before its actor starts), not only once they next change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_opens_late_sees_the_owners_already_attached() {
    let etcd = EtcdCluster::start(1);
    let nx = node(&etcd, "/late", "node-x", 5).await;
    setup(&nx, 3).await;
    let boundary = LinkBoundary::for_bundle(&x());
    let mut handles = Vec::new();
    for i in 0..3 {
        handles.push(nx.attach_owner(s(i), label("worker"), boundary.clone()).await.unwrap());
    }
    let ny = node(&etcd, "/late", "node-y", 5).await;
    assert_eq!(ny.node().map(OwnerLabel::as_str), Some("node-y"));
    assert_eq!(ny.stats().live_sessions, 3);
    for (i, h) in (0..3).zip(&handles) {
        assert_eq!(ny.live_owner(&s(i)).as_ref(), Some(h), "session {i}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_handoff_between_nodes_moves_the_owner_and_the_fact_in_one_transaction() {
    let etcd = EtcdCluster::start(1);
    let (nx, ny) = (node(&etcd, "/handoff", "node-x", 5).await, node(&etcd, "/handoff", "node-y", 5).await);
    setup(&nx, 1).await;
    let boundary = LinkBoundary::for_bundle(&x());
    let old = nx.attach_owner(s(0), label("worker-a"), boundary.clone()).await.unwrap();
    let request = DelegationRequest::new(s(0), a(0), a(1), x());
    let out = nx.delegate_active_session(&old, request, label("worker-b")).await.unwrap();
    assert_eq!(out.ownership.to_generation, out.ownership.from_generation + 1);
    assert_eq!(out.ownership.to_owner.as_str(), "worker-b");
    assert!(!out.ownership.moved_fragments.is_empty());
    let new = out.owned.clone();

    // The journal head and the owner record were written by the same transaction: they
    // carry the same etcd revision.
    let mut client = raw(&etcd).await;
    let head = client.get("/handoff/head", None).await.unwrap();
    let head_revision = head.kvs()[0].mod_revision();
    let owner = records(&mut client, "/handoff").await;
    assert_eq!(owner.len(), 1);
    assert_eq!(owner[0].1, head_revision, "delegation fact and owner record in one transaction");

    // Both nodes: the old handle is stale, the new one passes, and the fragments moved.
    eventually("node y to see the handoff", || ny.check_ingress(&new.capability, &boundary).is_ok()).await;
    for m in [&nx, &ny] {
        assert!(matches!(
            m.check_ingress(&old.capability, &boundary),
            Err(OwnershipError::StaleOwner { .. })
        ));
        m.check_ingress(&new.capability, &boundary).unwrap();
        for f in &out.ownership.moved_fragments {
            assert_eq!(m.fragment_owner(s(0), f).unwrap().as_str(), "worker-b");
        }
    }
    ny.check_ingress_linearizable(&new.capability, &boundary).await.unwrap();
    assert!(ny.check_ingress_linearizable(&old.capability, &boundary).await.is_err());
    // The durable delegation is on both nodes.
    ny.sync().await.unwrap();
    assert_eq!(ny.session(&s(0)).unwrap().holder, a(1));
    // The old handle cannot act on either node.
    let again = DelegationRequest::new(s(0), a(1), a(2), x());
    assert!(nx.delegate_active_session(&old, again.clone(), label("w")).await.is_err());
    assert!(ny.delegate_active_session(&old, again, label("w")).await.is_err());
    assert!(ny.detach_owner(&old).await.is_err());
    // Node y may hand the new owner on (it holds the capability): one more generation.
    let next = DelegationRequest::new(s(0), a(1), a(2), x());
    let out2 = ny.delegate_active_session(&new, next, label("worker-c")).await.unwrap();
    assert_eq!(out2.ownership.to_generation, out.ownership.to_generation + 1);
    eventually("node x to see worker-c", || nx.check_ingress(&out2.owned.capability, &boundary).is_ok())
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_record_was_taken_has_every_write_refused_and_is_told() {
    let etcd = EtcdCluster::start(1);
    let (nx, ny) = (node(&etcd, "/fenced", "node-x", 5).await, node(&etcd, "/fenced", "node-y", 5).await);
    setup(&nx, 3).await;
    ny.sync().await.unwrap();
    let boundary = LinkBoundary::for_bundle(&x());
    let mut notices = nx.owner_notices();
    let mut handles = Vec::new();
    for i in 0..3 {
        handles.push(nx.attach_owner(s(i), label("worker-x"), boundary.clone()).await.unwrap());
    }
    // The records go behind node x's back (as when its lease expires in etcd while it is
    // paused), and node y attaches the sessions.
    let mut client = raw(&etcd).await;
    client.delete("/fenced/o/", Some(etcd_client::DeleteOptions::new().with_prefix())).await.unwrap();
    eventually("node y to see the records gone", || ny.stats().live_sessions == 0).await;
    let mut taken = Vec::new();
    for i in 0..3 {
        taken.push(ny.attach_owner(s(i), label("worker-y"), boundary.clone()).await.unwrap());
    }
    // Node x learns it from the registry: its owners are gone locally, with a notice each.
    eventually("node x to see node y's owners", || {
        (0..3).all(|i| nx.live_owner(&s(i)).is_some_and(|o| o.owner.as_str() == "worker-y"))
    })
    .await;
    for _ in 0..3 {
        let notice = tokio::time::timeout(Duration::from_secs(5), notices.recv()).await.unwrap().unwrap();
        assert_eq!(notice.owner.as_str(), "worker-x");
    }
    // Every write node x attempts with its old handles is refused.
    let h = &handles[0];
    let handoff =
        nx.delegate_active_session(h, DelegationRequest::new(s(0), a(0), a(1), x()), label("z")).await;
    assert!(handoff.is_err(), "{handoff:?}");
    assert!(nx.detach_owner(&handles[1]).await.is_err());
    assert!(nx.close_owned_session(&handles[2]).await.is_err());
    assert!(nx.check_ingress(&h.capability, &boundary).is_err());
    // Node y's owners are untouched, and nothing was journaled for the refused writes.
    for (i, t) in taken.iter().enumerate() {
        ny.check_ingress_linearizable(&t.capability, &boundary).await.unwrap();
        assert_eq!(ny.session(&s(i as u128)).unwrap().holder, a(0));
    }
    assert_eq!(records(&mut client, "/fenced").await.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_written_while_another_node_was_unaware_is_fenced_and_rechecked() {
    // Node y's local view is made stale by a write it cannot have seen yet: its handoff
    // compares the record it believes in, is fenced, takes the record found, and is
    // refused by the re-check (never overwriting node x's owner).
    let etcd = EtcdCluster::start(1);
    let (nx, ny) = (node(&etcd, "/stale", "node-x", 5).await, node(&etcd, "/stale", "node-y", 5).await);
    setup(&nx, 1).await;
    let boundary = LinkBoundary::for_bundle(&x());
    let first = nx.attach_owner(s(0), label("worker-a"), boundary.clone()).await.unwrap();
    eventually("node y to see worker-a", || ny.live_owner(&s(0)).is_some()).await;
    // Node x hands over; immediately node y, with the first handle, tries the same.
    let moved = nx
        .delegate_active_session(&first, DelegationRequest::new(s(0), a(0), a(1), x()), label("worker-b"))
        .await
        .unwrap();
    let refused = ny
        .delegate_active_session(&first, DelegationRequest::new(s(0), a(0), a(2), x()), label("worker-c"))
        .await;
    assert!(refused.is_err(), "a stale handle never wins: {refused:?}");
    ny.check_ingress_linearizable(&moved.owned.capability, &boundary).await.unwrap();
    ny.sync().await.unwrap();
    assert_eq!(ny.session(&s(0)).unwrap().holder, a(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_stops_renewing_frees_its_sessions_after_the_ttl() {
    let etcd = EtcdCluster::start(1);
    let ny = node(&etcd, "/ttl", "node-y", 5).await;
    let nx = node(&etcd, "/ttl", "node-x", 1).await;
    setup(&nx, 4).await;
    ny.sync().await.unwrap();
    let boundary = LinkBoundary::for_bundle(&x());
    for i in 0..4 {
        nx.attach_owner(s(i), label("worker-x"), boundary.clone()).await.unwrap();
    }
    eventually("node y to see node x's owners", || ny.stats().live_sessions == 4).await;
    let e = ny.attach_owner(s(0), label("worker-y"), boundary.clone()).await.unwrap_err();
    assert!(is_already_live_on(&e, "node-x"), "{e}");
    // Node x goes away without a word: its lease is no longer renewed.
    let stopped = Instant::now();
    drop(nx);
    let mut attached = 0;
    while attached < 4 {
        assert!(stopped.elapsed() < Duration::from_secs(15), "sessions never became attachable");
        for i in 0..4 {
            if ny.live_owner(&s(i)).is_some_and(|o| o.owner.as_str() == "worker-y") {
                continue;
            }
            if ny.attach_owner(s(i), label("worker-y"), boundary.clone()).await.is_ok() {
                attached += 1;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = stopped.elapsed();
    // The last renewal may have been up to a third of the TTL before the drop.
    assert!(took >= Duration::from_millis(600), "attachable only once the 1 s lease lapsed ({took:?})");
    // The durable ownership is untouched.
    for i in 0..4 {
        assert_eq!(ny.session(&s(i)).unwrap().holder, a(0));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_etcd_leader_change_during_renewals_and_handoffs_loses_nothing() {
    let mut etcd = EtcdCluster::start(3);
    let endpoints = etcd.all_endpoints();
    let open = |name: &'static str| {
        ManagerBuilder::new()
            .etcd_journal(options(endpoints.clone(), "/leader", name, 3))
            .without_manifests()
            .open()
    };
    let (nx, ny) = (Arc::new(open("node-x").await.unwrap()), Arc::new(open("node-y").await.unwrap()));
    const N: u128 = 8;
    setup(&nx, N).await;
    ny.sync().await.unwrap();
    let boundary = LinkBoundary::for_bundle(&x());
    // Sessions alternate between the nodes; each node hands its own sessions back and forth
    // between two owners, and delegates them between authorities.
    let mut tasks = Vec::new();
    for i in 0..N {
        let m = if i % 2 == 0 { Arc::clone(&nx) } else { Arc::clone(&ny) };
        let boundary = boundary.clone();
        tasks.push(tokio::spawn(async move {
            let mut handle = m.attach_owner(s(i), label("w0"), boundary).await.unwrap();
            let mut holder = a(0);
            let mut acks = Vec::new();
            let mut lost = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(6);
            let mut step = 0u128;
            while Instant::now() < deadline {
                step += 1;
                let to = a(step % 3 + 1);
                let to = if to == holder { a(0) } else { to };
                let request = DelegationRequest::new(s(i), holder, to, x());
                match m.delegate_active_session(&handle, request, label(&format!("w{step}"))).await {
                    Ok(out) => {
                        acks.push((out.delegation.receipt.sequence, out.ownership.to_generation));
                        handle = out.owned;
                        holder = to;
                    }
                    // A lost reply may be answered as failed only when the change is not in
                    // the journal; the caller learns the truth from the state.
                    Err(e) => {
                        lost.push(e.to_string());
                        m.sync().await.ok();
                        if let Some(o) = m.live_owner(&s(i)) {
                            handle = o;
                        }
                        if let Some(r) = m.session(&s(i)) {
                            holder = r.holder;
                        }
                    }
                }
            }
            (i, acks, handle, lost)
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let leader = etcd.leader().await.expect("a leader");
    etcd.kill(leader);
    let mut acked = Vec::new();
    for t in tasks {
        let (i, acks, last, lost) = tokio::time::timeout(Duration::from_secs(60), t).await.unwrap().unwrap();
        assert!(
            !acks.is_empty(),
            "session {i} made no handoff: {:?}",
            lost.iter().take(3).collect::<Vec<_>>()
        );
        // A 3 s lease outlives an election: no node loses its owners to a leader change.
        assert!(
            lost.iter().all(|e| !e.contains("lease")),
            "session {i}: a lease was lost across the leader change: {lost:?}"
        );
        let generations: Vec<u64> = acks.iter().map(|(_, g)| *g).collect();
        assert!(generations.windows(2).all(|w| w[0] < w[1]), "generations only grow: {generations:?}");
        acked.push((i, acks, last));
    }
    // Every acknowledged handoff is a delegation fact in the journal, and each session's
    // last handle is its one live owner in the shared registry (linearizable read).
    let journal = EtcdJournal::connect(options(etcd.endpoints(), "/leader", "auditor", 3)).await.unwrap();
    let records = journal.read(1, usize::MAX).await.unwrap();
    for (i, acks, last) in &acked {
        for (sequence, _) in acks {
            let r = &records[*sequence as usize - 1];
            assert!(matches!(&r.fact.change, Change::SessionDelegated(d) if d.session == s(*i)));
        }
        let m = if i % 2 == 0 { &nx } else { &ny };
        m.check_ingress_linearizable(&last.capability, &boundary).await.unwrap();
        let other = if i % 2 == 0 { &ny } else { &nx };
        other.check_ingress_linearizable(&last.capability, &boundary).await.unwrap();
    }
    let mut client = etcd_client::Client::connect(etcd.endpoints(), None).await.unwrap();
    assert_eq!(records_count(&mut client).await, N as usize, "one record per session");
}

async fn records_count(client: &mut etcd_client::Client) -> usize {
    records(client, "/leader").await.len()
}

/// A node's registry with faults a test switches on:
/// - `hold`: its events are held back, so the node keeps believing in records that
///   changed and what refuses its writes is the registry's compare, not its own view;
/// - `lose`: the next write's reply is lost ([`LOST_AFTER_WRITING`]: the write landed;
///   [`LOST_BEFORE_WRITING`]: it never reached the store), answered as `Ambiguous`;
/// - `conflicts`: the next n writes are refused as if another writer had moved the
///   journal head (nothing is written);
/// - `fences`: the next n writes are refused by the record compare, reporting the
///   records as they really are (nothing is written);
/// - `lapsed`: the node's lease reads as no longer certainly held;
/// - `inject`: sends an event into the node's stream, as if the registry had.
#[derive(Clone)]
struct Deaf {
    inner: Arc<reconf_runtime::crates::store_etcd::EtcdOwners>,
    hold: Arc<std::sync::atomic::AtomicBool>,
    lose: Arc<std::sync::atomic::AtomicU8>,
    conflicts: Arc<std::sync::atomic::AtomicU32>,
    fences: Arc<std::sync::atomic::AtomicU32>,
    lapsed: Arc<std::sync::atomic::AtomicBool>,
    writes: Arc<std::sync::atomic::AtomicU32>,
    inject: Arc<std::sync::Mutex<Option<tokio::sync::mpsc::UnboundedSender<reconf_effects::OwnerEvent>>>>,
}

const LOST_AFTER_WRITING: u8 = 1;
const LOST_BEFORE_WRITING: u8 = 2;

/// A node on `prefix` whose registry is wrapped in [`Deaf`]: the node, the wrapper's
/// switches (a clone sharing them) and its journal.
async fn deaf_node(
    etcd: &EtcdCluster,
    prefix: &str,
    name: &str,
) -> (ReconfigurationManager, Deaf, Arc<EtcdJournal>) {
    use reconf_runtime::crates::store_etcd::EtcdOwners;
    let journal = Arc::new(EtcdJournal::connect(options(etcd.endpoints(), prefix, name, 5)).await.unwrap());
    let inner = Arc::new(EtcdOwners::start(Arc::clone(&journal) as Arc<_>).await.unwrap());
    let registry = Deaf {
        inner,
        hold: Arc::default(),
        lose: Arc::default(),
        conflicts: Arc::default(),
        fences: Arc::default(),
        lapsed: Arc::default(),
        writes: Arc::default(),
        inject: Arc::default(),
    };
    let m = ManagerBuilder::new()
        .journal_arc(Arc::clone(&journal) as Arc<dyn JournalEffects>)
        .owner_registry(Arc::new(registry.clone()))
        .without_manifests()
        .open()
        .await
        .unwrap();
    (m, registry, journal)
}

/// Node x with its registry wrapped in [`Deaf`], and a plain node y, on `prefix`, with `n`
/// sessions opened through x and already seen by y.
async fn deaf_x_and_y(
    etcd: &EtcdCluster,
    prefix: &str,
    n: u128,
) -> (ReconfigurationManager, Deaf, ReconfigurationManager) {
    let (nx, registry, _) = deaf_node(etcd, prefix, "node-x").await;
    let ny = node(etcd, prefix, "node-y", 5).await;
    setup(&nx, n).await;
    ny.sync().await.unwrap();
    (nx, registry, ny)
}

#[async_trait::async_trait]
impl OwnerRegistryEffects for Deaf {
    fn node(&self) -> &str {
        self.inner.node()
    }
    fn lease_valid(&self) -> bool {
        !self.lapsed.load(std::sync::atomic::Ordering::SeqCst) && self.inner.lease_valid()
    }
    async fn write(
        &self,
        txn: reconf_effects::OwnerTxn,
    ) -> Result<reconf_effects::OwnerTxnDone, reconf_effects::OwnerTxnError> {
        use std::sync::atomic::Ordering::SeqCst;
        self.writes.fetch_add(1, SeqCst);
        let take =
            |n: &std::sync::atomic::AtomicU32| n.fetch_update(SeqCst, SeqCst, |v| v.checked_sub(1)).is_ok();
        if take(&self.conflicts) {
            let expected = txn.head.unwrap_or(reconf_effects::ExpectedHead::Any);
            let actual = match expected {
                reconf_effects::ExpectedHead::At(n) => Some(n),
                _ => None,
            };
            return Err(JournalError::Conflict { expected, actual }.into());
        }
        if take(&self.fences) {
            let mut found = Vec::new();
            for w in &txn.owners {
                found.push((w.session(), self.inner.get(w.session()).await?));
            }
            return Err(reconf_effects::OwnerTxnError::Fenced { found });
        }
        let lost = || JournalError::Ambiguous { reason: "the test lost the reply".to_owned() }.into();
        match self.lose.swap(0, std::sync::atomic::Ordering::SeqCst) {
            LOST_AFTER_WRITING => self.inner.write(txn).await.and_then(|_| Err(lost())),
            LOST_BEFORE_WRITING => Err(lost()),
            _ => self.inner.write(txn).await,
        }
    }
    async fn get(&self, session: SessionId) -> Result<Option<reconf_effects::OwnerEntry>, JournalError> {
        self.inner.get(session).await
    }
    async fn list(&self) -> Result<(Vec<reconf_effects::OwnerEntry>, i64), JournalError> {
        self.inner.list().await
    }
    fn events(&self) -> Option<tokio::sync::mpsc::UnboundedReceiver<reconf_effects::OwnerEvent>> {
        let mut from = self.inner.events()?;
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        *self.inject.lock().unwrap() = Some(tx.clone());
        let hold = Arc::clone(&self.hold);
        tokio::spawn(async move {
            while let Some(event) = from.recv().await {
                while hold.load(std::sync::atomic::Ordering::SeqCst) {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                if tx.send(event).is_err() {
                    return;
                }
            }
        });
        Some(rx)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_from_a_stale_view_are_refused_by_the_registry_compare() {
    let etcd = EtcdCluster::start(1);
    let (nx, deaf, ny) = deaf_x_and_y(&etcd, "/deaf", 3).await;
    let hold = Arc::clone(&deaf.hold);
    // Whole-session owners: closing and detaching by handle need one.
    let boundary = LinkBoundary { bundle: x(), scope: CapabilityScope::WholeSession };
    let mut handles = Vec::new();
    for i in 0..3 {
        handles.push(nx.attach_owner(s(i), label("worker-x"), boundary.clone()).await.unwrap());
    }
    // Node x stops hearing the registry; its records go and node y takes the sessions.
    hold.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut client = raw(&etcd).await;
    client.delete("/deaf/o/", Some(etcd_client::DeleteOptions::new().with_prefix())).await.unwrap();
    eventually("node y to see the records gone", || ny.stats().live_sessions == 0).await;
    for i in 0..3 {
        ny.attach_owner(s(i), label("worker-y"), boundary.clone()).await.unwrap();
    }
    // Node x still believes it owns them: its checks pass locally...
    for h in &handles {
        nx.check_ingress(&h.capability, &boundary).unwrap();
    }
    let head = ny.sync().await.unwrap();
    // ...but every write is refused by the compare, and then by the re-check against the
    // record the compare found.
    let fenced_before = nx.stats().actor.fenced;
    let handoff = nx
        .delegate_active_session(&handles[0], DelegationRequest::new(s(0), a(0), a(1), x()), label("z"))
        .await;
    assert!(matches!(handoff, Err(ManagerError::Ownership(_))), "{handoff:?}");
    let detach = nx.detach_owner(&handles[1]).await;
    assert!(matches!(detach, Err(ManagerError::Ownership(_))), "{detach:?}");
    let close = nx.close_owned_session(&handles[2]).await;
    assert!(matches!(close, Err(ManagerError::Ownership(_))), "{close:?}");
    assert_eq!(nx.stats().actor.fenced - fenced_before, 3, "each write was refused by the compare");
    // Nothing landed: the journal head is where it was, node y's records are untouched,
    // and node x now sees node y's owners.
    assert_eq!(ny.sync().await.unwrap(), head);
    assert_eq!(records(&mut client, "/deaf").await.len(), 3);
    for i in 0..3 {
        assert_eq!(nx.live_owner(&s(i)).unwrap().owner.as_str(), "worker-y");
    }
    hold.store(false, std::sync::atomic::Ordering::SeqCst);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_owner_writes_than_one_etcd_transaction_takes_are_committed_in_order() {
    // etcd allows 128 operations per transaction: 300 concurrent handoffs (one record write
    // each) must be cut into several commits, every one acknowledged, none lost.
    let etcd = EtcdCluster::start(1);
    let nx = ManagerBuilder::new()
        .etcd_journal(options(etcd.endpoints(), "/many", "node-x", 5))
        .mailbox_capacity(1024)
        .without_manifests()
        .open()
        .await
        .unwrap();
    const N: u128 = 300;
    setup(&nx, N).await;
    let boundary = LinkBoundary::for_bundle(&x());
    let mut handles = Vec::new();
    for i in 0..N {
        handles.push(nx.attach_owner(s(i), label("first"), boundary.clone()).await.unwrap());
    }
    let nx = Arc::new(nx);
    let before = nx.stats().actor.commits;
    let tasks: Vec<_> = handles
        .into_iter()
        .enumerate()
        .map(|(i, h)| {
            let m = Arc::clone(&nx);
            tokio::spawn(async move {
                let request = DelegationRequest::new(s(i as u128), a(0), a(1), x());
                m.delegate_active_session(&h, request, label("second")).await
            })
        })
        .collect();
    for t in tasks {
        let out = t.await.unwrap().unwrap();
        assert_eq!(out.ownership.to_owner.as_str(), "second");
    }
    let commits = nx.stats().actor.commits - before;
    assert!(commits >= 3, "300 record writes need at least 3 transactions, took {commits}");
    let mut client = raw(&etcd).await;
    assert_eq!(records(&mut client, "/many").await.len(), N as usize);
    for i in 0..N {
        assert_eq!(nx.live_owner(&s(i)).unwrap().owner.as_str(), "second");
    }
}

/// A live handoff is a fact and an owner record in one registry write; when that write's
/// reply is lost, the journal is read back: a write that landed is answered `Ok` (once,
/// with the generation it wrote), one that did not is answered `Persist` with nothing
/// changed, and the old owner keeps the session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handoff_whose_reply_was_lost_is_answered_by_what_the_journal_holds() {
    use std::sync::atomic::Ordering::SeqCst;
    let etcd = EtcdCluster::start(1);
    let (m, registry, journal) = deaf_node(&etcd, "/lost", "node-x").await;
    let lose = Arc::clone(&registry.lose);
    setup(&m, 1).await;
    let boundary = LinkBoundary::for_bundle(&x());
    let old = m.attach_owner(s(0), label("worker-a"), boundary.clone()).await.unwrap();
    let head = m.sync().await.unwrap();

    // Lost before it was written: refused as not durable, nothing moved.
    lose.store(LOST_BEFORE_WRITING, SeqCst);
    let refused = m
        .delegate_active_session(&old, DelegationRequest::new(s(0), a(0), a(1), x()), label("worker-b"))
        .await;
    let persist = match &refused {
        Err(ManagerError::Reconfiguration(inner)) => inner.as_ref(),
        other => panic!("a live handoff's failure is a reconfiguration error: {other:?}"),
    };
    assert!(
        matches!(persist, ManagerError::Persist { source: JournalError::Ambiguous { .. }, .. }),
        "{persist:?}"
    );
    assert_eq!(journal.head().await.unwrap(), Some(head), "nothing was written");
    assert_eq!(m.session(&s(0)).unwrap().holder, a(0));
    m.check_ingress(&old.capability, &boundary).unwrap();
    assert_eq!(m.live_owner(&s(0)).unwrap().owner.as_str(), "worker-a");

    // Lost after it was written: the read-back finds the fact, so the handoff is answered
    // as done, exactly once, at the next generation.
    lose.store(LOST_AFTER_WRITING, SeqCst);
    let out = m
        .delegate_active_session(&old, DelegationRequest::new(s(0), a(0), a(1), x()), label("worker-b"))
        .await
        .unwrap();
    assert_eq!(lose.load(SeqCst), 0, "the fault was used");
    assert_eq!(out.ownership.to_generation, out.ownership.from_generation + 1);
    assert_eq!(out.delegation.receipt.sequence, head + 1, "the read-back names where the fact landed");
    let written = journal.read(head + 1, 10).await.unwrap();
    assert_eq!(written.len(), 1, "one record: the handoff, once");
    assert!(matches!(&written[0].fact.change, Change::SessionDelegated(d) if d.to == a(1)));
    assert_eq!(m.session(&s(0)).unwrap().holder, a(1));
    m.check_ingress(&out.owned.capability, &boundary).unwrap();
    assert!(matches!(m.check_ingress(&old.capability, &boundary), Err(OwnershipError::StaleOwner { .. })));
    // The owner record the write put is the new owner's.
    let mut client = raw(&etcd).await;
    assert_eq!(records(&mut client, "/lost").await.len(), 1);
    assert_eq!(m.sync().await.unwrap(), head + 1);
}

/// Closing a session by its authority (not by the owner's handle) removes its live-owner
/// record in the same transaction as the close: no node is left believing in an owner of
/// a closed session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_a_live_session_removes_its_owner_record_with_the_close() {
    let etcd = EtcdCluster::start(1);
    let (nx, ny) = (node(&etcd, "/close", "node-x", 5).await, node(&etcd, "/close", "node-y", 5).await);
    setup(&nx, 2).await;
    let boundary = LinkBoundary::for_bundle(&x());
    let h = nx.attach_owner(s(0), label("worker-a"), boundary.clone()).await.unwrap();
    nx.attach_owner(s(1), label("worker-b"), boundary.clone()).await.unwrap();
    let mut client = raw(&etcd).await;
    assert_eq!(records(&mut client, "/close").await.len(), 2);
    nx.close_session(s(0), a(0)).await.unwrap();
    // The close and the removal are one transaction: the head and the surviving record
    // are all that is left, and the removal is visible as soon as the close is.
    let left = records(&mut client, "/close").await;
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(left[0].0.ends_with(&s(1).to_string()), "{left:?}");
    assert!(nx.live_owner(&s(0)).is_none());
    assert!(matches!(nx.check_ingress(&h.capability, &boundary), Err(OwnershipError::NotLive { .. })));
    ny.sync().await.unwrap();
    eventually("node y to see the owner gone", || ny.live_owner(&s(0)).is_none()).await;
    assert_eq!(ny.live_owner(&s(1)).unwrap().owner.as_str(), "worker-b");
}

/// A node whose attach finds the journal head moved catches up and tries again, as often as
/// the head keeps moving: promptly at first, then after random pauses (so writers that
/// keep colliding spread out); each collision is counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attach_that_meets_a_moved_head_catches_up_and_retries_with_pauses() {
    use std::sync::atomic::Ordering::SeqCst;
    let etcd = EtcdCluster::start(1);
    let (m, registry, _) = deaf_node(&etcd, "/moved", "node-x").await;
    let (conflicts, writes) = (Arc::clone(&registry.conflicts), Arc::clone(&registry.writes));
    setup(&m, 2).await;
    let boundary = LinkBoundary::for_bundle(&x());

    // Two collisions: retried at once, and the third write lands.
    conflicts.store(2, SeqCst);
    let (before, written) = (m.stats().actor.conflicts, writes.load(SeqCst));
    let owned = m.attach_owner(s(0), label("worker"), boundary.clone()).await.unwrap();
    assert_eq!(writes.load(SeqCst) - written, 3, "two refused writes and the one that landed");
    assert_eq!(m.stats().actor.conflicts - before, 2, "each collision is counted");
    m.check_ingress_linearizable(&owned.capability, &boundary).await.unwrap();

    // Sixty-three collisions: the first three are retried at once, and each of the sixty
    // after them waits a random pause of up to 20 ms first. Their sum averages 600 ms and
    // is below 300 ms less than once in 10^10 runs; pausing only before the first few
    // retries (or for microseconds) adds 40 ms at most to the catch-ups' own time.
    conflicts.store(63, SeqCst);
    let started = Instant::now();
    let owned = m.attach_owner(s(1), label("worker"), boundary.clone()).await.unwrap();
    let took = started.elapsed();
    assert_eq!(conflicts.load(SeqCst), 0, "every collision was met");
    assert!(took >= Duration::from_millis(300), "writers that keep colliding pause: {took:?}");
    m.check_ingress_linearizable(&owned.capability, &boundary).await.unwrap();
    let mut client = raw(&etcd).await;
    assert_eq!(records(&mut client, "/moved").await.len(), 2, "one record per attach");
}

/// A detach whose compare finds a record other than the one this node last saw, but that
/// is still this owner's (the node's view of the bytes was stale), takes the record found
/// and removes it on a later try: it is refused only when the record found is not this
/// owner's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_detach_refused_by_a_stale_compare_retries_with_the_record_found() {
    use std::sync::atomic::Ordering::SeqCst;
    let etcd = EtcdCluster::start(1);
    let (m, registry, _) = deaf_node(&etcd, "/refetch", "node-x").await;
    let (fences, writes) = (Arc::clone(&registry.fences), Arc::clone(&registry.writes));
    setup(&m, 1).await;
    let boundary = LinkBoundary { bundle: x(), scope: CapabilityScope::WholeSession };
    let owned = m.attach_owner(s(0), label("worker"), boundary.clone()).await.unwrap();
    // Three refusals in a row: the fourth try (the last one a detach makes) removes it.
    fences.store(3, SeqCst);
    let (before, written) = (m.stats().actor.fenced, writes.load(SeqCst));
    m.detach_owner(&owned).await.unwrap();
    assert_eq!(writes.load(SeqCst) - written, 4);
    assert_eq!(m.stats().actor.fenced - before, 3, "each refusal is counted");
    assert!(m.live_owner(&s(0)).is_none());
    let mut client = raw(&etcd).await;
    assert!(records(&mut client, "/refetch").await.is_empty(), "the record is gone");
}

/// Once a node's lease can no longer be relied on, the next registry event it hears drops
/// every owner it runs from its live table, each with a `LeaseLost` notice; other nodes'
/// owners stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_lease_lapsed_drops_its_own_owners_on_the_next_event() {
    use std::sync::atomic::Ordering::SeqCst;
    let etcd = EtcdCluster::start(1);
    let (nx, registry, ny) = deaf_x_and_y(&etcd, "/lapse", 3).await;
    let lapsed = Arc::clone(&registry.lapsed);
    let boundary = LinkBoundary::for_bundle(&x());
    let mut notices = nx.owner_notices();
    for i in 0..2 {
        nx.attach_owner(s(i), label("worker-x"), boundary.clone()).await.unwrap();
    }
    eventually("node y to see node x's owners", || ny.stats().live_sessions == 2).await;
    let lost_before = nx.stats().actor.owners_lost;
    lapsed.store(true, SeqCst);
    // Node y's attach is an event node x hears.
    ny.attach_owner(s(2), label("worker-y"), boundary.clone()).await.unwrap();
    eventually("node x to drop its owners", || {
        nx.live_owner(&s(0)).is_none() && nx.live_owner(&s(1)).is_none()
    })
    .await;
    for _ in 0..2 {
        let notice = tokio::time::timeout(Duration::from_secs(5), notices.recv()).await.unwrap().unwrap();
        assert_eq!(notice.owner.as_str(), "worker-x");
        assert!(matches!(notice.reason, OwnerLoss::LeaseLost), "{:?}", notice.reason);
    }
    assert_eq!(nx.stats().actor.owners_lost - lost_before, 2);
    eventually("node x to see node y's owner", || nx.live_owner(&s(2)).is_some()).await;
    assert_eq!(nx.live_owner(&s(2)).unwrap().owner.as_str(), "worker-y");
}

/// The instant a node's lease can no longer be relied on, its own owners fail the ingress
/// checks with `LeaseLost` (before any event or renewal round drops them), while the
/// owners of other nodes that it mirrors still pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_lease_lapsed_refuses_ingress_to_its_own_owners_at_once() {
    use std::sync::atomic::Ordering::SeqCst;
    let etcd = EtcdCluster::start(1);
    let (nx, registry, ny) = deaf_x_and_y(&etcd, "/ingress", 2).await;
    let boundary = LinkBoundary::for_bundle(&x());
    let hx = nx.attach_owner(s(0), label("worker-x"), boundary.clone()).await.unwrap();
    let hy = ny.attach_owner(s(1), label("worker-y"), boundary.clone()).await.unwrap();
    eventually("node x to see node y's owner", || nx.live_owner(&s(1)).is_some()).await;
    nx.check_ingress(&hx.capability, &hx.boundary).unwrap();
    registry.lapsed.store(true, SeqCst);
    let lease_lost = |r: Result<(), OwnershipError>| matches!(r, Err(OwnershipError::LeaseLost { session, ref node }) if session == s(0) && node.as_str() == "node-x");
    assert!(lease_lost(nx.check_ingress(&hx.capability, &hx.boundary)));
    match nx.check_ingress_linearizable(&hx.capability, &hx.boundary).await {
        Err(ManagerError::Ownership(e)) => assert!(lease_lost(Err(e))),
        other => panic!("a lapsed node's own owner passed the linearizable check: {other:?}"),
    }
    nx.check_ingress(&hy.capability, &hy.boundary).unwrap();
    nx.check_ingress_linearizable(&hy.capability, &hy.boundary).await.unwrap();
}

/// A registry stream that missed events (etcd compacted them) delivers a `Reset`: every
/// record as of a revision. The node drops its owners the list no longer has, each with
/// a `Removed` notice, and keeps the ones it still has.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_of_the_registry_drops_exactly_the_owners_it_no_longer_lists() {
    let etcd = EtcdCluster::start(1);
    let (m, registry, _) = deaf_node(&etcd, "/reset", "node-x").await;
    let inner = Arc::clone(&registry.inner);
    let inject = Arc::clone(&registry.inject);
    setup(&m, 2).await;
    let boundary = LinkBoundary::for_bundle(&x());
    let mut notices = m.owner_notices();
    for i in 0..2 {
        m.attach_owner(s(i), label("worker"), boundary.clone()).await.unwrap();
    }
    // The list as of now, without session 0's record.
    let (entries, revision) = inner.list().await.unwrap();
    assert_eq!(entries.len(), 2);
    let entries = entries.into_iter().filter(|e| e.session != s(0)).collect();
    let send = inject.lock().unwrap().clone().expect("the manager took the event stream");
    send.send(reconf_effects::OwnerEvent::Reset { entries, revision }).unwrap();
    let notice = tokio::time::timeout(Duration::from_secs(5), notices.recv()).await.unwrap().unwrap();
    assert_eq!(notice.session, s(0));
    assert!(matches!(notice.reason, OwnerLoss::Removed), "{:?}", notice.reason);
    assert!(m.live_owner(&s(0)).is_none());
    assert_eq!(m.live_owner(&s(1)).unwrap().owner.as_str(), "worker");
    assert_eq!(m.stats().live_sessions, 1);
}

/// An event older than what the node already applied for a session (the registry's watch
/// delivering late what this node's own write superseded) changes nothing; a newer one
/// applies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_event_older_than_the_applied_record_is_ignored() {
    let etcd = EtcdCluster::start(1);
    let (m, registry, _) = deaf_node(&etcd, "/stale-event", "node-x").await;
    setup(&m, 2).await;
    let boundary = LinkBoundary::for_bundle(&x());
    let mut notices = m.owner_notices();
    for i in 0..2 {
        m.attach_owner(s(i), label("worker"), boundary.clone()).await.unwrap();
    }
    let (entries, _) = registry.inner.list().await.unwrap();
    let revision = |n| entries.iter().find(|e| e.session == s(n)).unwrap().revision;
    let send = registry.inject.lock().unwrap().clone().expect("the manager took the event stream");
    let deleted = |n, revision| reconf_effects::OwnerEvent::Deleted { session: s(n), revision };
    // At the applied record's own revision, and before it: both already superseded.
    send.send(deleted(0, revision(0))).unwrap();
    send.send(deleted(0, revision(0) - 1)).unwrap();
    // Events are applied in order: once the newer removal of session 1 is reported, the
    // stale one before it has been seen.
    send.send(deleted(1, revision(1) + 1)).unwrap();
    let notice = tokio::time::timeout(Duration::from_secs(5), notices.recv()).await.unwrap().unwrap();
    assert_eq!(notice.session, s(1), "{notice:?}");
    assert!(m.live_owner(&s(1)).is_none());
    assert_eq!(m.live_owner(&s(0)).unwrap().owner.as_str(), "worker", "the stale removal was ignored");
}

/// A node whose events stalled while another node took its session learns it from the
/// record it next hears: the other node's owner replaces its own, with a `Replaced` notice
/// naming that node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_replaced_by_another_nodes_record_is_reported_with_that_node() {
    use std::sync::atomic::Ordering::SeqCst;
    let etcd = EtcdCluster::start(1);
    let (nx, registry, ny) = deaf_x_and_y(&etcd, "/replaced", 1).await;
    let boundary = LinkBoundary::for_bundle(&x());
    let mut notices = nx.owner_notices();
    nx.attach_owner(s(0), label("worker-x"), boundary.clone()).await.unwrap();
    eventually("node y to see node x's owner", || ny.live_owner(&s(0)).is_some()).await;
    // Node x hears nothing while its record goes and node y attaches the session.
    registry.hold.store(true, SeqCst);
    let mut client = raw(&etcd).await;
    client.delete("/replaced/o/", Some(etcd_client::DeleteOptions::new().with_prefix())).await.unwrap();
    eventually("node y to see the record gone", || ny.live_owner(&s(0)).is_none()).await;
    ny.attach_owner(s(0), label("worker-y"), boundary.clone()).await.unwrap();
    // What node x next hears is the registry as it is now (a reset after missed events).
    let (entries, revision) = registry.inner.list().await.unwrap();
    let send = registry.inject.lock().unwrap().clone().expect("the manager took the event stream");
    send.send(reconf_effects::OwnerEvent::Reset { entries, revision }).unwrap();
    let notice = tokio::time::timeout(Duration::from_secs(5), notices.recv()).await.unwrap().unwrap();
    assert_eq!((notice.session, notice.owner.as_str()), (s(0), "worker-x"));
    assert_eq!(notice.reason, OwnerLoss::Replaced { node: Some(label("node-y")) });
    assert_eq!(nx.live_owner(&s(0)).unwrap().owner.as_str(), "worker-y");
    registry.hold.store(false, SeqCst);
}

/// A node that moves a session without knowing another node runs a live owner for it
/// (its events were late) leaves that owner's record behind; the owner's node, following
/// the journal, sees the session change, reports its owner lost and removes the record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_whose_session_another_node_moved_is_reported_and_its_record_removed() {
    let etcd = EtcdCluster::start(1);
    let nx = node(&etcd, "/moved-away", "node-x", 5).await;
    let (ny, registry, _) = deaf_node(&etcd, "/moved-away", "node-y").await;
    let hold = Arc::clone(&registry.hold);
    hold.store(true, std::sync::atomic::Ordering::SeqCst);
    setup(&nx, 1).await;
    let boundary = LinkBoundary::for_bundle(&x());
    let mut notices = nx.owner_notices();
    nx.attach_owner(s(0), label("worker-x"), boundary.clone()).await.unwrap();
    let mut client = raw(&etcd).await;
    assert_eq!(records(&mut client, "/moved-away").await.len(), 1);
    // Node y hears nothing of the owner and delegates the session by its authority.
    ny.sync().await.unwrap();
    assert!(ny.live_owner(&s(0)).is_none());
    ny.delegate_session(DelegationRequest::new(s(0), a(0), a(1), x())).await.unwrap();
    let notice = tokio::time::timeout(Duration::from_secs(5), notices.recv()).await.unwrap().unwrap();
    assert_eq!((notice.session, notice.owner.as_str()), (s(0), "worker-x"));
    assert!(matches!(notice.reason, OwnerLoss::Removed), "{:?}", notice.reason);
    assert!(nx.live_owner(&s(0)).is_none());
    let deadline = Instant::now() + Duration::from_secs(10);
    while !records(&mut client, "/moved-away").await.is_empty() {
        assert!(Instant::now() < deadline, "node x never removed its owner's record");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(nx.session(&s(0)).unwrap().holder, a(1));
    hold.store(false, std::sync::atomic::Ordering::SeqCst);
}

/// A node's own writes update its mirror of the registry the moment they land, not when
/// the registry's watch echoes them: with every event held back, an attach, a detach,
/// another attach and two handoffs in a row each compare the record the previous write
/// left, and none is refused by the compare.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nodes_own_writes_in_a_row_compare_what_the_previous_one_wrote() {
    use std::sync::atomic::Ordering::SeqCst;
    let etcd = EtcdCluster::start(1);
    let (m, registry, _) = deaf_node(&etcd, "/own-writes", "node-x").await;
    setup(&m, 1).await;
    let boundary = LinkBoundary { bundle: x(), scope: reconf_core::CapabilityScope::WholeSession };
    registry.hold.store(true, SeqCst);
    let fenced = m.stats().actor.fenced;
    let h = m.attach_owner(s(0), label("first"), boundary.clone()).await.unwrap();
    m.detach_owner(&h).await.unwrap();
    let h = m.attach_owner(s(0), label("second"), boundary.clone()).await.unwrap();
    let out = m
        .delegate_active_session(&h, DelegationRequest::new(s(0), a(0), a(1), x()), label("third"))
        .await
        .unwrap();
    let out = m
        .delegate_active_session(&out.owned, DelegationRequest::new(s(0), a(1), a(2), x()), label("fourth"))
        .await
        .unwrap();
    assert_eq!(m.stats().actor.fenced - fenced, 0, "a write was compared against a record already replaced");
    let live = m.live_owner(&s(0)).unwrap();
    assert_eq!(
        (live.owner.as_str(), live.capability.generation),
        ("fourth", out.owned.capability.generation)
    );
    let mut client = raw(&etcd).await;
    assert_eq!(records(&mut client, "/own-writes").await.len(), 1);
    registry.hold.store(false, SeqCst);
}

/// A removal this node wrote supersedes any registry event older than it, even one the
/// watch delivers late: here node y hands an owner on while node x hears nothing, then
/// node x closes the session by its authority (removing whatever record it has); node y's
/// handoff event, arriving afterwards, must not bring an owner back to a closed session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_event_older_than_this_nodes_own_removal_revives_no_owner() {
    use std::sync::atomic::Ordering::SeqCst;
    let etcd = EtcdCluster::start(1);
    let (nx, registry, ny) = deaf_x_and_y(&etcd, "/late-removal", 2).await;
    let boundary = LinkBoundary::for_bundle(&x());
    let h = ny.attach_owner(s(0), label("worker-y"), boundary.clone()).await.unwrap();
    ny.attach_owner(s(1), label("worker-y"), boundary.clone()).await.unwrap();
    eventually("node x to see node y's owners", || nx.stats().live_sessions == 2).await;
    registry.hold.store(true, SeqCst);
    ny.delegate_active_session(&h, DelegationRequest::new(s(0), a(0), a(1), x()), label("worker-y2"))
        .await
        .unwrap();
    let handed = registry.inner.get(s(0)).await.unwrap().expect("node y's new record");
    nx.sync().await.unwrap();
    nx.close_session(s(0), a(1)).await.unwrap();
    assert!(nx.live_owner(&s(0)).is_none());
    // The watch's late delivery of node y's handoff, then a newer removal of session 1 as
    // a marker: once its effect shows, the event before it has been applied.
    let send = registry.inject.lock().unwrap().clone().expect("the manager took the event stream");
    send.send(reconf_effects::OwnerEvent::Put(handed.clone())).unwrap();
    let (entries, revision) = registry.inner.list().await.unwrap();
    assert!(entries.iter().all(|e| e.session != s(0)), "the close removed node y's record");
    send.send(reconf_effects::OwnerEvent::Deleted { session: s(1), revision: revision + 1 }).unwrap();
    eventually("the marker to be applied", || nx.live_owner(&s(1)).is_none()).await;
    assert!(nx.live_owner(&s(0)).is_none(), "a late event revived an owner of a closed session");
    registry.hold.store(false, SeqCst);
}
