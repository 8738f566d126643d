//! Parsing ids given on the command line.
//!
//! **Authorities.** An argument of exactly 64 characters must be a hex id (upper or lower
//! case) and is used as is; a malformed one is an error naming the bad digit. Any other
//! non-empty text is a *label*, turned into an id with
//! [`AuthorityId::from_label`] — except text made only of hex digits and at least
//! [`MIN_HEX_LOOKALIKE`] long, which is refused as a mistyped (truncated or extended) id
//! rather than silently becoming a different authority.
//!
//! **Sessions** are UUIDs; **bundles** are non-empty names. No id argument is longer than
//! [`MAX_ID_LEN`] bytes.

use std::fmt;

use reconf_runtime::{AuthorityId, BundleId, SessionId};

use crate::error::CliError;

/// Hex-only text at least this long that is not 64 digits is refused as a mistyped id.
pub(crate) const MIN_HEX_LOOKALIKE: usize = 16;

/// The longest id argument (label, bundle name, session) accepted: longer text is a
/// mistake, refused without being echoed back whole.
pub(crate) const MAX_ID_LEN: usize = 1024;

fn not_too_long(flag: &'static str, input: &str) -> Result<(), CliError> {
    if input.len() <= MAX_ID_LEN {
        return Ok(());
    }
    let start: String = input.chars().take(16).collect();
    Err(CliError::InvalidArguments(format!(
        "{flag}: {start:?}… is {} bytes long; ids are at most {MAX_ID_LEN}",
        input.len()
    )))
}

/// An authority as given: its id, and the label it was derived from, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Authority {
    pub(crate) id: AuthorityId,
    pub(crate) label: Option<String>,
}

impl Authority {
    /// Parses the argument of `flag` by the rule in the module docs.
    pub(crate) fn parse(flag: &'static str, input: &str) -> Result<Self, CliError> {
        not_too_long(flag, input)?;
        if input.len() == 64 {
            let id = input.parse::<AuthorityId>().map_err(|source| CliError::InvalidId { flag, source })?;
            return Ok(Self { id, label: None });
        }
        if input.trim().is_empty() {
            return Err(CliError::InvalidAuthority {
                flag,
                reason: "an authority must be 64 hex digits or a non-empty label".to_owned(),
            });
        }
        if input.len() >= MIN_HEX_LOOKALIKE && input.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(CliError::InvalidAuthority {
                flag,
                reason: format!(
                    "{input:?} looks like a hex authority id but has {} digits, not 64 \
                     (labels of {MIN_HEX_LOOKALIKE} or more hex digits only are refused)",
                    input.len()
                ),
            });
        }
        Ok(Self { id: AuthorityId::from_label(input), label: Some(input.to_owned()) })
    }
}

impl fmt::Display for Authority {
    /// `label [short-id]`, or the short id alone.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.label {
            Some(l) => write!(f, "{l} [{}]", self.id.short()),
            None => f.write_str(&self.id.short()),
        }
    }
}

/// Parses a session UUID.
pub(crate) fn session(flag: &'static str, input: &str) -> Result<SessionId, CliError> {
    not_too_long(flag, input)?;
    input.parse().map_err(|source| CliError::InvalidId { flag, source })
}

/// Parses a bundle name.
pub(crate) fn bundle(flag: &'static str, input: &str) -> Result<BundleId, CliError> {
    not_too_long(flag, input)?;
    BundleId::new(input).map_err(|source| CliError::InvalidId { flag, source })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn hex_ids_labels_and_lookalikes() {
        let alice = AuthorityId::from_label("alice");
        let raw = Authority::parse("--from", &alice.to_string()).unwrap();
        assert_eq!((raw.id, raw.label), (alice, None));
        let upper = Authority::parse("--from", &alice.to_string().to_uppercase()).unwrap();
        assert_eq!(upper.id, alice);
        let label = Authority::parse("--from", "alice").unwrap();
        assert_eq!((label.id, label.label.as_deref()), (alice, Some("alice")));
        // Short hex-looking text is a fine label ("a", "cafe").
        assert_eq!(Authority::parse("--from", "cafe").unwrap().id, AuthorityId::from_label("cafe"));
        // A truncated id is refused, as is a 64-character non-hex string and an empty one.
        let truncated = &alice.to_string()[..63];
        assert!(Authority::parse("--from", truncated).unwrap_err().to_string().contains("63 digits"));
        let bad = format!("{}z", &alice.to_string()[..63]);
        assert!(Authority::parse("--from", &bad).unwrap_err().to_string().contains("position 63"));
        assert!(Authority::parse("--from", " ").is_err());
    }

    #[test]
    fn display_shows_label_and_short_id() {
        let a = Authority::parse("--to", "bob").unwrap();
        assert_eq!(a.to_string(), format!("bob [{}]", AuthorityId::from_label("bob").short()));
    }

    #[test]
    fn malformed_sessions_name_the_flag() {
        let e = session("--session", "nope").unwrap_err().to_string();
        assert!(e.starts_with("--session: ") && e.contains("nope"), "{e}");
    }
}
