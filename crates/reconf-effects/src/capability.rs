//! The capability effect: which named runtime surfaces this deployment admits.
//!
//! Admission fails closed: a surface nobody admitted is denied.

use std::collections::BTreeSet;
use std::sync::Arc;

/// Issuing ownership receipts for delegations.
pub const OWNERSHIP_RECEIPT: &str = "reconfiguration.ownership_receipt";
/// Handing a live session's owner over together with its delegation.
pub const SEMANTIC_HANDOFF: &str = "reconfiguration.semantic_handoff";
/// Moving a bundle's membership through a staged reconfiguration (upgrade) transition.
pub const RECONFIGURATION_TRANSITION: &str = "reconfiguration.transition";

/// Every surface the `reconfiguration` switch controls.
pub const RECONFIGURATION_SURFACES: &[&str] =
    &[OWNERSHIP_RECEIPT, SEMANTIC_HANDOFF, RECONFIGURATION_TRANSITION];

/// The pair name in [`StaticCapabilities::from_pairs`] that admits or denies all of
/// [`RECONFIGURATION_SURFACES`] at once.
pub const RECONFIGURATION_SWITCH: &str = "reconfiguration";

/// Why admission was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CapabilityError {
    /// A required surface is not admitted.
    #[error("runtime surface `{surface}` is not admitted")]
    NotAdmitted {
        /// The first required surface that is missing.
        surface: String,
    },
}

/// Admission of named runtime surfaces.
///
/// Synchronous on purpose: it is asked on every guarded operation, so it must be a local
/// decision; a policy that lives elsewhere should be fetched ahead and cached by the
/// implementation rather than awaited per call.
///
/// ```
/// use reconf_effects::capability::{self, CapabilityEffects, CapabilityError, StaticCapabilities};
///
/// let caps = StaticCapabilities::from_pairs([("reconfiguration", true), (capability::SEMANTIC_HANDOFF, false)]);
/// assert!(caps.require(&[capability::OWNERSHIP_RECEIPT]).is_ok());
/// assert_eq!(
///     caps.require(&[capability::OWNERSHIP_RECEIPT, capability::SEMANTIC_HANDOFF, "other"]),
///     Err(CapabilityError::NotAdmitted { surface: capability::SEMANTIC_HANDOFF.to_owned() }),
/// );
/// assert!(StaticCapabilities::none().require(capability::RECONFIGURATION_SURFACES).is_err());
/// ```
pub trait CapabilityEffects: Send + Sync {
    /// Whether `surface` is admitted.
    fn admits(&self, surface: &str) -> bool;

    /// Succeeds if every surface is admitted; otherwise names the first one (in the order
    /// given) that is not. Requiring nothing succeeds.
    fn require(&self, surfaces: &[&str]) -> Result<(), CapabilityError> {
        match surfaces.iter().find(|s| !self.admits(s)) {
            Some(missing) => Err(CapabilityError::NotAdmitted { surface: (*missing).to_owned() }),
            None => Ok(()),
        }
    }
}

impl<T: CapabilityEffects + ?Sized> CapabilityEffects for Arc<T> {
    fn admits(&self, surface: &str) -> bool {
        (**self).admits(surface)
    }

    fn require(&self, surfaces: &[&str]) -> Result<(), CapabilityError> {
        (**self).require(surfaces)
    }
}

impl<T: CapabilityEffects + ?Sized> CapabilityEffects for &T {
    fn admits(&self, surface: &str) -> bool {
        (**self).admits(surface)
    }

    fn require(&self, surfaces: &[&str]) -> Result<(), CapabilityError> {
        (**self).require(surfaces)
    }
}

/// A fixed admission set decided at start-up.
///
/// A surface is admitted when it was admitted by name, or the set admits everything
/// ([`full`](Self::full)), and it was not denied by name afterwards. Later calls override
/// earlier ones for the same name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StaticCapabilities {
    admit_all: bool,
    admitted: BTreeSet<String>,
    denied: BTreeSet<String>,
}

impl StaticCapabilities {
    /// Admits every surface, including ones this crate does not name.
    pub fn full() -> Self {
        Self { admit_all: true, ..Self::default() }
    }

    /// Admits nothing.
    pub fn none() -> Self {
        Self::default()
    }

    /// Builds from `(surface, admitted)` pairs, applied in order. The pair name
    /// [`RECONFIGURATION_SWITCH`] admits or denies every one of
    /// [`RECONFIGURATION_SURFACES`]; other names stand for themselves. Unnamed surfaces
    /// are denied.
    pub fn from_pairs<I, S>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (S, bool)>,
        S: AsRef<str>,
    {
        pairs.into_iter().fold(Self::none(), |caps, (name, on)| caps.set(name.as_ref(), on))
    }

    /// Admits or denies `surface`, expanding [`RECONFIGURATION_SWITCH`].
    pub fn set(self, surface: &str, admitted: bool) -> Self {
        let names: &[&str] =
            if surface == RECONFIGURATION_SWITCH { RECONFIGURATION_SURFACES } else { &[surface] };
        names.iter().fold(self, |caps, &name| if admitted { caps.admit(name) } else { caps.deny(name) })
    }

    /// Admits `surface` (taken literally: no switch expansion).
    pub fn admit(mut self, surface: impl Into<String>) -> Self {
        let surface = surface.into();
        self.denied.remove(&surface);
        self.admitted.insert(surface);
        self
    }

    /// Denies `surface`, even under [`full`](Self::full) (taken literally: no switch
    /// expansion).
    pub fn deny(mut self, surface: impl Into<String>) -> Self {
        let surface = surface.into();
        self.admitted.remove(&surface);
        self.denied.insert(surface);
        self
    }

    /// Admits all of [`RECONFIGURATION_SURFACES`].
    pub fn admit_reconfiguration(self) -> Self {
        self.set(RECONFIGURATION_SWITCH, true)
    }

    /// Denies all of [`RECONFIGURATION_SURFACES`].
    pub fn deny_reconfiguration(self) -> Self {
        self.set(RECONFIGURATION_SWITCH, false)
    }
}

impl CapabilityEffects for StaticCapabilities {
    fn admits(&self, surface: &str) -> bool {
        !self.denied.contains(surface) && (self.admit_all || self.admitted.contains(surface))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn missing(surface: &str) -> Result<(), CapabilityError> {
        Err(CapabilityError::NotAdmitted { surface: surface.to_owned() })
    }

    #[test]
    fn full_admits_everything_none_admits_nothing() {
        assert_eq!(StaticCapabilities::full().require(RECONFIGURATION_SURFACES), Ok(()));
        assert_eq!(StaticCapabilities::full().require(&["anything.else"]), Ok(()));
        assert_eq!(StaticCapabilities::none().require(RECONFIGURATION_SURFACES), missing(OWNERSHIP_RECEIPT));
        assert_eq!(StaticCapabilities::none().require(&[]), Ok(()));
    }

    #[test]
    fn error_names_the_first_missing_surface_in_request_order() {
        let caps = StaticCapabilities::none().admit(OWNERSHIP_RECEIPT);
        assert_eq!(caps.require(&[OWNERSHIP_RECEIPT, "b", "a"]), missing("b"));
        assert_eq!(caps.require(&["a", "b"]), missing("a"));
        assert_eq!(
            caps.require(&[SEMANTIC_HANDOFF]).unwrap_err().to_string(),
            "runtime surface `reconfiguration.semantic_handoff` is not admitted"
        );
    }

    #[test]
    fn reconfiguration_switch_controls_all_three() {
        let on = StaticCapabilities::from_pairs([(RECONFIGURATION_SWITCH, true)]);
        assert_eq!(on.require(RECONFIGURATION_SURFACES), Ok(()));
        assert!(!on.admits(RECONFIGURATION_SWITCH), "the switch is not a surface itself");

        let off = StaticCapabilities::from_pairs(vec![
            (OWNERSHIP_RECEIPT.to_owned(), true),
            (RECONFIGURATION_SWITCH.to_owned(), false),
        ]);
        assert_eq!(off.require(&[OWNERSHIP_RECEIPT]), missing(OWNERSHIP_RECEIPT));
        assert_eq!(
            StaticCapabilities::full().deny_reconfiguration().require(&["x", SEMANTIC_HANDOFF]),
            missing(SEMANTIC_HANDOFF)
        );
        assert_eq!(StaticCapabilities::none().admit_reconfiguration(), on);
    }

    #[test]
    fn later_pairs_override_earlier_ones() {
        let caps = StaticCapabilities::from_pairs([
            (RECONFIGURATION_SWITCH, true),
            (SEMANTIC_HANDOFF, false),
            ("custom", true),
            ("custom", false),
            ("custom", true),
        ]);
        assert!(
            caps.admits(OWNERSHIP_RECEIPT)
                && caps.admits(RECONFIGURATION_TRANSITION)
                && caps.admits("custom")
        );
        assert!(!caps.admits(SEMANTIC_HANDOFF));
        let full_but = StaticCapabilities::full().deny("custom").set(SEMANTIC_HANDOFF, false);
        assert!(!full_but.admits("custom") && !full_but.admits(SEMANTIC_HANDOFF) && full_but.admits("other"));
        assert!(full_but.admit("custom").admits("custom"));
    }

    #[test]
    fn shared_and_dyn_handles_delegate() {
        let caps: Arc<dyn CapabilityEffects> = Arc::new(StaticCapabilities::full().deny("x"));
        assert_eq!(caps.require(&["y", "x"]), missing("x"));
        fn by_value(caps: impl CapabilityEffects) -> bool {
            caps.admits("z")
        }
        let owned = StaticCapabilities::full();
        assert!(by_value(&owned) && owned.admits("z"));
    }
}
