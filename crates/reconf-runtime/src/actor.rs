//! The actor: the one task that owns writes to the core state.
//!
//! It drains what is waiting in the mailbox, checks the commands in order against the state
//! as the earlier ones would leave it, persists all their facts in one journal commit,
//! applies them, and only then answers every caller. If the commit fails nothing is
//! applied and every caller of the batch gets a typed error.

use std::sync::Arc;

use reconf_core::{
    Applied, Change, Checker, Command, CommandError, ComposedBundle, Fact, LinkBoundary, LiveSessions,
    OwnerLabel, SessionId, State,
};
use reconf_effects::time::{PhysicalTime, PhysicalTimeEffects, TimeError};
use reconf_effects::{ExpectedHead, JournalEffects, JournalError};
use tokio::sync::{mpsc, oneshot};

use crate::error::{BoundaryError, ManagerError};
use crate::events;
use crate::request::{
    CheckedCoherence, DelegationOutcome, DelegationRequest, DelegationWitness, HandoffOutcome, OwnedSession,
};
use crate::shared::{read, write, Shared};

/// Most commands one batch takes from the mailbox.
const MAX_BATCH: usize = 1024;
/// Retries after a journal head conflict before the batch is refused.
const MAX_CONFLICT_RETRIES: usize = 8;
/// Records read per page while catching up.
pub(crate) const READ_PAGE: usize = 4096;

pub(crate) enum Op {
    Register(ComposedBundle),
    Link {
        left: reconf_core::BundleId,
        right: reconf_core::BundleId,
        linked: reconf_core::BundleId,
    },
    Open {
        session: SessionId,
        authority: reconf_core::AuthorityId,
        bundle: Option<reconf_core::BundleId>,
    },
    Close {
        session: SessionId,
        authority: reconf_core::AuthorityId,
    },
    Delegate(DelegationRequest),
    Handoff {
        request: DelegationRequest,
        handle: OwnedSession,
        to_owner: OwnerLabel,
    },
    Attach {
        session: SessionId,
        owner: OwnerLabel,
        boundary: LinkBoundary,
    },
    #[cfg(feature = "upgrade-executor")]
    Upgrade(crate::upgrade::UpgradeOp),
    Shutdown,
}

#[derive(Debug)]
pub(crate) enum Reply {
    Unit,
    Bundle(ComposedBundle),
    Opened {
        generation: u64,
    },
    Delegated(Box<DelegationOutcome>),
    HandedOff(Box<HandoffOutcome>),
    Attached(OwnedSession),
    #[cfg(feature = "upgrade-executor")]
    Upgrade(crate::upgrade::UpgradeReply),
}

pub(crate) struct Envelope {
    pub(crate) op: Op,
    pub(crate) reply: oneshot::Sender<Result<Reply, ManagerError>>,
}

/// What checking one command decided.
enum Plan {
    Done(Result<Reply, ManagerError>),
    Register,
    Link,
    Open,
    Close(SessionId),
    Delegate,
    Handoff { session: SessionId },
}

pub(crate) struct Actor {
    pub(crate) shared: Arc<Shared>,
    pub(crate) journal: Arc<dyn JournalEffects>,
    pub(crate) clock: Arc<dyn PhysicalTimeEffects>,
    pub(crate) snapshot_interval: Option<u64>,
    pub(crate) last_snapshot: u64,
    pub(crate) snapshot_task: Option<tokio::task::JoinHandle<()>>,
}

fn delegation_error(e: CommandError) -> ManagerError {
    match e {
        CommandError::UnknownBundle { bundle } => ManagerError::BundleNotRegistered { bundle },
        CommandError::BoundaryBundleMismatch { bundle, boundary } => {
            ManagerError::InvalidLinkBoundary(BoundaryError::BundleMismatch { bundle, boundary })
        }
        CommandError::BoundaryScopeMismatch { scope, boundary } => {
            ManagerError::InvalidLinkBoundary(BoundaryError::ScopeMismatch { scope, boundary })
        }
        other => ManagerError::DelegateSession(other),
    }
}

fn fragments_of(scope: &reconf_core::CapabilityScope) -> Vec<String> {
    match scope {
        reconf_core::CapabilityScope::WholeSession => vec!["*".to_owned()],
        reconf_core::CapabilityScope::Fragments(f) => f.iter().cloned().collect(),
    }
}

impl Actor {
    pub(crate) async fn run(mut self, mut rx: mpsc::Receiver<Envelope>) {
        while let Some(first) = rx.recv().await {
            let mut batch = vec![first];
            Self::drain(&mut rx, &mut batch);
            if batch.len() < MAX_BATCH {
                // Callers just answered by the previous batch are runnable but have not sent
                // yet: one yield lets them, so their commands share this batch's journal
                // commit instead of each waking the actor (and the disk) on its own.
                tokio::task::yield_now().await;
                Self::drain(&mut rx, &mut batch);
            }
            let (shutdown, work): (Vec<_>, Vec<_>) =
                batch.into_iter().partition(|e| matches!(e.op, Op::Shutdown));
            if !work.is_empty() {
                self.process(work).await;
            }
            if !shutdown.is_empty() {
                // Close the journal before answering, so a caller that reopens the same
                // store after `shutdown` returns finds it free.
                self.finish_snapshot().await;
                drop(self);
                for s in shutdown {
                    let _ = s.reply.send(Ok(Reply::Unit));
                }
                return;
            }
        }
    }

    fn drain(rx: &mut mpsc::Receiver<Envelope>, batch: &mut Vec<Envelope>) {
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(e) => batch.push(e),
                Err(_) => break,
            }
        }
    }

    fn needs_time(batch: &[Envelope]) -> bool {
        batch.iter().any(|e| matches!(e.op, Op::Delegate(_) | Op::Handoff { .. }))
    }

    async fn process(&mut self, batch: Vec<Envelope>) {
        Shared::bump(&self.shared.batches, 1);
        #[cfg(feature = "upgrade-executor")]
        let batch = {
            let rest = self.process_upgrades(batch).await;
            if rest.is_empty() {
                return;
            }
            rest
        };
        let mut attempt = 0;
        loop {
            let now = if Self::needs_time(&batch) { Some(self.clock.physical_time().await) } else { None };
            let (plans, facts) = self.plan(&batch, now.as_ref());
            if facts.is_empty() {
                self.reply_all(batch, plans, None);
                return;
            }
            let head = read(&self.shared.state).head();
            let expected = ExpectedHead::from_head((head > 0).then_some(head));
            match self.journal.commit(facts.clone(), expected).await {
                Ok(committed) => {
                    Shared::bump(&self.shared.commits, 1);
                    Shared::bump(&self.shared.facts, facts.len() as u64);
                    let applied = self.apply(committed.first, &facts);
                    self.reply_all(batch, plans, Some((applied, facts)));
                    self.maybe_snapshot().await;
                    return;
                }
                Err(JournalError::Conflict { actual, .. }) if attempt < MAX_CONFLICT_RETRIES => {
                    attempt += 1;
                    Shared::bump(&self.shared.conflicts, 1);
                    tracing::info!(name: events::JOURNAL_CONFLICT, local_head = head, journal_head = ?actual, attempt);
                    self.abort_handoffs(&plans);
                    if let Err(e) = self.catch_up().await {
                        self.fail_batch(batch, plans, e);
                        return;
                    }
                }
                Err(e) => {
                    self.fail_batch(batch, plans, e);
                    // The write may have landed (an ambiguous failure): re-read so the state
                    // matches the journal before the next batch.
                    if let Err(e) = self.catch_up().await {
                        tracing::error!(name: events::BATCH_FAILED, error = %e, "catch-up after a failed commit failed");
                    }
                    return;
                }
            }
        }
    }

    fn fail_batch(&mut self, batch: Vec<Envelope>, plans: Vec<Plan>, e: JournalError) {
        Shared::bump(&self.shared.failed_batches, 1);
        tracing::warn!(name: events::BATCH_FAILED, error = %e, commands = batch.len());
        self.abort_handoffs(&plans);
        let plans = plans
            .into_iter()
            .map(|p| {
                let operation = match &p {
                    Plan::Done(_) => return p,
                    Plan::Register => "register bundle",
                    Plan::Link => "link bundles",
                    Plan::Open => "open session",
                    Plan::Close(_) => "close session",
                    Plan::Delegate => "delegation",
                    Plan::Handoff { .. } => "live handoff",
                };
                let err = ManagerError::Persist { operation, source: e.clone() };
                let err = if matches!(p, Plan::Handoff { .. }) {
                    ManagerError::Reconfiguration(Box::new(err))
                } else {
                    err
                };
                Plan::Done(Err(err))
            })
            .collect();
        self.reply_all(batch, plans, None);
    }

    fn abort_handoffs(&self, plans: &[Plan]) {
        let mut live = write(&self.shared.live);
        for p in plans {
            if let Plan::Handoff { session, .. } = p {
                match live.abort(*session) {
                    Ok(()) => tracing::info!(name: events::HANDOFF_ROLLED_BACK, session = %session),
                    Err(e) => {
                        tracing::error!(name: events::HANDOFF_ROLLED_BACK, session = %session, error = %e, "rollback failed")
                    }
                }
            }
        }
    }

    /// Checks every command of the batch; returns one plan per envelope and the facts to
    /// write, in order.
    fn plan(
        &self,
        batch: &[Envelope],
        now: Option<&Result<PhysicalTime, TimeError>>,
    ) -> (Vec<Plan>, Vec<Fact>) {
        let state = read(&self.shared.state);
        // Fetch every record the batch names before checking any, so their cache misses
        // overlap.
        state.prefetch_sessions(batch.iter().filter_map(|e| match &e.op {
            Op::Delegate(r) | Op::Handoff { request: r, .. } => Some(r.session),
            Op::Open { session, .. } | Op::Close { session, .. } => Some(*session),
            _ => None,
        }));
        let mut live = write(&self.shared.live);
        let mut checker = state.checker();
        let mut facts = Vec::new();
        let plans = batch
            .iter()
            .map(|env| {
                let plan = Self::plan_one(&state, &mut checker, &mut live, &env.op, now);
                match plan {
                    Ok((plan, fact)) => {
                        facts.push(fact);
                        plan
                    }
                    Err(done) => done,
                }
            })
            .collect();
        (plans, facts)
    }

    // `Err` carries the refusal to answer with; it is moved once per command, so boxing it
    // would cost an allocation for nothing.
    #[allow(clippy::result_large_err)]
    fn plan_one(
        state: &State,
        checker: &mut Checker<'_>,
        live: &mut LiveSessions,
        op: &Op,
        now: Option<&Result<PhysicalTime, TimeError>>,
    ) -> Result<(Plan, Fact), Plan> {
        let refuse = |e: ManagerError| Plan::Done(Err(e));
        #[allow(clippy::result_large_err)]
        let at_ms = || match now {
            Some(Ok(t)) => Ok(t.ms),
            Some(Err(e)) => Err(refuse(ManagerError::DelegationTimestamp(e.clone()))),
            None => Err(refuse(ManagerError::Config("delegation planned without a timestamp".to_owned()))),
        };
        match op {
            Op::Register(b) => checker
                .check(&Command::RegisterBundle(b.clone()))
                .map(|f| (Plan::Register, f))
                .map_err(|e| refuse(ManagerError::RegisterBundle(e))),
            Op::Link { left, right, linked } => checker
                .check(&Command::LinkBundles {
                    left: left.clone(),
                    right: right.clone(),
                    linked: linked.clone(),
                })
                .map(|f| (Plan::Link, f))
                .map_err(|e| refuse(ManagerError::LinkBundles(e))),
            Op::Open { session, authority, bundle } => checker
                .check(&Command::OpenSession {
                    session: *session,
                    authority: *authority,
                    bundle: bundle.clone(),
                })
                .map(|f| (Plan::Open, f))
                .map_err(|e| refuse(ManagerError::OpenSession(e))),
            Op::Close { session, authority } => checker
                .check(&Command::CloseSession { session: *session, authority: *authority })
                .map(|f| (Plan::Close(*session), f))
                .map_err(|e| refuse(ManagerError::CloseSession(e))),
            Op::Delegate(req) => {
                let at = at_ms()?;
                checker
                    .check(&Command::Delegate(req.to_core(at)))
                    .map(|f| (Plan::Delegate, f))
                    .map_err(|e| refuse(delegation_error(e)))
            }
            Op::Handoff { request, handle, to_owner } => {
                if handle.session() != request.session {
                    return Err(refuse(ManagerError::SessionMismatch {
                        handle: handle.session(),
                        request: request.session,
                    }));
                }
                let at = at_ms()?;
                let scope = request.effective_scope();
                let session = request.session;
                // Unknown session: let the core name the error.
                let next = checker.generation(&session).map_or(0, |g| g.saturating_add(1));
                if checker.holder(&session).is_some() {
                    live.stage(&handle.capability, to_owner.clone(), next, scope.clone())
                        .map_err(|e| refuse(ManagerError::OwnerTransfer(e)))?;
                }
                match checker.check(&Command::Delegate(request.to_core(at))) {
                    Ok(f) => Ok((Plan::Handoff { session }, f)),
                    Err(e) => {
                        let cause = ManagerError::Reconfiguration(Box::new(delegation_error(e)));
                        if live.staged_owner(&session).is_some() {
                            if let Err(source) = live.abort(session) {
                                return Err(refuse(ManagerError::RollbackFailed { session, source }));
                            }
                            tracing::info!(name: events::HANDOFF_ROLLED_BACK, session = %session);
                        }
                        Err(refuse(cause))
                    }
                }
            }
            Op::Attach { session, owner, boundary } => {
                let result = match state.session(session) {
                    None => Err(ManagerError::OwnerTransfer(reconf_core::OwnershipError::NotLive {
                        session: *session,
                    })),
                    Some(_) if state.bundle(&boundary.bundle).is_none() => {
                        Err(ManagerError::BundleNotRegistered { bundle: boundary.bundle.clone() })
                    }
                    Some(rec) => live
                        .attach(*session, owner.clone(), rec.generation, boundary.clone())
                        .map(|capability| {
                            Reply::Attached(OwnedSession {
                                owner: owner.clone(),
                                capability,
                                boundary: boundary.clone(),
                            })
                        })
                        .map_err(ManagerError::OwnerTransfer),
                };
                Err(Plan::Done(result))
            }
            #[cfg(feature = "upgrade-executor")]
            Op::Upgrade(_) => {
                Err(refuse(ManagerError::Config("upgrade routed to the command path".to_owned())))
            }
            Op::Shutdown => Err(Plan::Done(Ok(Reply::Unit))),
        }
    }

    /// Applies durable facts starting at `first`, in one write-lock hold.
    fn apply(&self, first: u64, facts: &[Fact]) -> Vec<Applied> {
        write(&self.shared.state).apply_batch(first, facts)
    }

    fn reply_all(&self, batch: Vec<Envelope>, plans: Vec<Plan>, applied: Option<(Vec<Applied>, Vec<Fact>)>) {
        let (applied, facts) = applied.unwrap_or_default();
        let mut applied = applied.into_iter().zip(facts);
        let state = read(&self.shared.state);
        let mut live = write(&self.shared.live);
        for (env, plan) in batch.into_iter().zip(plans) {
            let result = match plan {
                Plan::Done(r) => r,
                plan => match applied.next() {
                    Some((a, fact)) => Self::outcome(&state, &mut live, plan, a, &fact),
                    None => Err(ManagerError::Stopped),
                },
            };
            if result.is_err() {
                Shared::bump(&self.shared.rejected, 1);
                Self::log_rejection(&env.op, result.as_ref().err());
            }
            // A caller that gave up waiting is no reason to stop.
            let _ = env.reply.send(result);
        }
    }

    fn log_rejection(op: &Op, err: Option<&ManagerError>) {
        let Some(err) = err else { return };
        match op {
            Op::Delegate(r) | Op::Handoff { request: r, .. } => {
                tracing::info!(name: events::DELEGATION_REJECTED, session = %r.session, from = %r.from.short(), to = %r.to.short(), bundle = %r.bundle, error = %err);
            }
            _ => tracing::info!(name: events::COMMAND_REJECTED, error = %err),
        }
    }

    fn detach_if_live(live: &mut LiveSessions, session: SessionId) {
        if let Some(gone) = live.detach(&session) {
            tracing::info!(name: events::OWNER_DETACHED, session = %session, owner = %gone.owner);
        }
    }

    fn outcome(
        state: &State,
        live: &mut LiveSessions,
        plan: Plan,
        applied: Applied,
        fact: &Fact,
    ) -> Result<Reply, ManagerError> {
        match (plan, applied) {
            (Plan::Register, Applied::BundleRegistered { bundle })
            | (Plan::Link, Applied::BundlesLinked { linked: bundle }) => {
                tracing::info!(name: events::COMMAND_PERSISTED, bundle = %bundle, head = state.head());
                state
                    .bundle(&bundle)
                    .cloned()
                    .map(Reply::Bundle)
                    .ok_or(ManagerError::BundleNotRegistered { bundle })
            }
            (Plan::Open, Applied::SessionOpened { session, generation }) => {
                tracing::info!(name: events::COMMAND_PERSISTED, session = %session, generation);
                Ok(Reply::Opened { generation })
            }
            (Plan::Close(session), Applied::SessionClosed { .. }) => {
                tracing::info!(name: events::COMMAND_PERSISTED, session = %session, closed = true);
                Self::detach_if_live(live, session);
                Ok(Reply::Unit)
            }
            (Plan::Delegate, Applied::SessionDelegated(receipt)) => {
                Self::detach_if_live(live, receipt.session);
                Self::witness(state, *receipt, fact).map(|o| Reply::Delegated(Box::new(o)))
            }
            (Plan::Handoff { session }, Applied::SessionDelegated(receipt)) => {
                let delegation = Self::witness(state, *receipt, fact)?;
                let ownership = live.commit(session).map_err(ManagerError::OwnerTransfer)?;
                let owned = live
                    .owner(&session)
                    .map(|l| OwnedSession {
                        owner: l.owner.clone(),
                        capability: l.capability.clone(),
                        boundary: l.boundary.clone(),
                    })
                    .ok_or(ManagerError::OwnerTransfer(reconf_core::OwnershipError::NotLive { session }))?;
                tracing::info!(name: events::HANDOFF_COMMITTED, session = %session, from_owner = %ownership.from_owner, to_owner = %ownership.to_owner, generation = ownership.to_generation);
                Ok(Reply::HandedOff(Box::new(HandoffOutcome { delegation, ownership, owned })))
            }
            _ => Err(ManagerError::Config("a fact applied with an unexpected outcome".to_owned())),
        }
    }

    fn witness(
        state: &State,
        receipt: reconf_core::DelegationReceipt,
        fact: &Fact,
    ) -> Result<DelegationOutcome, ManagerError> {
        // The scope is the fact's; the check already proved any given boundary equals the
        // bundle's boundary with that scope, so neither is computed twice.
        let Change::SessionDelegated(d) = &fact.change else {
            return Err(ManagerError::Config("a delegation outcome for another kind of fact".to_owned()));
        };
        let scope = d.scope.clone();
        let boundary = LinkBoundary { bundle: d.bundle.clone(), scope: scope.clone() };
        if let Err(v) = state.session_coherence(&receipt.session) {
            tracing::error!(name: events::COHERENCE_VIOLATION, session = %receipt.session, violation = %v);
            return Err(ManagerError::CoherenceViolation(v));
        }
        tracing::info!(
            name: events::DELEGATION_PERSISTED,
            session = %receipt.session,
            from = %receipt.from.short(),
            to = %receipt.to.short(),
            bundle = %receipt.bundle,
            sequence = receipt.sequence,
            generation = receipt.generation
        );
        let witness = DelegationWitness {
            context: receipt.context,
            session: receipt.session,
            from: receipt.from,
            to: receipt.to,
            bundle: receipt.bundle.clone(),
            boundary,
            moved_fragments: fragments_of(&scope),
            scope,
            coherence: CheckedCoherence::Coherent,
            sequence: receipt.sequence,
        };
        Ok(DelegationOutcome { receipt, witness })
    }

    /// Reads and applies whatever the journal holds past the local head (another writer's
    /// records, or an ambiguous commit that landed).
    pub(crate) async fn catch_up(&mut self) -> Result<u64, JournalError> {
        let mut applied = 0;
        loop {
            let from = read(&self.shared.state).head() + 1;
            let records = self.journal.read(from, READ_PAGE).await?;
            if records.is_empty() {
                return Ok(applied);
            }
            let mut state = write(&self.shared.state);
            let mut live = write(&self.shared.live);
            for r in records {
                if r.sequence != state.head() + 1 {
                    return Err(JournalError::Corrupt {
                        sequence: state.head() + 1,
                        corruption: reconf_effects::Corruption::Gap { found: r.sequence },
                    });
                }
                if let Some(s) = r.fact.session() {
                    Self::detach_if_live(&mut live, s);
                }
                state.apply(r.sequence, &r.fact);
                applied += 1;
            }
        }
    }

    /// Starts a snapshot when `every` records have passed since the last one. The actor
    /// only copies the state (its tables hold plain-old-data entries, so this is a memory
    /// copy); serializing and writing happen in a background task, so callers are not
    /// held up by a million-session snapshot. At most one is in flight.
    async fn maybe_snapshot(&mut self) {
        let Some(every) = self.snapshot_interval else { return };
        if self.snapshot_task.as_ref().is_some_and(|t| !t.is_finished()) {
            return;
        }
        let copy = {
            let state = read(&self.shared.state);
            if state.head() < self.last_snapshot.saturating_add(every) {
                return;
            }
            state.clone()
        };
        let head = copy.head();
        // A failed snapshot is retried one interval later; the journal still holds every
        // record, so nothing depends on it.
        self.last_snapshot = head;
        let journal = Arc::clone(&self.journal);
        let shared = Arc::clone(&self.shared);
        self.snapshot_task = Some(tokio::spawn(async move {
            let encoded = tokio::task::spawn_blocking(move || postcard::to_allocvec(&copy)).await;
            let result = match encoded {
                Ok(Ok(bytes)) => journal.write_snapshot(head, bytes).await,
                Ok(Err(e)) => Err(JournalError::Encode { reason: e.to_string() }),
                Err(e) => Err(JournalError::Storage { reason: format!("snapshot task: {e}") }),
            };
            match result {
                Ok(()) => {
                    Shared::bump(&shared.snapshots, 1);
                    tracing::info!(name: events::SNAPSHOT_WRITTEN, sequence = head);
                }
                Err(e) => tracing::warn!(name: events::SNAPSHOT_FAILED, sequence = head, error = %e),
            }
        }));
    }

    /// Waits for a snapshot still being written, so the journal is free once the actor
    /// stops.
    async fn finish_snapshot(&mut self) {
        if let Some(task) = self.snapshot_task.take() {
            // A panicked snapshot task wrote nothing; the journal is intact either way.
            let _ = task.await;
        }
    }
}
