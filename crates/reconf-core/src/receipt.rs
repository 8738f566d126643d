//! Receipts: constant-size evidence of an applied delegation.

use serde::{Deserialize, Serialize};

use crate::footprint::FootprintSummary;
use crate::ids::{AuthorityId, BundleId, ContextId, SessionId};

/// What a delegation did, with before/after summaries of both footprints. Its size does
/// not depend on how many sessions either authority holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DelegationReceipt {
    /// The session.
    pub session: SessionId,
    /// The previous holder.
    pub from: AuthorityId,
    /// The new holder.
    pub to: AuthorityId,
    /// The bundle delegated through.
    pub bundle: BundleId,
    /// The delegation context.
    pub context: ContextId,
    /// The journal sequence of the delegation fact.
    pub sequence: u64,
    /// The session's owner generation after the delegation.
    pub generation: u64,
    /// Time of the delegation, ms since the Unix epoch.
    pub at_ms: u64,
    /// `from`'s footprint before.
    pub from_before: FootprintSummary,
    /// `from`'s footprint after.
    pub from_after: FootprintSummary,
    /// `to`'s footprint before.
    pub to_before: FootprintSummary,
    /// `to`'s footprint after.
    pub to_after: FootprintSummary,
}
