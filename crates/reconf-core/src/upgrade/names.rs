//! Names used by upgrades: upgrade, plan, step, member, publication and obligation ids.
//!
//! They are operator-chosen text (`"release-2026-04"`, `"guardian"`), never blank, compared
//! and ordered as text so every set of them has one canonical order.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize, Serializer};

use crate::ids::AuthorityId;

use super::error::NameError;

macro_rules! name_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
        #[serde(try_from = "String")]
        pub struct $name(String);

        impl $name {
            #[doc = concat!("Validates and wraps a ", $kind, ": any text that is not blank.")]
            pub fn new(name: impl Into<String>) -> Result<Self, NameError> {
                let name = name.into();
                if name.trim().is_empty() {
                    return Err(NameError::Blank { kind: $kind });
                }
                Ok(Self(name))
            }

            /// The name as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = NameError;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                Self::new(s)
            }
        }

        impl TryFrom<&str> for $name {
            type Error = NameError;
            fn try_from(s: &str) -> Result<Self, Self::Error> {
                Self::new(s)
            }
        }

        impl FromStr for $name {
            type Err = NameError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::new(s)
            }
        }

        impl From<$name> for String {
            fn from(n: $name) -> Self {
                n.0
            }
        }

        // Written by hand rather than `into = "String"`, which would clone every name.
        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({:?})"), self.0)
            }
        }
    };
}

name_id!(
    /// Identifies one runtime upgrade of one bundle. Submitting the same id again returns
    /// the recorded execution instead of running it twice.
    UpgradeId,
    "upgrade id"
);

name_id!(
    /// Identifies an upgrade plan (a reusable description of steps).
    PlanId,
    "plan id"
);

name_id!(
    /// Identifies one step of an upgrade plan; unique within the plan.
    StepId,
    "step id"
);

name_id!(
    /// A member of a bundle's membership: a role or authority that runs the bundle.
    ///
    /// ```
    /// use reconf_core::upgrade::Member;
    /// use reconf_core::AuthorityId;
    /// assert_eq!(Member::new("guardian").unwrap().as_str(), "guardian");
    /// assert!(Member::new("  ").is_err());
    /// // An authority is a member under its hex id.
    /// let a = AuthorityId::from_label("a");
    /// assert_eq!(Member::from(a).as_str(), a.to_string());
    /// ```
    Member,
    "member"
);

name_id!(
    /// A canonical publication an upgrade carries over or invalidates.
    PublicationId,
    "publication id"
);

name_id!(
    /// A pending obligation (effect) an upgrade carries over or invalidates.
    ObligationId,
    "obligation id"
);

impl From<AuthorityId> for Member {
    fn from(a: AuthorityId) -> Self {
        // Hex of 32 bytes is never blank.
        Self(a.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_names_are_refused_with_their_kind() {
        let err = StepId::new(" \t").unwrap_err();
        assert_eq!(err, NameError::Blank { kind: "step id" });
        assert_eq!(err.to_string(), "a step id must not be blank");
    }

    #[test]
    fn names_serialize_as_plain_strings_and_validate_on_the_way_in() {
        let m = Member::new("guardian").unwrap();
        assert_eq!(serde_json::to_string(&m).unwrap(), "\"guardian\"");
        assert_eq!(serde_json::from_str::<Member>("\"guardian\"").unwrap(), m);
        assert!(serde_json::from_str::<Member>("\"\"").is_err());
        let bytes = postcard::to_allocvec(&m).unwrap();
        assert_eq!(postcard::from_bytes::<Member>(&bytes).unwrap(), m);
    }
}
