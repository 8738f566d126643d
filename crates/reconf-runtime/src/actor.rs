//! The actor: the one task that owns writes to the core state.
//!
//! One command goes: handle → mailbox ([`Message`], with its typed responder) → a batch of
//! everything waiting → checked in order by the core's [`Checker`] against the state as
//! the earlier commands of the batch would leave it ([`Command`] → [`Checked`], holding the
//! fact it would write or its refusal) → the batch's facts in one journal commit expecting
//! the applied head ([`commit`]) → each accepted command applies its own fact → each
//! caller is answered with its own typed result. A conflict (another writer moved the
//! head) catches up through [`replay`] and re-checks the batch; a failed commit answers
//! every accepted command with [`ManagerError::Persist`] and applies nothing.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use reconf_core::{
    Checker, ComposedBundle, Delegation, DelegationFact, DelegationReceipt, Fact, LinkBoundary, LiveError,
    LiveSessions, Overlay, OwnerLabel, OwnerToken, SessionId, State,
};
use reconf_effects::time::{PhysicalTimeEffects, TimeError};
use reconf_effects::{JournalEffects, JournalError, OwnerEvent, OwnerExpect, OwnerTxn, OwnerWrite};
use tokio::sync::{mpsc, oneshot};

use crate::commit::{self, Failure};
use crate::error::ManagerError;
use crate::events;
use crate::mailbox::{answer, Command, Message, Responder};
use crate::owners::{self, OwnerLoss, Registry};
use crate::replay::replay;
use crate::request::{DelegationOutcome, DelegationWitness, HandoffOutcome, OwnedSession};
use crate::shared::{read, write, Shared};
use crate::telemetry;

/// Most commands one batch takes from the mailbox.
const MAX_BATCH: usize = 1024;
/// Most yields the actor spends gathering arriving commands into a batch before launching
/// its commit (with nothing in flight, the journal is idle meanwhile).
const GATHER_ROUNDS: usize = 4;
/// Retries after a journal head conflict before the batch is refused as a conflict. Each
/// retry first catches up (one read) and re-checks, so a command is refused by the re-check
/// when the other writers' changes make it invalid; this bound only stops a manager that
/// loses every race for a very long time (several managers committing flat out on one
/// journal make a dozen losses in a row ordinary).
const MAX_CONFLICT_RETRIES: usize = 1_000;
/// Retries made at once; later ones pause first (jittered, growing to the cap), so writers
/// that keep colliding spread out.
const PROMPT_CONFLICT_RETRIES: usize = 3;
/// The longest pause before a retry after a conflict.
const MAX_CONFLICT_PAUSE_MS: u64 = 20;
/// How long to wait before following the journal again after a failed read.
const FOLLOW_RETRY_MS: u64 = 100;
/// Most live-owner writes one commit carries: etcd allows 128 operations per transaction
/// and the commit itself takes two. A batch with more is committed in several, in order.
const MAX_OWNER_WRITES: usize = 100;

/// A command after the check: its request, its responder, and what the check decided — the
/// typed result the caller gets once the fact is durable, or the refusal. Going back to a
/// [`Command`] (after a conflict) drops the decision, so a re-check starts clean.
enum Checked {
    Register {
        bundle: ComposedBundle,
        respond: Responder<ComposedBundle>,
        fact: Result<Fact, ManagerError>,
    },
    Link {
        left: reconf_core::BundleId,
        right: reconf_core::BundleId,
        linked: reconf_core::BundleId,
        respond: Responder<ComposedBundle>,
        fact: Result<(Fact, ComposedBundle), ManagerError>,
    },
    Open {
        session: SessionId,
        authority: reconf_core::AuthorityId,
        bundle: Option<reconf_core::BundleId>,
        respond: Responder<u64>,
        fact: Result<(Fact, u64), ManagerError>,
    },
    Close {
        session: SessionId,
        authority: reconf_core::AuthorityId,
        respond: Responder<()>,
        fact: Result<Fact, ManagerError>,
    },
    CloseOwned {
        handle: OwnedSession,
        respond: Responder<()>,
        fact: Result<Fact, ManagerError>,
    },
    Delegate {
        request: Delegation,
        respond: Responder<DelegationOutcome>,
        fact: Result<DelegationFact, ManagerError>,
    },
    Handoff {
        request: Delegation,
        handle: OwnedSession,
        to_owner: OwnerLabel,
        respond: Responder<HandoffOutcome>,
        fact: Result<DelegationFact, ManagerError>,
    },
}

/// What a batch check needs: the checker over the published state, the live owners (a
/// handoff stages its new owner as it is checked) and the batch's time.
struct CheckCx<'a, 's> {
    checker: Checker<'s>,
    live: &'a mut LiveSessions,
    now: Option<&'a Result<u64, TimeError>>,
    /// On a shared registry, this node's name when its lease has lapsed: it may not hand
    /// anything over until it holds a lease again.
    lapsed: Option<OwnerLabel>,
}

impl CheckCx<'_, '_> {
    fn now(&self) -> Result<u64, ManagerError> {
        match self.now {
            Some(Ok(ms)) => Ok(*ms),
            Some(Err(e)) => Err(ManagerError::Clock(e.clone())),
            // The batch reads the clock whenever a command needs the time.
            None => Ok(0),
        }
    }
}

impl Command {
    fn check(self, cx: &mut CheckCx<'_, '_>) -> Checked {
        match self {
            Command::Register { bundle, respond } => {
                let fact = cx.checker.check_register(&bundle).map_err(ManagerError::Rejected);
                Checked::Register { bundle, respond, fact }
            }
            Command::Link { left, right, linked, respond } => {
                let fact = cx.checker.check_link(&left, &right, &linked).map_err(ManagerError::Rejected);
                Checked::Link { left, right, linked, respond, fact }
            }
            Command::Open { session, authority, bundle, respond } => {
                let fact = cx
                    .checker
                    .check_open(session, authority, bundle.as_ref())
                    .map_err(ManagerError::Rejected);
                Checked::Open { session, authority, bundle, respond, fact }
            }
            Command::Close { session, authority, respond } => {
                let fact = cx.checker.check_close(session, authority).map_err(ManagerError::Rejected);
                Checked::Close { session, authority, respond, fact }
            }
            Command::CloseOwned { handle, respond } => {
                let fact = cx.checker.check_close_owned(cx.live, &handle.capability).map_err(|e| match e {
                    LiveError::Ownership(e) => ManagerError::Ownership(e),
                    LiveError::Rejected(e) => ManagerError::Rejected(e),
                    LiveError::SessionMismatch { handle, request } => {
                        ManagerError::SessionMismatch { handle, request }
                    }
                });
                Checked::CloseOwned { handle, respond, fact }
            }
            Command::Delegate { request, respond } => {
                let fact = cx.now().and_then(|now| {
                    cx.checker.check_delegation(&request, now).map_err(ManagerError::Rejected)
                });
                Checked::Delegate { request, respond, fact }
            }
            Command::Handoff { request, handle, to_owner, respond } => {
                if let Some(node) = cx.lapsed.clone() {
                    let fact = Err(ManagerError::Ownership(reconf_core::OwnershipError::LeaseLost {
                        session: request.session,
                        node,
                    }));
                    return Checked::Handoff { request, handle, to_owner, respond, fact };
                }
                let fact = cx.now().and_then(|now| {
                    cx.checker
                        .check_handoff(
                            &request,
                            now,
                            cx.live,
                            &handle.capability,
                            to_owner.clone(),
                            fresh_token(),
                        )
                        .map_err(ManagerError::from)
                });
                if fact.is_ok() {
                    tracing::debug!(name: events::HANDOFF_STAGED, session = %request.session, to_owner = %to_owner);
                }
                Checked::Handoff { request, handle, to_owner, respond, fact }
            }
        }
    }
}

impl Checked {
    /// The fact this command writes, if it was accepted.
    fn fact(&self) -> Option<Fact> {
        match self {
            Checked::Register { fact, .. }
            | Checked::Close { fact, .. }
            | Checked::CloseOwned { fact, .. } => fact.as_ref().ok().cloned(),
            Checked::Link { fact, .. } => fact.as_ref().ok().map(|(f, _)| f.clone()),
            Checked::Open { fact, .. } => fact.as_ref().ok().map(|(f, _)| f.clone()),
            Checked::Delegate { fact, .. } | Checked::Handoff { fact, .. } => {
                fact.as_ref().ok().map(|d| Fact::new(reconf_core::Change::SessionDelegated(d.clone())))
            }
        }
    }

    /// The live-owner write this command's fact needs on a shared registry: a handoff puts
    /// its new owner (comparing the current record), a close or delegation removes the
    /// session's record if there is one (a close by the owner comparing it).
    fn owner_write(&self, live: &LiveSessions, registry: &Registry) -> Option<OwnerWrite> {
        let mirror = registry.mirror();
        match self {
            Checked::Handoff { request, fact: Ok(_), .. } => {
                let session = request.session;
                let current = live.owner(&session)?;
                let next = current.successor(Some(registry.node.clone()))?;
                let expect = match mirror.value(&session) {
                    Some(v) => v.clone(),
                    None => owners::encode(current, current.node.as_ref().unwrap_or(&registry.node)),
                };
                Some(OwnerWrite::Put {
                    session,
                    expect: OwnerExpect::Is(expect),
                    value: owners::encode(&next, &registry.node),
                })
            }
            Checked::Delegate { request, fact: Ok(_), .. } => {
                owners::removal(&mirror, request.session, false)
            }
            Checked::Close { session, fact: Ok(_), .. } => owners::removal(&mirror, *session, false),
            Checked::CloseOwned { handle, fact: Ok(_), .. } => {
                owners::removal(&mirror, handle.session(), true)
            }
            _ => None,
        }
    }

    fn is_delegation(&self) -> (bool, bool) {
        match self {
            Checked::Delegate { .. } => (true, false),
            Checked::Handoff { .. } => (true, true),
            _ => (false, false),
        }
    }

    /// Undoes what the check did outside the checker (a staged handoff) and returns the
    /// command, to be checked again.
    fn uncheck(self, live: &mut LiveSessions) -> Command {
        match self {
            Checked::Register { bundle, respond, .. } => Command::Register { bundle, respond },
            Checked::Link { left, right, linked, respond, .. } => {
                Command::Link { left, right, linked, respond }
            }
            Checked::Open { session, authority, bundle, respond, .. } => {
                Command::Open { session, authority, bundle, respond }
            }
            Checked::Close { session, authority, respond, .. } => {
                Command::Close { session, authority, respond }
            }
            Checked::CloseOwned { handle, respond, .. } => Command::CloseOwned { handle, respond },
            Checked::Delegate { request, respond, .. } => Command::Delegate { request, respond },
            Checked::Handoff { request, handle, to_owner, respond, fact } => {
                if fact.is_ok() {
                    abort_stage(live, request.session);
                }
                Command::Handoff { request, handle, to_owner, respond }
            }
        }
    }

    /// Answers a command whose batch did not commit: an accepted one with `failure`, a
    /// refused one with its refusal.
    fn fail(self, live: &mut LiveSessions, failure: &JournalError) -> Result<(), ManagerError> {
        let persist = |operation| ManagerError::Persist { operation, source: failure.clone() };
        match self {
            Checked::Register { respond, fact, .. } => {
                refuse(respond, fact.map(|_| persist("register bundle")))
            }
            Checked::Link { respond, fact, .. } => refuse(respond, fact.map(|_| persist("link bundles"))),
            Checked::Open { respond, fact, .. } => refuse(respond, fact.map(|_| persist("open session"))),
            Checked::Close { respond, fact, .. } | Checked::CloseOwned { respond, fact, .. } => {
                refuse(respond, fact.map(|_| persist("close session")))
            }
            Checked::Delegate { respond, fact, .. } => refuse(respond, fact.map(|_| persist("delegation"))),
            Checked::Handoff { request, respond, fact, .. } => {
                if fact.is_ok() {
                    abort_stage(live, request.session);
                }
                let fact = fact.map(|_| ManagerError::Reconfiguration(Box::new(persist("live handoff"))));
                refuse(respond, fact)
            }
        }
    }

    /// Applies this command's durable fact (written at `sequence`, if it was accepted) and
    /// answers its caller; returns the error it answered with, if any.
    fn settle(
        self,
        state: &mut State,
        live: &mut LiveSessions,
        sequence: &mut u64,
    ) -> Result<(), ManagerError> {
        let mut next = || {
            let s = *sequence;
            *sequence += 1;
            s
        };
        match self {
            Checked::Register { respond, fact, bundle } => settle(
                respond,
                fact.map(|fact| {
                    state.apply(next(), &fact);
                    tracing::info!(name: events::COMMAND_PERSISTED, bundle = %bundle.id, head = state.head());
                    bundle
                }),
            ),
            Checked::Link { respond, fact, .. } => settle(
                respond,
                fact.map(|(fact, bundle)| {
                    state.apply(next(), &fact);
                    tracing::info!(name: events::COMMAND_PERSISTED, bundle = %bundle.id, head = state.head());
                    bundle
                }),
            ),
            Checked::Open { respond, fact, session, .. } => settle(
                respond,
                fact.map(|(fact, generation)| {
                    state.apply(next(), &fact);
                    tracing::info!(name: events::COMMAND_PERSISTED, session = %session, generation);
                    generation
                }),
            ),
            Checked::CloseOwned { respond, fact, handle } => settle(
                respond,
                fact.map(|fact| {
                    let session = handle.session();
                    state.apply(next(), &fact);
                    tracing::info!(name: events::COMMAND_PERSISTED, session = %session, closed = true, by_owner = %handle.owner);
                    detach_if_live(live, session);
                }),
            ),
            Checked::Close { respond, fact, session, .. } => settle(
                respond,
                fact.map(|fact| {
                    state.apply(next(), &fact);
                    tracing::info!(name: events::COMMAND_PERSISTED, session = %session, closed = true);
                    detach_if_live(live, session);
                }),
            ),
            Checked::Delegate { respond, fact, .. } => {
                let outcome = fact.and_then(|d| {
                    let receipt = state.apply_delegation(next(), &d);
                    detach_if_live(live, d.session);
                    delegated(state, receipt, d)
                });
                settle(respond, outcome)
            }
            Checked::Handoff { respond, fact, .. } => {
                let outcome = fact.and_then(|d| {
                    let session = d.session;
                    let receipt = state.apply_delegation(next(), &d);
                    let delegation = delegated(state, receipt, d)?;
                    let (ownership, owner) = live.commit_owner(session)?;
                    let owned = OwnedSession::of(owner);
                    tracing::info!(name: events::HANDOFF_COMMITTED, session = %session, from_owner = %ownership.from_owner, to_owner = %ownership.to_owner, generation = ownership.to_generation);
                    Ok(HandoffOutcome { delegation, ownership, owned })
                });
                settle(respond, outcome)
            }
        }
    }
}

/// A fresh secret for an owner capability, from the thread's CSPRNG.
fn fresh_token() -> OwnerToken {
    OwnerToken::from_bytes(rand::random())
}

/// Answers `respond` with `result`; returns the error, if any, for the counters.
fn settle<T>(respond: Responder<T>, result: Result<T, ManagerError>) -> Result<(), ManagerError> {
    let err = result.as_ref().err().cloned();
    answer(respond, result);
    err.map_or(Ok(()), Err)
}

/// Answers a command that was not written: `Ok(e)` is the journal's failure for an
/// accepted command, `Err(e)` the check's refusal.
fn refuse<T>(respond: Responder<T>, error: Result<ManagerError, ManagerError>) -> Result<(), ManagerError> {
    let e = error.unwrap_or_else(|refusal| refusal);
    answer(respond, Err(e.clone()));
    Err(e)
}

fn abort_stage(live: &mut LiveSessions, session: SessionId) {
    match live.abort(session) {
        Ok(()) => tracing::info!(name: events::HANDOFF_ROLLED_BACK, session = %session),
        // On a shared registry the owner may be gone already (another node took it, the
        // lease lapsed): there is nothing left to roll back.
        Err(
            reconf_core::OwnershipError::NotLive { .. } | reconf_core::OwnershipError::NothingStaged { .. },
        ) => {
            tracing::info!(name: events::HANDOFF_ROLLED_BACK, session = %session, "the owner was already gone")
        }
        Err(e) => {
            tracing::error!(name: events::HANDOFF_ROLLED_BACK, session = %session, error = %e, "rollback failed")
        }
    }
}

pub(crate) fn detach_if_live(live: &mut LiveSessions, session: SessionId) {
    if let Some(gone) = live.detach(&session) {
        tracing::info!(name: events::OWNER_DETACHED, session = %session, owner = %gone.owner);
    }
}

/// The outcome of an applied delegation, after checking the session's coherence.
fn delegated(
    state: &State,
    receipt: DelegationReceipt,
    d: DelegationFact,
) -> Result<DelegationOutcome, ManagerError> {
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
    // The check proved any given boundary equals the bundle's boundary with this scope.
    let boundary = LinkBoundary { bundle: d.bundle, scope: d.scope.clone() };
    let witness = DelegationWitness { boundary, scope: d.scope };
    Ok(DelegationOutcome { receipt, witness })
}

/// Checked commands and the facts they write, in order.
#[derive(Default)]
struct Batch {
    checked: Vec<Checked>,
    facts: Vec<Fact>,
}

impl Batch {
    /// An empty batch with room for `n` commands: the next batch is usually about the
    /// size of the last, and growing both vectors from nothing copied every checked
    /// command about twice more (a checked command is some 470 bytes).
    fn with_capacity(n: usize) -> Self {
        Self { checked: Vec::with_capacity(n), facts: Vec::with_capacity(n) }
    }
}

/// A commit being made durable; it hands its facts back with the outcome, so the batch's
/// facts are copied once, for the journal.
type CommitFuture = Pin<Box<dyn Future<Output = (Result<commit::Landed, Failure>, Vec<Fact>)> + Send>>;

/// A batch whose commit is being made durable.
struct InFlight {
    checked: Vec<Checked>,
    /// The head it was committed after.
    head: u64,
    /// Conflicts it has met so far.
    attempt: usize,
    /// The live-owner writes it carries (shared registry only).
    owners: Vec<OwnerWrite>,
    commit: CommitFuture,
}

/// The actor's pipeline: at most one commit in flight, and the batch checked behind it.
#[derive(Default)]
struct Pipe {
    in_flight: Option<InFlight>,
    pending: Batch,
    /// What the in-flight and pending batches change, for checking the next commands.
    overlay: Overlay,
    /// Conflicts met by the commands now pending (carried into their commit).
    attempt: usize,
    /// Yields spent gathering commands into the pending batch since the last launch.
    gathered: usize,
}

impl Pipe {
    /// With nothing pending or in flight every checked change is applied: the overlay
    /// has nothing left to say.
    fn reset_if_idle(&mut self) {
        if self.in_flight.is_none() && self.pending.checked.is_empty() {
            self.overlay.clear();
        }
    }
}

pub(crate) struct Actor {
    pub(crate) shared: Arc<Shared>,
    pub(crate) journal: Arc<dyn JournalEffects>,
    pub(crate) clock: Arc<dyn PhysicalTimeEffects>,
    pub(crate) snapshot_interval: Option<u64>,
    pub(crate) last_snapshot: u64,
    pub(crate) snapshot_task: Option<tokio::task::JoinHandle<()>>,
    /// The shared live-owner registry, when the journal is shared between nodes.
    pub(crate) registry: Option<Arc<Registry>>,
    /// Its changes, as they happen.
    pub(crate) owner_events: Option<mpsc::UnboundedReceiver<OwnerEvent>>,
}

/// The next registry change, or never when there is no registry.
async fn next_event(events: &mut Option<mpsc::UnboundedReceiver<OwnerEvent>>) -> Option<OwnerEvent> {
    match events {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

impl Actor {
    /// The actor's loop, a two-stage pipeline: while one batch's commit is being made
    /// durable ([`InFlight`]), the commands that arrive are checked against the state as
    /// that batch will leave it (the checker's [`Overlay`] carries over) and wait in
    /// [`Pending`]; the moment the commit lands, its batch is applied and answered, the
    /// callers it answered are given a few yields to send again into the pending batch, and
    /// that batch's commit starts. Nothing is applied or answered before it is durable;
    /// a commit that fails or conflicts sends the pending batch back to be checked again.
    pub(crate) async fn run(mut self, mut rx: mpsc::Receiver<Message>) {
        let mut pipe = Pipe::default();
        loop {
            self.drain_owner_events();
            let batch = match pipe.in_flight.as_mut() {
                // A batch waits and nothing is in flight (a commit just landed, or the
                // batch was just taken in). Callers just answered are runnable but have not
                // sent yet: yield and take what they send, and launch only once a yield
                // brings nothing more (or after a few rounds, so a steady stream does not
                // hold the disk idle). Closed-loop callers then all share one commit per
                // sync; launching as soon as anything waits splits them into small batches
                // alternating, each caller waiting two syncs per request (measured: 64
                // callers on RocksDB went from two batches of ~32 to one of 64 per sync,
                // 0.39x to 0.55x of the raw batched ceiling).
                None if !pipe.pending.checked.is_empty() => {
                    tokio::task::yield_now().await;
                    let mut batch = Vec::new();
                    Self::drain(&mut rx, &mut batch);
                    pipe.gathered += 1;
                    let gathered = batch.is_empty()
                        || pipe.gathered >= GATHER_ROUNDS
                        || pipe.pending.checked.len() >= MAX_BATCH;
                    if gathered {
                        self.launch(&mut pipe);
                    }
                    if batch.is_empty() {
                        continue;
                    }
                    batch
                }
                None => {
                    // Idle: also follow the journal, so commits by other writers of a shared
                    // journal are applied as they land, not only when this one conflicts.
                    // Nothing of ours is in flight, so every record past the applied head is
                    // another writer's.
                    let applied = read(&self.shared.state).head();
                    let first = tokio::select! {
                        biased;
                        first = rx.recv() => first,
                        event = next_event(&mut self.owner_events) => {
                            match event {
                                Some(event) => self.on_owner_event(event),
                                // The registry stopped: nothing more will come.
                                None => self.owner_events = None,
                            }
                            continue;
                        }
                        moved = self.journal.wait_for_head(applied) => {
                            self.follow(moved).await;
                            continue;
                        }
                    };
                    let Some(first) = first else { break };
                    // What else arrives is gathered by the arm above before the commit.
                    let mut batch = vec![first];
                    Self::drain(&mut rx, &mut batch);
                    batch
                }
                Some(flight) => {
                    let room = pipe.pending.checked.len() < MAX_BATCH;
                    tokio::select! {
                        biased;
                        (landed, facts) = &mut flight.commit => {
                            self.land(&mut pipe, landed, facts).await;
                            continue;
                        }
                        first = rx.recv(), if room => match first {
                            Some(first) => {
                                let mut batch = vec![first];
                                Self::drain(&mut rx, &mut batch);
                                batch
                            }
                            None => break,
                        },
                    }
                }
            };
            if let Some(stop) = self.take(&mut pipe, batch).await {
                // Close the journal before answering, so a caller that reopens the same
                // store after `shutdown` returns finds it free.
                self.flush(&mut pipe).await;
                self.finish_snapshot().await;
                drop(self);
                for respond in stop {
                    let _ = respond.send(());
                }
                return;
            }
        }
        // Every handle is gone: finish what was accepted, then stop.
        self.flush(&mut pipe).await;
        self.finish_snapshot().await;
    }

    /// Takes one batch of messages: commands are checked into the pending batch (the loop
    /// launches its commit); the others wait for the pipeline to drain where they must.
    /// Returns the callers of `shutdown`, if any asked.
    async fn take(&mut self, pipe: &mut Pipe, batch: Vec<Message>) -> Option<Vec<oneshot::Sender<()>>> {
        Shared::bump(&self.shared.batches, 1);
        telemetry::batch(batch.len());
        let mut commands = Vec::with_capacity(batch.len());
        let mut stop = Vec::new();
        for message in batch {
            match message {
                Message::Command(c) => commands.push(c),
                // Against the applied state: a change still in flight linearizes after it
                // (a delegation that lands detaches the owner, as it would have anyway).
                Message::Attach { session, owner, boundary, respond } if self.registry.is_some() => {
                    // The registry's write compares the applied head, so what is accepted
                    // before it lands first.
                    self.check_into(pipe, std::mem::take(&mut commands)).await;
                    self.flush(pipe).await;
                    let result = self.attach_shared(session, owner, boundary).await;
                    self.count(false, false, result.as_ref().map(|_| ()));
                    answer(respond, result);
                }
                Message::Detach { handle, respond } if self.registry.is_some() => {
                    self.check_into(pipe, std::mem::take(&mut commands)).await;
                    self.flush(pipe).await;
                    let result = self.detach_shared(&handle).await;
                    self.count(false, false, result.as_ref().map(|_| ()));
                    answer(respond, result);
                }
                Message::Attach { session, owner, boundary, respond } => {
                    let result = self.attach(session, owner, boundary);
                    self.count(false, false, result.as_ref().map(|_| ()));
                    answer(respond, result);
                }
                #[cfg(feature = "upgrade-executor")]
                Message::Upgrade { command, respond } => {
                    // An upgrade phase is its own commit after everything accepted before.
                    self.check_into(pipe, std::mem::take(&mut commands)).await;
                    self.flush(pipe).await;
                    let result = self.upgrade(command).await;
                    self.count(false, false, result.as_ref().map(|_| ()));
                    answer(respond, result);
                }
                Message::Detach { handle, respond } => {
                    let result = write(&self.shared.live).detach_with(&handle.capability);
                    let result = result.map(|gone| {
                        tracing::info!(name: events::OWNER_DETACHED, session = %handle.session(), owner = %gone.owner);
                    });
                    let result = result.map_err(ManagerError::Ownership);
                    self.count(false, false, result.as_ref().map(|_| ()));
                    answer(respond, result);
                }
                Message::Sync { respond } => {
                    // After everything this manager accepted before it, then up to the
                    // journal's end as it is now.
                    self.check_into(pipe, std::mem::take(&mut commands)).await;
                    self.flush(pipe).await;
                    let result = self.catch_up().await.map(|n| {
                        Shared::bump(&self.shared.followed, n);
                        read(&self.shared.state).head()
                    });
                    answer(respond, result);
                }
                Message::Shutdown { respond } => stop.push(respond),
            }
        }
        self.check_into(pipe, commands).await;
        (!stop.is_empty()).then_some(stop)
    }

    /// Checks `commands` into the pending batch, against the state plus what is pending or
    /// in flight.
    async fn check_into(&self, pipe: &mut Pipe, commands: Vec<Command>) {
        if commands.is_empty() {
            return;
        }
        let now = if commands.iter().any(Command::needs_time) {
            Some(self.clock.physical_time().await.map(|t| t.ms))
        } else {
            None
        };
        let state = read(&self.shared.state);
        // Fetch every record the batch names before checking any, so their cache misses
        // overlap.
        state.prefetch_sessions(commands.iter().filter_map(Command::session));
        let mut live = write(&self.shared.live);
        let overlay = std::mem::take(&mut pipe.overlay);
        let lapsed = self.registry.as_ref().filter(|r| !r.effects.lease_valid()).map(|r| r.node.clone());
        let mut cx =
            CheckCx { checker: state.resume_checker(overlay), live: &mut live, now: now.as_ref(), lapsed };
        for command in commands {
            let checked = command.check(&mut cx);
            if let Some(fact) = checked.fact() {
                pipe.pending.facts.push(fact);
            }
            pipe.pending.checked.push(checked);
        }
        pipe.overlay = cx.checker.into_overlay();
    }

    /// Starts the pending batch's commit (or answers it at once when it writes nothing).
    fn launch(&self, pipe: &mut Pipe) {
        pipe.gathered = 0;
        let room = pipe.pending.checked.len();
        let pending = std::mem::replace(&mut pipe.pending, Batch::with_capacity(room));
        if pending.checked.is_empty() {
            return;
        }
        let head = read(&self.shared.state).head();
        if pending.facts.is_empty() {
            self.settle(pending.checked, head + 1);
            pipe.reset_if_idle();
            return;
        }
        let journal = Arc::clone(&self.journal);
        let Batch { mut checked, mut facts } = pending;
        let Some(registry) = self.registry.clone() else {
            let commit: CommitFuture = Box::pin(async move {
                let landed = commit::commit(journal.as_ref(), head, &facts).await;
                (landed, facts)
            });
            pipe.in_flight =
                Some(InFlight { checked, head, attempt: pipe.attempt, owners: Vec::new(), commit });
            return;
        };
        // The live-owner writes, and where the batch must be cut so one commit carries at
        // most MAX_OWNER_WRITES of them (the rest waits, checked as it is, for the next).
        let mut writes = Vec::new();
        let (mut cut, mut facts_before) = (checked.len(), 0);
        {
            let live = read(&self.shared.live);
            for (i, c) in checked.iter().enumerate() {
                if let Some(w) = c.owner_write(&live, &registry) {
                    if writes.len() == MAX_OWNER_WRITES {
                        cut = i;
                        break;
                    }
                    writes.push(w);
                }
                facts_before += usize::from(c.fact().is_some());
            }
        }
        if cut < checked.len() {
            let rest = checked.split_off(cut);
            let rest_facts = facts.split_off(facts_before);
            pipe.pending = Batch { checked: rest, facts: rest_facts };
        }
        if facts.is_empty() {
            // Everything that writes was cut off behind a first part that writes nothing.
            self.settle(checked, head + 1);
            return;
        }
        let owners = writes.clone();
        let commit: CommitFuture = Box::pin(async move {
            let landed =
                commit::commit_shared(registry.effects.as_ref(), journal.as_ref(), head, &facts, writes)
                    .await;
            (landed, facts)
        });
        pipe.in_flight = Some(InFlight { checked, head, attempt: pipe.attempt, owners, commit });
    }

    /// Waits for the commit in flight and everything pending to land.
    async fn flush(&mut self, pipe: &mut Pipe) {
        if pipe.in_flight.is_none() {
            self.launch(pipe);
        }
        while let Some(flight) = pipe.in_flight.as_mut() {
            let (landed, facts) = (&mut flight.commit).await;
            self.land(pipe, landed, facts).await;
            self.launch(pipe);
        }
    }

    /// The commit in flight finished: apply and answer its batch, or refuse or re-check
    /// it. The pending batch's commit is started by the caller: the loop first lets the
    /// callers just answered send again, so their commands join it.
    async fn land(&mut self, pipe: &mut Pipe, landed: Result<commit::Landed, Failure>, facts: Vec<Fact>) {
        let Some(flight) = pipe.in_flight.take() else { return };
        let InFlight { checked, head, attempt, owners, .. } = flight;
        pipe.attempt = 0;
        let landed = match landed {
            Err(Failure::Fenced(found)) => {
                // A record was not what this node thought: take what was found, and check
                // the batch again against it, as after a head conflict.
                Shared::bump(&self.shared.fenced, 1);
                self.apply_found(found);
                Err(Failure::Conflict { actual: None })
            }
            other => other,
        };
        match landed {
            Ok(commit::Landed { first, revision }) => {
                Shared::bump(&self.shared.commits, 1);
                Shared::bump(&self.shared.facts, facts.len() as u64);
                read(&self.shared.state).prefetch_facts(&facts);
                self.settle(checked, first);
                if let Some(registry) = &self.registry {
                    registry.mirror().landed(&owners, revision);
                    let mut live = write(&self.shared.live);
                    for w in &owners {
                        if let OwnerWrite::Put { session, .. } = w {
                            live.set_node(*session, Some(registry.node.clone()));
                        }
                    }
                    drop(live);
                    if !registry.effects.lease_valid() {
                        // The lease lapsed while this commit was landing.
                        self.drop_own_owners(OwnerLoss::LeaseLost);
                    }
                }
                self.maybe_snapshot().await;
            }
            Err(Failure::Conflict { .. }) if attempt < MAX_CONFLICT_RETRIES => {
                Shared::bump(&self.shared.conflicts, 1);
                telemetry::conflict();
                tracing::info!(name: events::JOURNAL_CONFLICT, local_head = head, attempt = attempt + 1);
                // Both batches were checked against a state that will not exist: catch up
                // and check them again, in their order, as one batch.
                let commands = self.uncheck(pipe, checked);
                if attempt >= PROMPT_CONFLICT_RETRIES {
                    // Writers that keep colliding spread out instead of colliding again.
                    let cap = (1u64 << (attempt - PROMPT_CONFLICT_RETRIES).min(5)).min(MAX_CONFLICT_PAUSE_MS);
                    let pause = rand::random::<u64>() % (cap * 1000 + 1);
                    tokio::time::sleep(std::time::Duration::from_micros(pause)).await;
                }
                let caught_up = self.catch_up().await;
                if let Ok(n) = &caught_up {
                    Shared::bump(&self.shared.followed, *n);
                }
                if let Err(e) = caught_up {
                    let failure =
                        JournalError::Storage { reason: format!("catching up after a conflict: {e}") };
                    self.check_into(pipe, commands).await;
                    let refused = std::mem::take(&mut pipe.pending);
                    self.fail(refused.checked, &failure);
                    pipe.reset_if_idle();
                    return;
                }
                self.check_into(pipe, commands).await;
                pipe.attempt = attempt + 1;
            }
            Err(failure) => {
                let failure = failure.into_error(head);
                // The pending batch was checked against this batch's effects.
                let commands = self.uncheck(pipe, Vec::new());
                // Follow the journal before answering: whatever it holds (another writer's
                // records, a write that landed but could not be read back in time) is
                // applied, so the answer and the state agree.
                if let Err(e) = self.catch_up().await {
                    tracing::error!(name: events::BATCH_FAILED, error = %e, "catch-up after a failed commit failed");
                }
                self.fail(checked, &failure);
                self.check_into(pipe, commands).await;
            }
        }
        pipe.reset_if_idle();
    }

    /// Sends `first` and the pending batch back to unchecked commands, in order, undoing
    /// their stages and dropping the overlay they were checked into.
    fn uncheck(&self, pipe: &mut Pipe, first: Vec<Checked>) -> Vec<Command> {
        let pending = std::mem::take(&mut pipe.pending);
        pipe.overlay.clear();
        let mut live = write(&self.shared.live);
        first.into_iter().chain(pending.checked).map(|c| c.uncheck(&mut live)).collect()
    }

    fn drain(rx: &mut mpsc::Receiver<Message>, batch: &mut Vec<Message>) {
        batch.reserve(rx.len().min(MAX_BATCH.saturating_sub(batch.len())));
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(m) => batch.push(m),
                Err(_) => break,
            }
        }
    }

    fn count(&self, delegation: bool, handoff: bool, result: Result<(), &ManagerError>) {
        if let Err(e) = result {
            Shared::bump(&self.shared.rejected, 1);
            if delegation {
                tracing::info!(name: events::DELEGATION_REJECTED, error = %e, kind = e.kind());
            } else {
                tracing::info!(name: events::COMMAND_REJECTED, error = %e, kind = e.kind());
            }
        }
        telemetry::answered(delegation, handoff, result);
    }

    /// Attaches a live owner against the applied state: the core decides whether the
    /// session may have one and at which generation.
    fn attach(
        &self,
        session: SessionId,
        owner: OwnerLabel,
        boundary: LinkBoundary,
    ) -> Result<OwnedSession, ManagerError> {
        let generation = read(&self.shared.state).check_attach(&session, &boundary)?;
        let capability = write(&self.shared.live).attach(
            session,
            owner.clone(),
            generation,
            boundary.clone(),
            fresh_token(),
        )?;
        Ok(OwnedSession { owner, capability, boundary })
    }

    /// Applies the batch's durable facts from `first` on, in one write-lock hold, and
    /// answers every caller.
    fn settle(&self, checked: Vec<Checked>, first: u64) {
        let results: Vec<((bool, bool), Result<(), ManagerError>)> = {
            let mut state = write(&self.shared.state);
            let mut live = write(&self.shared.live);
            let mut sequence = first;
            let results = checked
                .into_iter()
                .map(|c| {
                    let kind = c.is_delegation();
                    (kind, c.settle(&mut state, &mut live, &mut sequence))
                })
                .collect();
            telemetry::state(&state.stats(), live.len());
            results
        };
        for ((delegation, handoff), result) in results {
            self.count(delegation, handoff, result.as_ref().map(|_| ()));
        }
    }

    fn fail(&self, checked: Vec<Checked>, failure: &JournalError) {
        Shared::bump(&self.shared.failed_batches, 1);
        telemetry::batch_failed();
        tracing::warn!(name: events::BATCH_FAILED, error = %failure, commands = checked.len());
        let results: Vec<_> = {
            let mut live = write(&self.shared.live);
            checked.into_iter().map(|c| (c.is_delegation(), c.fail(&mut live, failure))).collect()
        };
        for ((delegation, handoff), result) in results {
            self.count(delegation, handoff, result.as_ref().map(|_| ()));
        }
    }

    /// The journal's head moved past the applied one while nothing of ours was in flight:
    /// apply the other writers' records.
    async fn follow(&self, moved: Result<u64, JournalError>) {
        let outcome = match moved {
            Ok(_) => self.catch_up().await,
            Err(e) => Err(ManagerError::Journal(e)),
        };
        match outcome {
            Ok(n) => {
                Shared::bump(&self.shared.followed, n);
                if n > 0 {
                    tracing::debug!(name: events::JOURNAL_FOLLOWED, records = n, head = read(&self.shared.state).head());
                }
            }
            Err(e) => {
                tracing::warn!(name: events::JOURNAL_FOLLOWED, error = %e, "following the journal failed; retrying");
                tokio::time::sleep(std::time::Duration::from_millis(FOLLOW_RETRY_MS)).await;
            }
        }
    }

    /// Applies whatever the journal holds past the local head (another writer's records,
    /// or a write that landed), detaching the live owners of sessions that changed.
    pub(crate) async fn catch_up(&self) -> Result<u64, ManagerError> {
        let from = read(&self.shared.state).head() + 1;
        let mut detached = Vec::new();
        let me = self.registry.as_ref().map(|r| &r.node);
        let applied = replay(self.journal.as_ref(), from, |first, facts| {
            let mut state = write(&self.shared.state);
            let mut live = write(&self.shared.live);
            for session in facts.iter().filter_map(Fact::session) {
                // On a shared registry the registry says who is live: another node's owner
                // goes when its record does (the writer of the fact removed or replaced it
                // in the same transaction, or its own node cleans it up); only this node's
                // own owners are dropped here.
                if me.is_some() && live.owner(&session).is_none_or(|o| o.node.as_ref() != me) {
                    continue;
                }
                if let Some(gone) = live.detach(&session) {
                    tracing::info!(name: events::OWNER_DETACHED, session = %session, owner = %gone.owner);
                    detached.push((session, gone));
                }
            }
            state.apply_batch(first, &facts);
            Ok(())
        })
        .await;
        if let Some(registry) = &self.registry {
            self.cleanup(registry, detached);
        }
        applied
    }

    /// This node's owners that another node's facts detached (it moved or closed their
    /// sessions): reported lost, and their records removed if the other node did not (it
    /// may not have known of them yet). The removal is fenced, so it removes only the
    /// record this node wrote, never one that replaced it; the registry's events bring
    /// whatever replaced it.
    fn cleanup(&self, registry: &Arc<Registry>, detached: Vec<(SessionId, reconf_core::LiveOwner)>) {
        let mut removals = Vec::new();
        {
            let mut mirror = registry.mirror();
            for (session, gone) in detached {
                let value = mirror.value(&session).cloned();
                mirror.remove(&session, None);
                Shared::bump(&self.shared.owners_lost, 1);
                self.shared.notices.send(session, &gone, OwnerLoss::Removed);
                if let Some(value) = value {
                    removals.push(OwnerWrite::Delete { session, expect: OwnerExpect::Is(value) });
                }
            }
        }
        if removals.is_empty() {
            return;
        }
        let effects = Arc::clone(&registry.effects);
        tokio::spawn(async move {
            for removal in removals {
                let session = removal.session();
                let txn = OwnerTxn { head: None, facts: Vec::new(), owners: vec![removal] };
                if let Err(e) = effects.write(txn).await {
                    tracing::debug!(name: events::OWNER_DETACHED, session = %session, error = %e, "record already gone or changed");
                }
            }
        });
    }

    /// Applies every registry change that has arrived, without waiting.
    fn drain_owner_events(&mut self) {
        let mut pending = Vec::new();
        if let Some(rx) = self.owner_events.as_mut() {
            while let Ok(event) = rx.try_recv() {
                pending.push(event);
            }
        }
        for event in pending {
            self.on_owner_event(event);
        }
    }

    /// Mirrors one registry change into the live table, reporting this node's owners that
    /// it removes.
    fn on_owner_event(&self, event: OwnerEvent) {
        let Some(registry) = &self.registry else { return };
        let lost = {
            let mut live = write(&self.shared.live);
            let mut mirror = registry.mirror();
            match event {
                OwnerEvent::Put(entry) => owners::apply_entry(&mut live, &mut mirror, &entry, &registry.node)
                    .map(|l| vec![(entry.session, l)]),
                OwnerEvent::Deleted { session, revision } => {
                    owners::apply_removal(&mut live, &mut mirror, session, Some(revision), &registry.node)
                        .map(|l| vec![(session, l)])
                }
                OwnerEvent::Reset { entries, revision } => {
                    let mut lost = Vec::new();
                    let listed: std::collections::HashSet<SessionId> =
                        entries.iter().map(|e| e.session).collect();
                    let stale: Vec<SessionId> =
                        live.iter().map(|(s, _)| *s).filter(|s| !listed.contains(s)).collect();
                    for session in stale {
                        if let Some(l) = owners::apply_removal(
                            &mut live,
                            &mut mirror,
                            session,
                            Some(revision),
                            &registry.node,
                        ) {
                            lost.push((session, l));
                        }
                    }
                    for entry in &entries {
                        if let Some(l) = owners::apply_entry(&mut live, &mut mirror, entry, &registry.node) {
                            lost.push((entry.session, l));
                        }
                    }
                    Some(lost)
                }
                OwnerEvent::LeaseLost { reason } => {
                    Shared::bump(&self.shared.leases_lost, 1);
                    tracing::warn!(name: events::OWNER_LEASE_LOST, node = %registry.node, reason = %reason);
                    None
                }
                OwnerEvent::LeaseGranted => {
                    tracing::info!(name: events::OWNER_LEASE_LOST, node = %registry.node, "a new live-owner lease is held");
                    None
                }
            }
        };
        for (session, (gone, reason)) in lost.unwrap_or_default() {
            Shared::bump(&self.shared.owners_lost, 1);
            self.shared.notices.send(session, &gone, reason);
        }
        if !registry.effects.lease_valid() {
            self.drop_own_owners(OwnerLoss::LeaseLost);
        }
    }

    /// Drops every owner of this node from the live table (its lease lapsed), except one
    /// whose handoff is landing (the landing decides it, then drops it if the lease is still
    /// gone).
    fn drop_own_owners(&self, reason: OwnerLoss) {
        let Some(registry) = &self.registry else { return };
        let mut gone = Vec::new();
        {
            let mut live = write(&self.shared.live);
            let mut mirror = registry.mirror();
            let own: Vec<SessionId> = live
                .iter()
                .filter(|(s, o)| o.node.as_ref() == Some(&registry.node) && live.staged_owner(s).is_none())
                .map(|(s, _)| *s)
                .collect();
            for session in own {
                mirror.remove(&session, None);
                if let Some(owner) = live.detach(&session) {
                    gone.push((session, owner));
                }
            }
        }
        for (session, owner) in gone {
            Shared::bump(&self.shared.owners_lost, 1);
            self.shared.notices.send(session, &owner, reason.clone());
        }
    }

    /// The records a fenced write found, which are the registry as it is: applied whatever
    /// this node believed.
    fn apply_found(&self, found: Vec<(SessionId, Option<reconf_effects::OwnerEntry>)>) {
        let Some(registry) = &self.registry else { return };
        let mut lost = Vec::new();
        {
            let mut live = write(&self.shared.live);
            let mut mirror = registry.mirror();
            for (session, entry) in found {
                let l = match entry {
                    Some(entry) => owners::apply_entry(&mut live, &mut mirror, &entry, &registry.node),
                    None => owners::apply_removal(&mut live, &mut mirror, session, None, &registry.node),
                };
                if let Some(l) = l {
                    lost.push((session, l));
                }
            }
        }
        for (session, (gone, reason)) in lost {
            Shared::bump(&self.shared.owners_lost, 1);
            self.shared.notices.send(session, &gone, reason);
        }
    }

    /// Attaches a live owner on a shared registry: one write that puts the record only if
    /// the session has none and the journal is still at the head this node checked the
    /// session against. Another node's owner is `AlreadyLive` naming its node; a moved head
    /// is caught up and checked again.
    async fn attach_shared(
        &self,
        session: SessionId,
        owner: OwnerLabel,
        boundary: LinkBoundary,
    ) -> Result<OwnedSession, ManagerError> {
        let Some(registry) = &self.registry else { return self.attach(session, owner, boundary) };
        let mut attempt = 0;
        loop {
            let (generation, head) = {
                let state = read(&self.shared.state);
                (state.check_attach(&session, &boundary)?, state.head())
            };
            if let Some(current) = read(&self.shared.live).owner(&session) {
                return Err(ManagerError::Ownership(reconf_core::OwnershipError::AlreadyLive {
                    session,
                    owner: current.owner.clone(),
                    node: current.node.clone(),
                }));
            }
            if !registry.effects.lease_valid() {
                return Err(ManagerError::Ownership(reconf_core::OwnershipError::LeaseLost {
                    session,
                    node: registry.node.clone(),
                }));
            }
            let capability = reconf_core::OwnerCapability {
                session,
                generation,
                scope: boundary.scope.clone(),
                bundle: boundary.bundle.clone(),
                token: fresh_token(),
            };
            let record = reconf_core::LiveOwner::new(
                owner.clone(),
                capability.clone(),
                boundary.clone(),
                Some(registry.node.clone()),
            );
            let value = owners::encode(&record, &registry.node);
            let put = OwnerWrite::Put { session, expect: OwnerExpect::Absent, value: value.clone() };
            let txn = OwnerTxn {
                head: Some(reconf_effects::ExpectedHead::after(head)),
                facts: Vec::new(),
                owners: vec![put],
            };
            match registry.effects.write(txn).await {
                Ok(done) => {
                    registry.mirror().set(session, value, done.revision);
                    write(&self.shared.live).insert(session, record);
                    return Ok(OwnedSession { owner, capability, boundary });
                }
                Err(reconf_effects::OwnerTxnError::Fenced { found }) => {
                    Shared::bump(&self.shared.fenced, 1);
                    self.apply_found(found);
                    if let Some(current) = read(&self.shared.live).owner(&session) {
                        return Err(ManagerError::Ownership(reconf_core::OwnershipError::AlreadyLive {
                            session,
                            owner: current.owner.clone(),
                            node: current.node.clone(),
                        }));
                    }
                }
                Err(reconf_effects::OwnerTxnError::LeaseLost) => {
                    return Err(ManagerError::Ownership(reconf_core::OwnershipError::LeaseLost {
                        session,
                        node: registry.node.clone(),
                    }))
                }
                Err(reconf_effects::OwnerTxnError::Journal(JournalError::Conflict { .. })) => {
                    Shared::bump(&self.shared.conflicts, 1);
                    let n = self.catch_up().await?;
                    Shared::bump(&self.shared.followed, n);
                }
                Err(e) => return Err(owners::persist("attach owner", e)),
            }
            attempt += 1;
            if attempt >= MAX_CONFLICT_RETRIES {
                return Err(ManagerError::Persist {
                    operation: "attach owner",
                    source: JournalError::Storage { reason: "the journal head kept moving".to_owned() },
                });
            }
            if attempt >= PROMPT_CONFLICT_RETRIES {
                let pause = rand::random::<u64>() % (MAX_CONFLICT_PAUSE_MS * 1000 + 1);
                tokio::time::sleep(std::time::Duration::from_micros(pause)).await;
            }
        }
    }

    /// Detaches a live owner on a shared registry: a removal that compares the owner's
    /// record, so an owner that was fenced off (its lease lapsed and another node took the
    /// session) is refused, never removes its successor's record.
    async fn detach_shared(&self, handle: &OwnedSession) -> Result<(), ManagerError> {
        let Some(registry) = &self.registry else { return Err(ManagerError::Stopped) };
        let session = handle.session();
        for _ in 0..PROMPT_CONFLICT_RETRIES + 1 {
            let value = {
                let live = read(&self.shared.live);
                let current = live.check_whole_session(&handle.capability)?;
                match registry.mirror().value(&session) {
                    Some(v) => v.clone(),
                    None => owners::encode(current, current.node.as_ref().unwrap_or(&registry.node)),
                }
            };
            let txn = OwnerTxn {
                head: None,
                facts: Vec::new(),
                owners: vec![OwnerWrite::Delete { session, expect: OwnerExpect::Is(value) }],
            };
            match registry.effects.write(txn).await {
                Ok(done) => {
                    registry.mirror().remove(&session, Some(done.revision));
                    if let Some(gone) = write(&self.shared.live).detach(&session) {
                        tracing::info!(name: events::OWNER_DETACHED, session = %session, owner = %gone.owner);
                    }
                    return Ok(());
                }
                Err(reconf_effects::OwnerTxnError::Fenced { found }) => {
                    Shared::bump(&self.shared.fenced, 1);
                    self.apply_found(found);
                }
                Err(e) => return Err(owners::persist("detach owner", e)),
            }
        }
        // The record found each time was not this handle's: say why, from what was found.
        read(&self.shared.live).check_whole_session(&handle.capability)?;
        Err(ManagerError::Ownership(reconf_core::OwnershipError::NotLive { session }))
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
            // A snapshot writes the whole state; replaying costs per record. Waiting for at
            // least half as many records as the state has sessions keeps the bytes
            // snapshots write below the records' own (at a million sessions a snapshot is
            // some 20 MB: every 100,000 records it would write about twice the journal's
            // bytes, and stall the journal's writer each time), a state that only grows is
            // snapshotted at doubling heads, and recovery replays at most
            // max(interval, sessions / 2) records.
            if state.head() < self.last_snapshot.saturating_add(every.max(state.stats().sessions / 2)) {
                return;
            }
            state.clone()
        };
        let head = copy.head();
        // A failed snapshot is retried when the next one is due; the journal still holds every
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
