//! The plan rules, checked in a fixed order.

use std::collections::BTreeSet;

use super::error::ValidationError;
use super::names::Member;
use super::placement::validate_placements;
use super::types::{PendingEffectTreatment, PhaseArtifact, PublicationContinuity};

/// Checks an upgrade, as recorded in its staged artifact, against the bundle's active
/// members. The rules are checked in this order and the first broken one is reported:
///
/// 1. the plan has at least one step ([`NoSteps`](ValidationError::NoSteps));
/// 2. no publication, then no obligation, is both carried and invalidated;
/// 3. if the contract requires ownership continuity, every step's members overlap the
///    members before that step (the active members, for the first step);
/// 4. invalidating blocked pending effects names at least one obligation (carried or
///    invalidated);
/// 5. preserving publication continuity invalidates no publication;
/// 6. every step has a non-empty member set;
/// 7. step ids are unique;
/// 8. every step's placement observations are valid (see
///    [`validate_placements`]), steps in order.
///
/// Within a rule, steps are taken in plan order and ids in sorted order.
pub fn validate(artifact: &PhaseArtifact, active: &BTreeSet<Member>) -> Result<(), ValidationError> {
    let steps = &artifact.plan.steps;
    if steps.is_empty() {
        return Err(ValidationError::NoSteps);
    }

    if let Some(p) = artifact.carried_publications.intersection(&artifact.invalidated_publications).next() {
        return Err(ValidationError::PublicationCarriedAndInvalidated { publication: p.clone() });
    }
    if let Some(o) = artifact.carried_obligations.intersection(&artifact.invalidated_obligations).next() {
        return Err(ValidationError::ObligationCarriedAndInvalidated { obligation: o.clone() });
    }

    if artifact.contract.ownership_continuity_required {
        let mut previous = active.clone();
        for step in steps {
            let next = step.members();
            if previous.is_disjoint(&next) {
                return Err(ValidationError::OwnershipDiscontinuity {
                    step_id: step.step_id.clone(),
                    previous,
                    next,
                });
            }
            previous = next;
        }
    }

    if artifact.contract.pending_effects == PendingEffectTreatment::InvalidateBlocked
        && artifact.carried_obligations.is_empty()
        && artifact.invalidated_obligations.is_empty()
    {
        return Err(ValidationError::InvalidateBlockedWithoutObligations);
    }

    if artifact.contract.publication_continuity == PublicationContinuity::Preserve {
        if let Some(p) = artifact.invalidated_publications.first() {
            return Err(ValidationError::PreservedPublicationInvalidated { publication: p.clone() });
        }
    }

    if let Some(step) = steps.iter().find(|s| s.next_members.is_empty()) {
        return Err(ValidationError::EmptyStep { step_id: step.step_id.clone() });
    }

    let mut seen = BTreeSet::new();
    for step in steps {
        if !seen.insert(&step.step_id) {
            return Err(ValidationError::DuplicateStep { step_id: step.step_id.clone() });
        }
    }

    for step in steps {
        if let Some(observations) = &step.placements {
            validate_placements(&step.members(), observations)
                .map_err(|source| ValidationError::Placement { step_id: step.step_id.clone(), source })?;
        }
    }
    Ok(())
}

impl super::RuntimeUpgradeRequest {
    /// Checks the plan rules of [`validate`] against `active` members without touching any
    /// book: a dry run.
    pub fn validate(&self, active: &BTreeSet<Member>) -> Result<(), ValidationError> {
        validate(&PhaseArtifact::staged(self, active.clone()), active)
    }
}
