//! Identifiers: authorities, sessions, contexts, bundles.
//!
//! Every id is `Copy + Ord + Hash + Serialize` (bundle ids are interned-free strings and so
//! only `Clone`). Byte ids print as lowercase hex and parse back from it; `short()` gives the
//! eight-character form used in logs.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Why a textual id could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdParseError {
    /// A 32-byte id must be exactly 64 hex digits.
    #[error("expected 64 hex digits for a {kind}, got {len} characters")]
    Length {
        /// Which id was being parsed.
        kind: &'static str,
        /// How many characters were given.
        len: usize,
    },
    /// A character outside `0-9a-fA-F`.
    #[error("invalid hex digit {found:?} at position {position} in a {kind}")]
    Digit {
        /// Which id was being parsed.
        kind: &'static str,
        /// The offending character.
        found: char,
        /// Its zero-based position.
        position: usize,
    },
    /// A session id that is not a UUID.
    #[error("invalid session id {input:?}: expected a UUID such as 67e55044-10b1-426f-9247-bb680e5fe0c8")]
    Session {
        /// The text given.
        input: String,
    },
    /// An empty bundle id.
    #[error("a bundle id must not be empty")]
    EmptyBundle,
    /// An empty live-owner label.
    #[error("an owner label must not be empty")]
    EmptyOwnerLabel,
}

fn write_hex(bytes: &[u8], f: &mut fmt::Formatter<'_>) -> fmt::Result {
    for b in bytes {
        write!(f, "{b:02x}")?;
    }
    Ok(())
}

fn parse_hex32(kind: &'static str, s: &str) -> Result<[u8; 32], IdParseError> {
    if s.len() != 64 {
        return Err(IdParseError::Length { kind, len: s.chars().count() });
    }
    let mut out = [0u8; 32];
    for (position, c) in s.chars().enumerate() {
        let nibble = c.to_digit(16).ok_or(IdParseError::Digit { kind, found: c, position })?;
        // `to_digit(16)` is below 16, so the cast cannot truncate.
        out[position / 2] |= (nibble as u8) << if position % 2 == 0 { 4 } else { 0 };
    }
    Ok(out)
}

macro_rules! byte_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub struct $name(pub [u8; 32]);

        impl $name {
            /// The raw bytes.
            pub const fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }

            /// The first four bytes as eight hex digits, for logs and tables.
            pub fn short(&self) -> String {
                self.0[..4].iter().map(|b| format!("{b:02x}")).collect()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write_hex(&self.0, f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.short())
            }
        }

        impl FromStr for $name {
            type Err = IdParseError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                parse_hex32($kind, s).map(Self)
            }
        }
    };
}

byte_id!(
    /// An authority: a party that can hold sessions (a device, a guardian set, a runtime).
    ///
    /// ```
    /// use reconf_core::AuthorityId;
    /// let alice = AuthorityId::from_label("alice");
    /// let parsed: AuthorityId = alice.to_string().parse().unwrap();
    /// assert_eq!(alice, parsed);
    /// assert_eq!(alice.short().len(), 8);
    /// ```
    AuthorityId,
    "authority id"
);

byte_id!(
    /// A delegation context: the relational scope a delegation is made in.
    ContextId,
    "context id"
);

impl AuthorityId {
    /// A stable id derived from a human label (BLAKE3 of the label in a fixed domain), so
    /// tests, examples and the CLI can name authorities readably.
    pub fn from_label(label: &str) -> Self {
        let mut h = blake3::Hasher::new_derive_key("reconf 2026 authority label");
        h.update(label.as_bytes());
        Self(*h.finalize().as_bytes())
    }

    /// The context a delegation from this authority uses when none is given: a hash of the
    /// authority, so it is the same on every machine and every run.
    pub fn default_context(&self) -> ContextId {
        let mut h = blake3::Hasher::new_derive_key("reconf 2026 default context");
        h.update(&self.0);
        ContextId(*h.finalize().as_bytes())
    }
}

/// A protocol session.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SessionId(pub Uuid);

impl SessionId {
    /// A fresh random (v4) session id.
    pub fn new_random() -> Self {
        Self(Uuid::new_v4())
    }

    /// A session id from its 128-bit value; handy for deterministic tests.
    pub const fn from_u128(v: u128) -> Self {
        Self(Uuid::from_u128(v))
    }

    /// The underlying UUID.
    pub const fn as_uuid(&self) -> &Uuid {
        &self.0
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({})", self.0)
    }
}

impl FromStr for SessionId {
    type Err = IdParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(Self).map_err(|_| IdParseError::Session { input: s.to_owned() })
    }
}

/// A bundle: a named, linkable unit of protocols. Never empty.
///
/// Shared rather than owned text: a bundle id is copied into every request, fact, receipt
/// and witness, and a reference-count bump is far cheaper than an allocation that another
/// thread then has to free.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BundleId(std::sync::Arc<str>);

impl BundleId {
    /// Validates and wraps a bundle id.
    ///
    /// ```
    /// use reconf_core::BundleId;
    /// assert_eq!(BundleId::new("device_migration").unwrap().as_str(), "device_migration");
    /// assert!(BundleId::new("").is_err());
    /// ```
    pub fn new(id: impl Into<String>) -> Result<Self, IdParseError> {
        let id = id.into();
        if id.trim().is_empty() {
            return Err(IdParseError::EmptyBundle);
        }
        Ok(Self(id.into()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Lookups by text: maps keyed by `BundleId` answer `get("device_migration")`. Sound
/// because the derived `Ord`, `Eq` and `Hash` are those of the text.
impl std::borrow::Borrow<str> for BundleId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for BundleId {
    type Error = IdParseError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::new(s)
    }
}

impl From<BundleId> for String {
    fn from(b: BundleId) -> Self {
        b.0.to_string()
    }
}

impl FromStr for BundleId {
    type Err = IdParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl fmt::Display for BundleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for BundleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BundleId({:?})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authority_round_trips_through_hex() {
        let a = AuthorityId::from_label("a");
        assert_eq!(a.to_string().parse::<AuthorityId>().unwrap(), a);
    }

    #[test]
    fn malformed_hex_names_the_position() {
        let mut s = AuthorityId::from_label("a").to_string();
        s.replace_range(3..4, "z");
        assert_eq!(
            s.parse::<AuthorityId>(),
            Err(IdParseError::Digit { kind: "authority id", found: 'z', position: 3 })
        );
        assert!(matches!("abc".parse::<AuthorityId>(), Err(IdParseError::Length { len: 3, .. })));
    }

    #[test]
    fn default_context_is_stable_and_distinct_per_authority() {
        let a = AuthorityId::from_label("a");
        let b = AuthorityId::from_label("b");
        assert_eq!(a.default_context(), a.default_context());
        assert_ne!(a.default_context(), b.default_context());
        assert_ne!(a.default_context().0, a.0);
    }

    #[test]
    fn session_id_parse_errors_are_clear() {
        let err = "nope".parse::<SessionId>().unwrap_err();
        assert!(err.to_string().contains("nope"));
    }
}
