//! The handle: a cheap, clonable front to the actor.

use std::future::Future;
use std::sync::Arc;

use reconf_core::{
    AuthorityId, BundleId, CoherenceReport, ComposedBundle, FootprintSummary, LinkBoundary, LinkRecord,
    OwnerCapability, OwnerLabel, OwnershipError, SessionFootprint, SessionId, SessionRecord, State,
    StateStats,
};
use reconf_effects::capability::{CapabilityEffects, RECONFIGURATION_SURFACES};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use crate::error::ManagerError;
use crate::mailbox::{Command, Message, Responder};
use crate::recovery::RecoveryReport;
use crate::request::{DelegationOutcome, DelegationRequest, HandoffOutcome, OwnedSession};
use crate::shared::{read, ActorStats, Shared};
use crate::telemetry::{self, Stopwatch};

/// A clonable handle to the reconfiguration manager. Every clone talks to the same actor;
/// the actor stops when the last handle is dropped or [`shutdown`](Self::shutdown) is
/// called.
///
/// # Read consistency
///
/// | call | consistency |
/// |---|---|
/// | every change (`register_bundle`, `open_session`, `delegate_session`, `attach_owner`, handoffs, closes, upgrades) | checked against the journal's latest state: a stale view loses the journal's compare and is re-checked |
/// | [`sync`](Self::sync) | linearizable: applies everything committed anywhere before it was called |
/// | `bundle`, `bundles`, `session`, `footprint`, `footprint_summary`, `links`, `authority_summaries`, `state_snapshot`, `check_ingress`, `check_fragment`, `live_owner`, `fragment_owner`, `verify_coherence`, `stats` | local: the state this manager has applied, never waiting; on a shared journal behind it by at most the time this manager takes to follow other managers' commits. Call `sync` first for a linearizable read |
///
/// | [`check_ingress_linearizable`](Self::check_ingress_linearizable) | linearizable: reads the session's live-owner record from the shared registry |
///
/// # Live owners across nodes
///
/// With a shared registry (the etcd journal brings one), live owners are records every
/// node sees, one per session, each bound to its node's lease and changed only by
/// compare-and-set: `attach_owner` (the session has no record, and the journal is still at
/// the head the session was checked against), `delegate_active_session` (the owner's record
/// is unchanged; its successor is written in the delegation's own transaction),
/// `detach_owner` and `close_owned_session` (the record is unchanged). A write whose compare
/// fails takes the record found and is checked again, so a fenced node's late writes are
/// refused, never applied; [`ActorStats::fenced`](crate::ActorStats::fenced) counts them.
/// A handoff's new owner is recorded on the node that made the handoff (bound to its
/// lease): the node that holds the new handle runs it there, or hands it on.
///
/// Staleness of the local view: other nodes' owners appear and disappear as the registry's
/// watch delivers them (one etcd round trip behind); this node's own owners stop passing
/// [`check_ingress`](Self::check_ingress) and [`check_fragment`](Self::check_fragment) the
/// instant this node's lease could have expired (the send time of the last renewal etcd
/// acknowledged, plus the TTL), before etcd can hand the session to another node, and are
/// dropped with an [`OwnerNotice`](crate::OwnerNotice) each once the lapse is noticed (at
/// the next renewal round, a third of the TTL at most, or the registry's next event).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), reconf_runtime::ManagerError> {
/// use reconf_runtime::{AuthorityId, BundleId, ComposedBundle, DelegationRequest, ManagerBuilder, SessionId};
///
/// let manager = ManagerBuilder::new().memory_journal().without_manifests().open().await?;
/// let bundle = BundleId::new("device_migration").unwrap();
/// manager.register_bundle(ComposedBundle::new(bundle.clone())).await?;
/// let (a, b) = (AuthorityId::from_label("a"), AuthorityId::from_label("b"));
/// let s = SessionId::from_u128(1);
/// manager.open_session(s, a, Some(bundle.clone())).await?;
/// let out = manager.delegate_session(DelegationRequest::new(s, a, b, bundle)).await?;
/// assert_eq!(out.receipt.to, b);
/// assert!(manager.verify_coherence().await.is_coherent());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ReconfigurationManager {
    pub(crate) tx: mpsc::Sender<Message>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) registry: Option<Arc<crate::owners::Registry>>,
    pub(crate) capabilities: Arc<dyn CapabilityEffects>,
    pub(crate) recovery: Arc<RecoveryReport>,
    pub(crate) mailbox_capacity: usize,
    #[cfg(feature = "upgrade-executor")]
    pub(crate) upgrade_hook: Arc<dyn crate::hook::UpgradeStepHook>,
}

impl std::fmt::Debug for ReconfigurationManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReconfigurationManager")
            .field("mailbox_capacity", &self.mailbox_capacity)
            .finish_non_exhaustive()
    }
}

/// Counts of the state and of the actor's work.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManagerStats {
    /// The core state.
    pub state: StateStats,
    /// Sessions with a live owner.
    pub live_sessions: u64,
    /// The actor's counters.
    pub actor: ActorStats,
    /// Mailbox capacity.
    pub mailbox_capacity: usize,
    /// Approximate bytes held by the session indexes.
    pub index_bytes: u64,
}

impl ReconfigurationManager {
    /// Sends the message `make` builds around a fresh responder and waits for the answer.
    ///
    /// The message is built before the returned future is first polled, so the future
    /// holds it once, not beside the arguments it was built from: a caller's future is
    /// moved into place on every call, and with `async fn`s nested three deep it came to
    /// 1.7 KB for one delegation.
    pub(crate) fn ask<T>(
        &self,
        make: impl FnOnce(Responder<T>) -> Message,
    ) -> impl Future<Output = Result<T, ManagerError>> + Send + '_
    where
        T: Send + 'static,
    {
        let (respond, answer) = oneshot::channel();
        self.post(make(respond), answer)
    }

    async fn post<T>(
        &self,
        message: Message,
        answer: oneshot::Receiver<Result<T, ManagerError>>,
    ) -> Result<T, ManagerError> {
        let (watch, command) = (Stopwatch::start(), message.name());
        // Room first, then the message moves straight into it: `send(message)` would keep a
        // second copy in its own future while it waits for room.
        let permit = self.tx.reserve().await.map_err(|_| ManagerError::Stopped)?;
        permit.send(message);
        let result = answer.await.map_err(|_| ManagerError::Stopped)?;
        watch.command(command);
        result
    }

    fn command<T>(
        &self,
        make: impl FnOnce(Responder<T>) -> Command,
    ) -> impl Future<Output = Result<T, ManagerError>> + Send + '_
    where
        T: Send + 'static,
    {
        self.ask(|respond| Message::Command(make(respond)))
    }

    pub(crate) fn gate(&self, operation: &'static str) -> Result<(), ManagerError> {
        self.capabilities.require(RECONFIGURATION_SURFACES).map_err(|source| {
            ManagerError::MissingCapability {
                operation,
                required: RECONFIGURATION_SURFACES.iter().map(|s| (*s).to_owned()).collect(),
                source,
            }
        })
    }

    /// Registers a bundle.
    pub async fn register_bundle(&self, bundle: ComposedBundle) -> Result<ComposedBundle, ManagerError> {
        self.command(|respond| Command::Register { bundle, respond }).await
    }

    /// A registered bundle (local read, as every read of this handle: the state this
    /// manager has applied).
    pub fn bundle<Q>(&self, id: &Q) -> Option<ComposedBundle>
    where
        BundleId: std::borrow::Borrow<Q>,
        Q: Ord + ?Sized,
    {
        read(&self.shared.state).bundle(id).cloned()
    }

    /// Every registered bundle, sorted by id.
    pub fn bundles(&self) -> Vec<ComposedBundle> {
        read(&self.shared.state).bundles().cloned().collect()
    }

    /// Links two bundles into a new one. Requires the reconfiguration surfaces.
    pub async fn link_bundles(
        &self,
        left: BundleId,
        right: BundleId,
        linked: BundleId,
    ) -> Result<ComposedBundle, ManagerError> {
        self.gate("link_bundles")?;
        self.command(|respond| Command::Link { left, right, linked, respond }).await
    }

    /// An authority's footprint. Reads the whole session table under the state's read
    /// lock (milliseconds at a million sessions, during which commits wait): an inspection
    /// call. [`footprint_summary`](Self::footprint_summary) is O(1).
    pub fn footprint(&self, authority: &AuthorityId) -> SessionFootprint {
        read(&self.shared.state).footprint(authority)
    }

    /// An authority's footprint summary (counts and digest), in O(1).
    pub fn footprint_summary(&self, authority: &AuthorityId) -> reconf_core::FootprintSummary {
        read(&self.shared.state).footprint_summary(authority)
    }

    /// Every link made, by the id of the bundle it produced.
    pub fn links(&self) -> Vec<(BundleId, LinkRecord)> {
        read(&self.shared.state).links().iter().map(|(id, l)| (id.clone(), l.clone())).collect()
    }

    /// Every authority the state has seen with its footprint summary, in the order the
    /// state first saw them. O(authorities), under the read lock.
    pub fn authority_summaries(&self) -> Vec<(AuthorityId, FootprintSummary)> {
        let state = read(&self.shared.state);
        state.authorities().map(|a| (a, state.footprint_summary(&a))).collect()
    }

    /// A copy of the whole applied state, for offline inspection and comparison (a memory
    /// copy of the tables: milliseconds at a million sessions, under the read lock).
    pub fn state_snapshot(&self) -> State {
        read(&self.shared.state).clone()
    }

    /// A session's record.
    pub fn session(&self, session: &SessionId) -> Option<SessionRecord> {
        read(&self.shared.state).session(session)
    }

    /// Opens a native session held by `authority`; returns its owner generation.
    pub async fn open_session(
        &self,
        session: SessionId,
        authority: AuthorityId,
        bundle: Option<BundleId>,
    ) -> Result<u64, ManagerError> {
        self.command(|respond| Command::Open { session, authority, bundle, respond }).await
    }

    /// Delegates a session from its active holder. Requires the reconfiguration surfaces;
    /// the fact is durable before this returns.
    pub async fn delegate_session(
        &self,
        request: DelegationRequest,
    ) -> Result<DelegationOutcome, ManagerError> {
        if let Err(e) = self.gate("delegate_session") {
            tracing::info!(name: crate::events::DELEGATION_REJECTED, session = %request.session, error = %e);
            telemetry::answered(true, false, Err(&e));
            return Err(e);
        }
        self.command(|respond| Command::Delegate { request, respond }).await
    }

    /// Makes `owner` the live owner of an open session, with the boundary's scope.
    pub async fn attach_owner(
        &self,
        session: SessionId,
        owner: OwnerLabel,
        boundary: LinkBoundary,
    ) -> Result<OwnedSession, ManagerError> {
        self.ask(|respond| Message::Attach { session, owner, boundary, respond }).await
    }

    /// Hands a live session to `to_owner` together with the delegation, in two phases:
    /// stage the new owner (the current one stays valid), persist the delegation, commit
    /// the owner change. On any failure the stage is aborted and `handle` is exactly as
    /// valid as before.
    pub async fn delegate_active_session(
        &self,
        handle: &OwnedSession,
        request: DelegationRequest,
        to_owner: OwnerLabel,
    ) -> Result<HandoffOutcome, ManagerError> {
        if let Err(e) = self.gate("delegate_active_session") {
            tracing::info!(name: crate::events::DELEGATION_REJECTED, session = %request.session, error = %e);
            telemetry::answered(true, true, Err(&e));
            return Err(e);
        }
        let handle = handle.clone();
        self.command(|respond| Command::Handoff { request, handle, to_owner, respond }).await
    }

    /// Ingress check: rejects a stale owner, a capability of another session, and a
    /// boundary outside the capability's scope. On a shared registry it also rejects an
    /// owner of this node once this node's lease has lapsed ([`OwnershipError::LeaseLost`]),
    /// from the instant the lease could expire, even before the registry says so.
    pub fn check_ingress(
        &self,
        capability: &OwnerCapability,
        boundary: &LinkBoundary,
    ) -> Result<(), OwnershipError> {
        let live = read(&self.shared.live);
        live.check_ingress(capability, boundary)?;
        self.check_lease(&live, capability.session)
    }

    /// Ingress check for one fragment of `session` (with the same lease rule as
    /// [`check_ingress`](Self::check_ingress)).
    pub fn check_fragment(
        &self,
        session: SessionId,
        capability: &OwnerCapability,
        fragment: &str,
    ) -> Result<(), OwnershipError> {
        let live = read(&self.shared.live);
        live.check_fragment(session, capability, fragment)?;
        self.check_lease(&live, session)
    }

    /// An owner of this node passes only while this node's lease is certainly held.
    fn check_lease(
        &self,
        live: &reconf_core::LiveSessions,
        session: SessionId,
    ) -> Result<(), OwnershipError> {
        let Some(registry) = &self.registry else { return Ok(()) };
        let ours = live.owner(&session).is_some_and(|o| o.node.as_ref() == Some(&registry.node));
        if ours && !registry.effects.lease_valid() {
            return Err(OwnershipError::LeaseLost { session, node: registry.node.clone() });
        }
        Ok(())
    }

    /// The ingress check against the shared registry as it is now (a linearizable read of
    /// the session's record), for the moments a local view that may trail by a watch round
    /// trip is not enough. Without a shared registry it is [`check_ingress`](Self::check_ingress).
    ///
    /// # Errors
    /// [`ManagerError::Ownership`] when the check refuses, [`ManagerError::Journal`] when
    /// the registry cannot be read.
    pub async fn check_ingress_linearizable(
        &self,
        capability: &OwnerCapability,
        boundary: &LinkBoundary,
    ) -> Result<(), ManagerError> {
        let Some(registry) = &self.registry else {
            return self.check_ingress(capability, boundary).map_err(ManagerError::Ownership);
        };
        let session = capability.session;
        let entry = registry.effects.get(session).await.map_err(ManagerError::Journal)?;
        let mut one = reconf_core::LiveSessions::default();
        if let Some(owner) = entry.as_ref().and_then(|e| crate::owners::decode(&e.value)) {
            one.insert(session, owner);
        }
        one.check_ingress(capability, boundary)?;
        self.check_lease(&one, session)?;
        Ok(())
    }

    /// This node's name in the shared live-owner registry, if there is one.
    pub fn node(&self) -> Option<&OwnerLabel> {
        self.registry.as_ref().map(|r| &r.node)
    }

    /// Notices of this node's live owners lost without this node asking: its lease lapsed,
    /// another node took the session, or another node moved or closed it. The embedder
    /// stops running each session it is told about. Only a shared registry sends any; a
    /// receiver that falls more than 1024 notices behind is told how many it missed.
    pub fn owner_notices(&self) -> tokio::sync::broadcast::Receiver<crate::owners::OwnerNotice> {
        self.shared.notices.0.subscribe()
    }

    /// The live owner of a session.
    pub fn live_owner(&self, session: &SessionId) -> Option<OwnedSession> {
        read(&self.shared.live).owner(session).map(OwnedSession::of)
    }

    /// The owner of one fragment of a live session.
    pub fn fragment_owner(&self, session: SessionId, fragment: &str) -> Option<OwnerLabel> {
        read(&self.shared.live).fragment_owner(session, fragment).cloned()
    }

    /// Closes a session held by `authority` (its live owner, if any, is detached).
    pub async fn close_session(
        &self,
        session: SessionId,
        authority: AuthorityId,
    ) -> Result<(), ManagerError> {
        self.command(|respond| Command::Close { session, authority, respond }).await
    }

    /// Closes a session as its live owner: `handle` must be the session's current owner's
    /// and hold the whole session (a fragment owner cannot close what it does not own).
    /// The session is closed as its active holder, and the owner detached.
    pub async fn close_owned_session(&self, handle: &OwnedSession) -> Result<(), ManagerError> {
        let handle = handle.clone();
        self.command(|respond| Command::CloseOwned { handle, respond }).await
    }

    /// Detaches a live owner by its own handle, which must be current and hold the whole
    /// session; the session stays open.
    pub async fn detach_owner(&self, handle: &OwnedSession) -> Result<(), ManagerError> {
        let handle = handle.clone();
        self.ask(|respond| Message::Detach { handle, respond }).await
    }

    /// Full coherence audit of the published state.
    pub async fn verify_coherence(&self) -> CoherenceReport {
        let report = read(&self.shared.state).verify_coherence();
        for v in &report.violations {
            tracing::error!(name: crate::events::COHERENCE_VIOLATION, session = ?v.session(), violation = %v);
        }
        report
    }

    /// Counts.
    pub fn stats(&self) -> ManagerStats {
        let (state, index_bytes) = {
            let s = read(&self.shared.state);
            (s.stats(), s.approx_index_bytes() as u64)
        };
        let sh = &self.shared;
        ManagerStats {
            state,
            live_sessions: read(&sh.live).len() as u64,
            actor: ActorStats {
                batches: Shared::load(&sh.batches),
                commits: Shared::load(&sh.commits),
                facts: Shared::load(&sh.facts),
                rejected: Shared::load(&sh.rejected),
                failed_batches: Shared::load(&sh.failed_batches),
                conflicts: Shared::load(&sh.conflicts),
                snapshots: Shared::load(&sh.snapshots),
                followed: Shared::load(&sh.followed),
                leases_lost: Shared::load(&sh.leases_lost),
                owners_lost: Shared::load(&sh.owners_lost),
                fenced: Shared::load(&sh.fenced),
            },
            mailbox_capacity: self.mailbox_capacity,
            index_bytes,
        }
    }

    /// Brings this manager's state up to the journal's current head: every change any
    /// manager on the journal had committed when `sync` was called is applied when it
    /// returns. Answers the applied head.
    ///
    /// This is the linearizable read: call it before a read (`session`, `footprint`,
    /// `check_ingress`, `state_snapshot`, …) that must see other managers' latest writes.
    /// Those reads alone are local: fast, never blocking, and behind the journal by at most
    /// the time it takes this manager to follow it (on a shared journal, a watch round trip;
    /// on a single-process journal, never behind).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), reconf_runtime::ManagerError> {
    /// let manager = reconf_runtime::ManagerBuilder::new().memory_journal().without_manifests().open().await?;
    /// assert_eq!(manager.sync().await?, 0);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`ManagerError::Journal`] when the journal cannot be read, [`ManagerError::Stopped`]
    /// after shutdown.
    pub async fn sync(&self) -> Result<u64, ManagerError> {
        self.ask(|respond| Message::Sync { respond }).await
    }

    /// What recovery found when this manager opened.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.recovery
    }

    /// Stops the actor after the commands already queued, and closes the journal. Other
    /// handles get [`ManagerError::Stopped`] afterwards.
    pub async fn shutdown(&self) -> Result<(), ManagerError> {
        let (respond, stopped) = oneshot::channel();
        // A manager that has already stopped is stopped: both are success.
        if self.tx.send(Message::Shutdown { respond }).await.is_ok() {
            let _ = stopped.await;
        }
        Ok(())
    }
}
