//! Session footprints: which sessions an authority holds natively, has received by
//! delegation, and has delegated out; and their constant-size summaries.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::ids::SessionId;

/// How an authority relates to a session. A session is in at most one class per authority.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum SessionClass {
    /// Opened here and never delegated away.
    Native,
    /// Received by delegation; this authority is the active holder.
    DelegatedIn,
    /// Delegated away by this authority; someone else holds it now.
    DelegatedOut,
}

impl SessionClass {
    /// Whether this class makes the authority the session's active holder.
    pub const fn is_active(self) -> bool {
        matches!(self, Self::Native | Self::DelegatedIn)
    }

    const fn tag(self) -> u64 {
        match self {
            Self::Native => 0x6e61_7469_7665,
            Self::DelegatedIn => 0x6465_6c5f_696e,
            Self::DelegatedOut => 0x6465_6c5f_6f75,
        }
    }
}

/// The sessions of one authority, by class.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionFootprint {
    /// Sessions opened here and still held here.
    pub native: BTreeSet<SessionId>,
    /// Sessions received by delegation and held here.
    pub delegated_in: BTreeSet<SessionId>,
    /// Sessions this authority delegated away (it was the last delegator).
    pub delegated_out: BTreeSet<SessionId>,
}

impl SessionFootprint {
    /// The set for a class.
    pub fn class(&self, class: SessionClass) -> &BTreeSet<SessionId> {
        match class {
            SessionClass::Native => &self.native,
            SessionClass::DelegatedIn => &self.delegated_in,
            SessionClass::DelegatedOut => &self.delegated_out,
        }
    }

    /// Every (session, class) pair, classes in declaration order.
    pub fn entries(&self) -> impl Iterator<Item = (SessionId, SessionClass)> + '_ {
        [SessionClass::Native, SessionClass::DelegatedIn, SessionClass::DelegatedOut]
            .into_iter()
            .flat_map(move |c| self.class(c).iter().map(move |s| (*s, c)))
    }

    /// The summary of this footprint, computed from scratch.
    pub fn summary(&self) -> FootprintSummary {
        let mut s = FootprintSummary::default();
        for (session, class) in self.entries() {
            s.add(session, class);
        }
        s
    }

    /// True when the authority holds or delegated nothing.
    pub fn is_empty(&self) -> bool {
        self.native.is_empty() && self.delegated_in.is_empty() && self.delegated_out.is_empty()
    }
}

/// Counts and an order-independent digest of a footprint: constant size whatever the
/// footprint holds, and updated in O(1) when one entry changes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct FootprintSummary {
    /// Number of native sessions.
    pub native: u64,
    /// Number of delegated-in sessions.
    pub delegated_in: u64,
    /// Number of delegated-out sessions.
    pub delegated_out: u64,
    /// Wrapping sum of a mix of each (session, class) entry: equal footprints have equal
    /// digests whatever order their entries were added in.
    pub digest: u64,
}

/// A 64-bit mix of one footprint entry (SplitMix64's finaliser over both UUID halves and the
/// class), fixed so digests are equal on every platform and run.
fn entry_mix(session: SessionId, class: SessionClass) -> u64 {
    fn fin(mut z: u64) -> u64 {
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    let v = session.0.as_u128();
    // Truncations are the point: the two 64-bit halves of the UUID.
    let hi = (v >> 64) as u64;
    let lo = v as u64;
    fin(fin(hi ^ class.tag()).wrapping_add(lo))
}

impl FootprintSummary {
    fn count_mut(&mut self, class: SessionClass) -> &mut u64 {
        match class {
            SessionClass::Native => &mut self.native,
            SessionClass::DelegatedIn => &mut self.delegated_in,
            SessionClass::DelegatedOut => &mut self.delegated_out,
        }
    }

    pub(crate) fn add(&mut self, session: SessionId, class: SessionClass) {
        *self.count_mut(class) += 1;
        self.digest = self.digest.wrapping_add(entry_mix(session, class));
    }

    pub(crate) fn remove(&mut self, session: SessionId, class: SessionClass) {
        let c = self.count_mut(class);
        *c = c.saturating_sub(1);
        self.digest = self.digest.wrapping_sub(entry_mix(session, class));
    }

    /// Total number of entries.
    pub const fn total(&self) -> u64 {
        self.native + self.delegated_in + self.delegated_out
    }
}

pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::FixedState>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_is_order_independent_and_incremental() {
        let s: Vec<SessionId> = (1..=50).map(SessionId::from_u128).collect();
        let mut a = FootprintSummary::default();
        let mut b = FootprintSummary::default();
        for x in &s {
            a.add(*x, SessionClass::Native);
        }
        for x in s.iter().rev() {
            b.add(*x, SessionClass::DelegatedIn);
            b.remove(*x, SessionClass::DelegatedIn);
            b.add(*x, SessionClass::Native);
        }
        assert_eq!(a, b);
        let f = SessionFootprint { native: s.iter().copied().collect(), ..Default::default() };
        assert_eq!(a, f.summary());
        b.remove(s[3], SessionClass::Native);
        assert_ne!(a, b);
        assert_eq!(b.native, 49);
    }

    #[test]
    fn class_matters_to_the_digest() {
        let mut a = FootprintSummary::default();
        let mut b = FootprintSummary::default();
        a.add(SessionId::from_u128(7), SessionClass::Native);
        b.add(SessionId::from_u128(7), SessionClass::DelegatedIn);
        assert_ne!(a.digest, b.digest);
    }
}
