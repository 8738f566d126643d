//! Coherence: exactly one active holder per session, and every delegated-out entry matched
//! by exactly one delegated-in receiver.
//!
//! The state keeps this by construction; [`audit`] is the independent full scan that checks
//! it from the footprints alone, reporting violations in a deterministic order.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::footprint::{FootprintSummary, SessionClass, SessionFootprint};
use crate::ids::{AuthorityId, SessionId};

/// One broken coherence rule: about one session, or about an authority's summary.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum Violation {
    /// More than one authority holds the session actively (native or delegated-in).
    #[error("session {session} has {} active holders: {holders:?}", holders.len())]
    MultipleActiveHolders {
        /// The session.
        session: SessionId,
        /// The holders, sorted.
        holders: Vec<AuthorityId>,
    },
    /// Someone delegated the session out but nobody received it.
    #[error("session {session} was delegated out by {delegator} but no authority received it")]
    DelegatedOutWithoutReceiver {
        /// The session.
        session: SessionId,
        /// The delegator.
        delegator: AuthorityId,
    },
    /// Several authorities claim to have received the session.
    #[error("session {session} is delegated in to {} authorities: {receivers:?}", receivers.len())]
    DelegatedInToSeveral {
        /// The session.
        session: SessionId,
        /// The receivers, sorted.
        receivers: Vec<AuthorityId>,
    },
    /// Several authorities claim to have delegated the session out.
    #[error("session {session} is delegated out by {} authorities: {delegators:?}", delegators.len())]
    DelegatedOutBySeveral {
        /// The session.
        session: SessionId,
        /// The delegators, sorted.
        delegators: Vec<AuthorityId>,
    },
    /// A session's record names the same authority as holder and as delegator (no checked
    /// command produces this; an unchecked fact can).
    #[error("session {session} is held by {authority}, which is also recorded as its delegator")]
    HolderIsDelegator {
        /// The session.
        session: SessionId,
        /// The authority.
        authority: AuthorityId,
    },
    /// A session's record names an authority index the state never interned.
    #[error("session {session} names authority index {index}, which the state does not define")]
    UnknownAuthority {
        /// The session.
        session: SessionId,
        /// The undefined index.
        index: u32,
    },
    /// An authority's incrementally kept footprint summary differs from the one
    /// recomputed from the session records.
    #[error("the footprint summary kept for {authority} is {kept:?} but the records give {recomputed:?}")]
    SummaryMismatch {
        /// The authority.
        authority: AuthorityId,
        /// The summary the state kept.
        kept: FootprintSummary,
        /// The summary the records give.
        recomputed: FootprintSummary,
    },
}

impl Violation {
    /// The session concerned, when the violation is about one session.
    pub fn session(&self) -> Option<SessionId> {
        match self {
            Self::MultipleActiveHolders { session, .. }
            | Self::DelegatedOutWithoutReceiver { session, .. }
            | Self::DelegatedInToSeveral { session, .. }
            | Self::DelegatedOutBySeveral { session, .. }
            | Self::HolderIsDelegator { session, .. }
            | Self::UnknownAuthority { session, .. } => Some(*session),
            Self::SummaryMismatch { .. } => None,
        }
    }
}

/// The result of a coherence check.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoherenceReport {
    /// Sessions examined.
    pub sessions_checked: u64,
    /// Violations, sorted by session then kind.
    pub violations: Vec<Violation>,
}

impl CoherenceReport {
    /// True when nothing is wrong.
    pub fn is_coherent(&self) -> bool {
        self.violations.is_empty()
    }
}

/// Audits a set of footprints from scratch. One bad session never hides another: every
/// session is examined and all its violations reported.
///
/// ```
/// use reconf_core::{audit, AuthorityId, SessionFootprint, SessionId};
/// let a = AuthorityId::from_label("a");
/// let mut fp = SessionFootprint::default();
/// fp.delegated_out.insert(SessionId::from_u128(9)); // nobody received it
/// let report = audit([(a, &fp)]);
/// assert_eq!(report.violations.len(), 1);
/// ```
pub fn audit<'a, I>(footprints: I) -> CoherenceReport
where
    I: IntoIterator<Item = (AuthorityId, &'a SessionFootprint)>,
{
    #[derive(Default)]
    struct Claims {
        active: Vec<AuthorityId>,
        inbound: Vec<AuthorityId>,
        outbound: Vec<AuthorityId>,
    }
    let mut by_session: BTreeMap<SessionId, Claims> = BTreeMap::new();
    for (authority, fp) in footprints {
        for (session, class) in fp.entries() {
            let c = by_session.entry(session).or_default();
            if class.is_active() {
                c.active.push(authority);
            }
            match class {
                SessionClass::DelegatedIn => c.inbound.push(authority),
                SessionClass::DelegatedOut => c.outbound.push(authority),
                SessionClass::Native => {}
            }
        }
    }
    let mut report = CoherenceReport { sessions_checked: by_session.len() as u64, ..Default::default() };
    for (session, mut c) in by_session {
        c.active.sort();
        c.inbound.sort();
        c.outbound.sort();
        if c.active.len() > 1 {
            report.violations.push(Violation::MultipleActiveHolders { session, holders: c.active.clone() });
        }
        if !c.outbound.is_empty() && c.inbound.is_empty() {
            for delegator in &c.outbound {
                report
                    .violations
                    .push(Violation::DelegatedOutWithoutReceiver { session, delegator: *delegator });
            }
        }
        if c.inbound.len() > 1 {
            report.violations.push(Violation::DelegatedInToSeveral { session, receivers: c.inbound });
        }
        if c.outbound.len() > 1 {
            report.violations.push(Violation::DelegatedOutBySeveral { session, delegators: c.outbound });
        }
    }
    report.violations.sort();
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(l: &str) -> AuthorityId {
        AuthorityId::from_label(l)
    }

    #[test]
    fn every_kind_is_reported_in_a_deterministic_order() {
        let s1 = SessionId::from_u128(1);
        let s2 = SessionId::from_u128(2);
        let s3 = SessionId::from_u128(3);
        let mut x = SessionFootprint::default();
        let mut y = SessionFootprint::default();
        let mut z = SessionFootprint::default();
        // s1: two active holders.
        x.native.insert(s1);
        y.delegated_in.insert(s1);
        // s2: orphaned delegated-out.
        x.delegated_out.insert(s2);
        // s3: two receivers and two delegators.
        x.delegated_in.insert(s3);
        y.delegated_out.insert(s3);
        z.delegated_in.insert(s3);
        z.delegated_out.insert(s2);
        let forward = audit([(a("x"), &x), (a("y"), &y), (a("z"), &z)]);
        let backward = audit([(a("z"), &z), (a("y"), &y), (a("x"), &x)]);
        assert_eq!(forward, backward);
        assert_eq!(forward.sessions_checked, 3);
        let kinds: Vec<_> =
            forward.violations.iter().map(|v| (v.session(), std::mem::discriminant(v))).collect();
        assert_eq!(kinds.len(), 6, "{:#?}", forward.violations);
        assert!(matches!(forward.violations[0], Violation::MultipleActiveHolders { .. }));
        assert!(forward
            .violations
            .iter()
            .any(|v| matches!(v, Violation::DelegatedOutBySeveral { session, .. } if *session == s2)));
        assert!(forward
            .violations
            .iter()
            .any(|v| matches!(v, Violation::DelegatedInToSeveral { session, .. } if *session == s3)));
        assert!(forward
            .violations
            .iter()
            .any(|v| matches!(v, Violation::DelegatedOutWithoutReceiver { session, .. } if *session == s2)));
    }

    #[test]
    fn coherent_footprints_report_nothing() {
        let s = SessionId::from_u128(5);
        let mut x = SessionFootprint::default();
        let mut y = SessionFootprint::default();
        x.delegated_out.insert(s);
        y.delegated_in.insert(s);
        assert!(audit([(a("x"), &x), (a("y"), &y)]).is_coherent());
    }
}
