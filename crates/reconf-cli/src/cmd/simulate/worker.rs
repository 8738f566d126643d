//! One simulated caller: it owns a disjoint share of the sessions, so its view of each
//! session's holder (read from the manager before each request) is never raced by another
//! caller, and every request's outcome is predictable.

use std::sync::Arc;
use std::time::Instant;

use indicatif::ProgressBar;
use rand::rngs::StdRng;
use rand::Rng;
use reconf_runtime::{
    AuthorityId, BundleId, CapabilityScope, CommandError, DelegationOutcome, DelegationRequest, LinkBoundary,
    ManagerError, OwnerLabel, ReconfigurationManager, SessionId,
};

/// Unexpected outcomes kept verbatim per caller, for the summary.
const EXAMPLES: usize = 3;

/// A deliberately invalid request, and the typed rejection it must get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Invalid {
    /// `from` is not the session's active holder.
    WrongHolder,
    /// `from == to`.
    SelfDelegation,
    /// The bundle is not registered.
    UnknownBundle,
    /// The link boundary names another bundle, or another scope, than the delegation.
    BadBoundary,
}

impl Invalid {
    pub(super) const ALL: [Self; 4] =
        [Self::WrongHolder, Self::SelfDelegation, Self::UnknownBundle, Self::BadBoundary];

    fn expected(self, e: &ManagerError) -> bool {
        match self {
            Self::WrongHolder => {
                matches!(e, ManagerError::Rejected(CommandError::NotActiveHolder { .. }))
            }
            Self::SelfDelegation => {
                matches!(e, ManagerError::Rejected(CommandError::SelfDelegation { .. }))
            }
            Self::UnknownBundle => matches!(e, ManagerError::Rejected(CommandError::UnknownBundle { .. })),
            Self::BadBoundary => matches!(
                e,
                ManagerError::Rejected(
                    CommandError::BoundaryBundleMismatch { .. } | CommandError::BoundaryScopeMismatch { .. }
                )
            ),
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// What the callers share.
pub(super) struct Env {
    pub(super) manager: ReconfigurationManager,
    pub(super) authorities: Vec<AuthorityId>,
    pub(super) bundles: Vec<BundleId>,
    pub(super) unknown_bundle: BundleId,
    pub(super) invalid_fraction: f64,
    pub(super) handoff_fraction: f64,
    /// `--print-acks`.
    pub(super) print_acks: bool,
}

impl Env {
    /// Prints an acknowledgement line and flushes it, so a kill right after loses none.
    fn ack(&self, line: std::fmt::Arguments<'_>) {
        if self.print_acks {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            // A closed stdout only loses the crash-test trail, never the run.
            let _ = writeln!(out, "{line}").and_then(|()| out.flush());
        }
    }

    fn ack_delegation(&self, o: &DelegationOutcome) {
        let r = &o.receipt;
        self.ack(format_args!(
            "ack delegate {} {} {} {} {}",
            r.sequence, r.session, r.from, r.to, r.generation
        ));
    }
}

/// One caller's counts.
#[derive(Debug, Default)]
pub(super) struct Tally {
    pub(super) opened: u64,
    pub(super) plain: u64,
    pub(super) handoffs: u64,
    pub(super) rejected: [u64; 4],
    pub(super) unexpected: u64,
    pub(super) examples: Vec<String>,
    /// Latency of each delegation request, microseconds.
    pub(super) latencies_us: Vec<u64>,
}

impl Tally {
    fn unexpected(&mut self, what: String) {
        self.unexpected += 1;
        if self.examples.len() < EXAMPLES {
            self.examples.push(what);
        }
    }

    pub(super) fn merge(&mut self, other: Self) {
        self.opened += other.opened;
        self.plain += other.plain;
        self.handoffs += other.handoffs;
        for (a, b) in self.rejected.iter_mut().zip(other.rejected) {
            *a += b;
        }
        self.unexpected += other.unexpected;
        self.examples.extend(other.examples);
        self.latencies_us.extend(other.latencies_us);
    }
}

/// A session this caller opened, with the bundle it runs and its first holder.
#[derive(Debug, Clone)]
pub(super) struct Assigned {
    pub(super) session: SessionId,
    pub(super) bundle: BundleId,
    pub(super) holder: AuthorityId,
}

/// Opens the caller's sessions; returns those that opened.
pub(super) async fn open_sessions(
    env: Arc<Env>,
    sessions: Vec<Assigned>,
    progress: ProgressBar,
) -> (Vec<Assigned>, Tally) {
    let mut tally = Tally::default();
    let mut opened = Vec::with_capacity(sessions.len());
    for a in sessions {
        match env.manager.open_session(a.session, a.holder, Some(a.bundle.clone())).await {
            Ok(_) => {
                env.ack(format_args!("ack open {} {}", a.session, a.holder));
                tally.opened += 1;
                opened.push(a);
            }
            Err(e) => tally.unexpected(format!("opening session {}: {e}", a.session)),
        }
        progress.inc(1);
    }
    (opened, tally)
}

/// Any authority but `not` (there are at least two).
fn other_than(rng: &mut StdRng, authorities: &[AuthorityId], not: AuthorityId) -> AuthorityId {
    let i = rng.random_range(0..authorities.len());
    if authorities[i] == not {
        authorities[(i + 1) % authorities.len()]
    } else {
        authorities[i]
    }
}

fn owner_label(authority: AuthorityId) -> Option<OwnerLabel> {
    // A label made from an id is never blank; `None` would be reported as unexpected.
    OwnerLabel::new(format!("owner-{}", authority.short())).ok()
}

/// Sends `count` delegation requests over the caller's sessions.
pub(super) async fn delegate(
    env: Arc<Env>,
    sessions: Vec<Assigned>,
    count: usize,
    mut rng: StdRng,
    progress: ProgressBar,
) -> Tally {
    let mut tally = Tally { latencies_us: Vec::with_capacity(count.min(1 << 20)), ..Tally::default() };
    if sessions.is_empty() {
        return tally;
    }
    for _ in 0..count {
        let a = &sessions[rng.random_range(0..sessions.len())];
        request(&env, a, &mut rng, &mut tally).await;
        progress.inc(1);
    }
    tally
}

fn check_outcome(o: &DelegationOutcome, req: &DelegationRequest) -> Result<(), String> {
    let r = &o.receipt;
    if r.session != req.session || r.from != req.from || r.to != req.to {
        return Err(format!(
            "receipt {} {}->{} does not match the request",
            r.session,
            r.from.short(),
            r.to.short()
        ));
    }
    if o.witness.boundary.bundle != req.bundle {
        return Err(format!("session {}: witness names bundle {}", r.session, o.witness.boundary.bundle));
    }
    Ok(())
}

async fn request(env: &Env, a: &Assigned, rng: &mut StdRng, tally: &mut Tally) {
    let m = &env.manager;
    let Some(record) = m.session(&a.session) else {
        return tally.unexpected(format!("session {} is no longer open", a.session));
    };
    let holder = record.holder;
    let to = other_than(rng, &env.authorities, holder);
    let plain = DelegationRequest::new(a.session, holder, to, a.bundle.clone());
    let roll: f64 = rng.random();

    if roll < env.invalid_fraction {
        let kind = Invalid::ALL[rng.random_range(0..Invalid::ALL.len())];
        let req = match kind {
            Invalid::WrongHolder => {
                let from = other_than(rng, &env.authorities, holder);
                let to = other_than(rng, &env.authorities, from);
                DelegationRequest::new(a.session, from, to, a.bundle.clone())
            }
            Invalid::SelfDelegation => DelegationRequest::new(a.session, holder, holder, a.bundle.clone()),
            Invalid::UnknownBundle => {
                DelegationRequest::new(a.session, holder, to, env.unknown_bundle.clone())
            }
            Invalid::BadBoundary => {
                let other = env.bundles.iter().find(|b| **b != a.bundle);
                let boundary = match other {
                    Some(b) if rng.random_bool(0.5) => LinkBoundary::for_bundle(b),
                    _ => LinkBoundary { bundle: a.bundle.clone(), scope: CapabilityScope::WholeSession },
                };
                plain.with_boundary(boundary)
            }
        };
        let started = Instant::now();
        let result = m.delegate_session(req).await;
        tally.latencies_us.push(micros(started));
        match result {
            Err(e) if kind.expected(&e) => tally.rejected[kind.index()] += 1,
            Err(e) => {
                tally.unexpected(format!("{kind:?} request on {} got the wrong rejection: {e}", a.session))
            }
            Ok(o) => tally.unexpected(format!(
                "{kind:?} request on {} was accepted (sequence {})",
                a.session, o.receipt.sequence
            )),
        }
        return;
    }

    if roll < env.invalid_fraction + env.handoff_fraction {
        let (Some(from_owner), Some(to_owner)) = (owner_label(holder), owner_label(to)) else {
            return tally.unexpected("an owner label was empty".to_owned());
        };
        let handle = match m.live_owner(&a.session) {
            Some(h) => h,
            None => match m.attach_owner(a.session, from_owner, LinkBoundary::for_bundle(&a.bundle)).await {
                Ok(h) => h,
                Err(e) => return tally.unexpected(format!("attaching an owner to {}: {e}", a.session)),
            },
        };
        let started = Instant::now();
        let result = m.delegate_active_session(&handle, plain.clone(), to_owner).await;
        tally.latencies_us.push(micros(started));
        match result {
            Ok(o) => match check_outcome(&o.delegation, &plain) {
                Ok(()) if o.ownership.to_generation == o.delegation.receipt.generation => {
                    env.ack_delegation(&o.delegation);
                    tally.handoffs += 1;
                }
                Ok(()) => tally.unexpected(format!(
                    "handoff of {}: owner generation {} but session generation {}",
                    a.session, o.ownership.to_generation, o.delegation.receipt.generation
                )),
                Err(why) => tally.unexpected(why),
            },
            Err(e) => tally.unexpected(format!("live handoff of {} rejected: {e}", a.session)),
        }
        return;
    }

    let started = Instant::now();
    let result = m.delegate_session(plain.clone()).await;
    tally.latencies_us.push(micros(started));
    match result {
        Ok(o) => match check_outcome(&o, &plain) {
            Ok(()) => {
                env.ack_delegation(&o);
                tally.plain += 1;
            }
            Err(why) => tally.unexpected(why),
        },
        Err(e) => tally.unexpected(format!("valid delegation of {} rejected: {e}", a.session)),
    }
}

fn micros(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX)
}
