//! Many managers on one etcd journal: every acknowledged change is in the journal once,
//! each manager follows the others, and each manager's state equals a full replay.
#![cfg(feature = "etcd")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reconf_core::{Change, LinkBoundary, State};
use reconf_effects::JournalEffects;
use reconf_runtime::crates::store_etcd::testing::EtcdCluster;
use reconf_runtime::crates::store_etcd::{EtcdJournal, EtcdJournalOptions};
use reconf_runtime::*;

const SESSIONS: u128 = 64;

fn a(n: u128) -> AuthorityId {
    AuthorityId::from_label(&format!("authority-{n}"))
}
fn s(n: u128) -> SessionId {
    SessionId::from_u128(n)
}
fn x() -> BundleId {
    BundleId::new("x").unwrap()
}

fn options(etcd: &EtcdCluster, prefix: &str) -> EtcdJournalOptions {
    EtcdJournalOptions::new(etcd.endpoints()).prefix(prefix).request_timeout(Duration::from_secs(2))
}

async fn open(etcd: &EtcdCluster, prefix: &str) -> ReconfigurationManager {
    ManagerBuilder::new()
        .etcd_journal(options(etcd, prefix))
        .snapshot_interval(Some(500))
        .open()
        .await
        .unwrap()
}

async fn replayed(journal: &EtcdJournal) -> State {
    let records = journal.read(1, usize::MAX).await.unwrap();
    State::replay(records.iter().map(|r| (r.sequence, &r.fact)))
}

/// What one racing caller saw acknowledged: (sequence, session, from, to).
type Acks = Vec<(u64, SessionId, AuthorityId, AuthorityId)>;

/// Waits for every racing caller (each within 120 s) and merges what they saw.
async fn gather(
    tasks: Vec<tokio::task::JoinHandle<(Acks, HashMap<&'static str, u64>)>>,
) -> (Acks, HashMap<&'static str, u64>) {
    let mut acks = Vec::new();
    let mut refused: HashMap<&'static str, u64> = HashMap::new();
    for t in tasks {
        let (a, r) = tokio::time::timeout(Duration::from_secs(120), t).await.expect("a caller hung").unwrap();
        acks.extend(a);
        for (k, v) in r {
            *refused.entry(k).or_default() += v;
        }
    }
    (acks, refused)
}

/// Every delegation in the journal, in the same shape as the acknowledgements.
async fn journaled_delegations(journal: &EtcdJournal) -> Acks {
    let records = journal.read(1, usize::MAX).await.unwrap();
    records
        .iter()
        .filter_map(|r| match &r.fact.change {
            Change::SessionDelegated(d) => Some((r.sequence, d.session, d.from, d.to)),
            _ => None,
        })
        .collect()
}

/// One caller: for a bounded number of steps, delegate a session from the holder this
/// manager sees to another authority, or attach a live owner and hand it off with the
/// delegation. Refusals are fine (another manager may have moved the session); every
/// acknowledgement is recorded.
async fn race(
    m: Arc<ReconfigurationManager>,
    caller: u128,
    steps: u128,
) -> (Acks, HashMap<&'static str, u64>) {
    race_through(m, caller, steps, false).await
}

/// [`race`]; with `outages`, the journal may be unreachable for a while, so a command may
/// be refused with `persist` (counted under that kind) instead of failing the test.
async fn race_through(
    m: Arc<ReconfigurationManager>,
    caller: u128,
    steps: u128,
    outages: bool,
) -> (Acks, HashMap<&'static str, u64>) {
    let mut acks = Vec::new();
    let mut refused: HashMap<&'static str, u64> = HashMap::new();
    for step in 0..steps {
        let n = (caller * 7 + step * 13) % SESSIONS;
        let Some(record) = m.session(&s(n)) else { continue };
        let to = a((caller + step) % 5);
        if to == record.holder {
            continue;
        }
        let request = DelegationRequest::new(s(n), record.holder, to, x());
        let outcome = if step.is_multiple_of(4) {
            let owner = OwnerLabel::new(format!("node-{caller}")).unwrap();
            match m.attach_owner(s(n), owner, LinkBoundary::for_bundle(&x())).await {
                Ok(h) => m
                    .delegate_active_session(&h, request, OwnerLabel::new(format!("next-{caller}")).unwrap())
                    .await
                    .map(|o| o.delegation),
                Err(e) => Err(e),
            }
        } else {
            m.delegate_session(request).await
        };
        match outcome {
            Ok(o) => acks.push((o.receipt.sequence, o.receipt.session, o.receipt.from, o.receipt.to)),
            Err(e) => {
                let persist = e.kind() == "persist";
                assert!(
                    !matches!(e, ManagerError::CoherenceViolation(_)) && (outages || !persist),
                    "a racing delegation failed with {e}"
                );
                if persist && format!("{e}").contains("outcome unknown") {
                    *refused.entry("persist_outcome_unknown").or_default() += 1;
                }
                *refused.entry(e.kind()).or_default() += 1;
            }
        }
    }
    (acks, refused)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_managers_race_over_64_sessions_and_agree_with_the_journal() {
    let etcd = EtcdCluster::start(1);
    // All three open at once: each registers the linked manifests it does not find, and
    // the ones that lose that race must find the winner's registration, not fail.
    let (m0, m1, m2) = tokio::join!(open(&etcd, "/race"), open(&etcd, "/race"), open(&etcd, "/race"));
    let managers = [Arc::new(m0), Arc::new(m1), Arc::new(m2)];
    managers[0].register_bundle(ComposedBundle::new(x())).await.unwrap();
    for n in 0..SESSIONS {
        managers[(n % 3) as usize].open_session(s(n), a(n % 5), Some(x())).await.unwrap();
    }
    for m in &managers {
        m.sync().await.unwrap();
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (i, m) in managers.iter().enumerate() {
        for c in 0..8u128 {
            let m = Arc::clone(m);
            tasks.push(tokio::spawn(race(m, i as u128 * 100 + c, 40)));
        }
    }
    let (mut acks, refused) = gather(tasks).await;
    let elapsed = started.elapsed();

    let journal = EtcdJournal::connect(options(&etcd, "/race")).await.unwrap();
    let delegations = journaled_delegations(&journal).await;
    acks.sort_by_key(|a| a.0);
    assert_eq!(acks, delegations, "acknowledged delegations and journaled delegations differ");
    assert!(acks.len() > 50, "too few delegations landed to mean anything: {}", acks.len());

    let truth = replayed(&journal).await;
    for m in &managers {
        let head = m.sync().await.unwrap();
        assert_eq!(head, truth.head());
        assert_eq!(
            m.state_snapshot().to_snapshot(),
            truth.to_snapshot(),
            "a manager's state differs from a replay"
        );
        assert!(m.verify_coherence().await.is_coherent());
    }
    let stats: Vec<_> = managers.iter().map(|m| m.stats().actor).collect();
    println!(
        "3 managers x 8 callers: {} delegations acknowledged in {elapsed:?}, refused {refused:?}; conflicts per manager {:?}, followed {:?}",
        acks.len(),
        stats.iter().map(|s| s.conflicts).collect::<Vec<_>>(),
        stats.iter().map(|s| s.followed).collect::<Vec<_>>(),
    );
    for m in &managers {
        m.shutdown().await.unwrap();
    }
}

/// A manager follows another's commits without being asked: its local reads catch up
/// within moments, and its live owner of a session another manager delegated is detached.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_manager_follows_the_others_commits() {
    let etcd = EtcdCluster::start(1);
    let writer = open(&etcd, "/follow").await;
    let follower = open(&etcd, "/follow").await;
    writer.register_bundle(ComposedBundle::new(x())).await.unwrap();
    writer.open_session(s(1), a(0), Some(x())).await.unwrap();
    follower.sync().await.unwrap();
    let owner = follower
        .attach_owner(s(1), OwnerLabel::new("n1").unwrap(), LinkBoundary::for_bundle(&x()))
        .await
        .unwrap();

    writer.delegate_session(DelegationRequest::new(s(1), a(0), a(1), x())).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while follower.session(&s(1)).map(|r| r.holder) != Some(a(1)) {
        assert!(Instant::now() < deadline, "the follower did not see the delegation within 5 s");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(follower.live_owner(&s(1)).is_none(), "the moved session's live owner must be detached");
    assert!(follower.check_ingress(&owner.capability, &owner.boundary).is_err());
    assert!(follower.stats().actor.followed >= 1);

    // The follower's stale view is re-checked, not trusted: delegating from the old holder
    // is refused as the journal now says.
    let e = follower.delegate_session(DelegationRequest::new(s(1), a(0), a(2), x())).await.unwrap_err();
    assert_eq!(e.kind(), "not_active_holder", "{e}");
}

/// kill -9 of the etcd leader while two managers race: writes resume after the election, no
/// acknowledged delegation is lost or doubled, and both managers end equal to a replay.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn managers_survive_the_etcd_leader_being_killed() {
    let mut etcd = EtcdCluster::start(3);
    etcd.wait_for_leader().await;
    let prefix = "/leader-managers";
    let endpoints = etcd.all_endpoints();
    let opts = || {
        EtcdJournalOptions::new(endpoints.clone()).prefix(prefix).request_timeout(Duration::from_millis(500))
    };
    let m0 = Arc::new(ManagerBuilder::new().etcd_journal(opts()).without_manifests().open().await.unwrap());
    let m1 = Arc::new(ManagerBuilder::new().etcd_journal(opts()).without_manifests().open().await.unwrap());
    m0.register_bundle(ComposedBundle::new(x())).await.unwrap();
    for n in 0..SESSIONS {
        m0.open_session(s(n), a(n % 5), Some(x())).await.unwrap();
    }
    m1.sync().await.unwrap();
    let mut tasks = Vec::new();
    for (i, m) in [&m0, &m1].into_iter().enumerate() {
        for c in 0..4u128 {
            tasks.push(tokio::spawn(race_through(Arc::clone(m), i as u128 * 10 + c, 150, true)));
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let leader = etcd.wait_for_leader().await;
    etcd.kill(leader);
    let (mut acks, refused) = gather(tasks).await;
    let journal = EtcdJournal::connect(opts()).await.unwrap();
    let delegations = journaled_delegations(&journal).await;
    acks.sort_by_key(|a| a.0);
    // Every acknowledgement is the journal's record at its sequence; the journal may hold
    // more only for commits answered "outcome unknown".
    for ack in &acks {
        assert!(delegations.contains(ack), "acknowledged {ack:?}, not in the journal");
    }
    let unknown = refused.get("persist_outcome_unknown").copied().unwrap_or(0) as usize;
    assert!(delegations.len() - acks.len() <= unknown, "journaled delegations nobody was told about");
    let truth = replayed(&journal).await;
    for m in [&m0, &m1] {
        m.sync().await.unwrap();
        assert_eq!(m.state_snapshot().to_snapshot(), truth.to_snapshot());
    }
    println!("leader killed under 2 managers: {} delegations acknowledged, refused {refused:?}", acks.len());
}
