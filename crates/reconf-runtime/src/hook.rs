//! The embedding runtime's part of a staged upgrade: the cutover work of each step. A leaf
//! module, so the handle, the builder and the executor all name the hook without importing
//! each other.

use async_trait::async_trait;
use reconf_core::upgrade::{MembershipEvent, StepId, UpgradeId};
use reconf_core::BundleId;

/// Why a step hook refused a cutover step; the upgrade is rolled back with this message
/// recorded as the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct StepFailed {
    /// What went wrong, as recorded in the upgrade's history.
    pub message: String,
}

impl StepFailed {
    /// A step failure with this message.
    pub fn new(message: impl Into<String>) -> Self {
        Self { message: message.into() }
    }
}

/// The embedding runtime's work for one cutover step (stop old members, start new ones,
/// move traffic). Returning an error rolls the whole upgrade back.
#[async_trait]
pub trait UpgradeStepHook: Send + Sync {
    /// Performs step `step` of `upgrade` on `bundle`, moving membership as `event` says.
    async fn run_step(
        &self,
        bundle: &BundleId,
        upgrade: &UpgradeId,
        step: &StepId,
        event: &MembershipEvent,
    ) -> Result<(), StepFailed>;
}

#[async_trait]
impl<T: UpgradeStepHook + ?Sized> UpgradeStepHook for std::sync::Arc<T> {
    async fn run_step(
        &self,
        bundle: &BundleId,
        upgrade: &UpgradeId,
        step: &StepId,
        event: &MembershipEvent,
    ) -> Result<(), StepFailed> {
        (**self).run_step(bundle, upgrade, step, event).await
    }
}

/// The hook used when none is given: the cutover needs no outside work, every step
/// succeeds.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoStepWork;

#[async_trait]
impl UpgradeStepHook for NoStepWork {
    async fn run_step(
        &self,
        _: &BundleId,
        _: &UpgradeId,
        _: &StepId,
        _: &MembershipEvent,
    ) -> Result<(), StepFailed> {
        Ok(())
    }
}
