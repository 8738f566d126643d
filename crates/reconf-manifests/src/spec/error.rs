//! Where a spec is wrong, and what is wrong with it.

use std::fmt;

/// A position in a spec file: the path as given to the parser, then 1-based line and column
/// (columns count characters, not bytes).
///
/// ```
/// use reconf_manifests::spec::Location;
/// let at = Location::new("protocols/a.choreo", 3, 7);
/// assert_eq!(at.to_string(), "protocols/a.choreo:3:7");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Location {
    /// The file's path, as the caller named it.
    pub file: String,
    /// 1-based line.
    pub line: u32,
    /// 1-based column, in characters.
    pub column: u32,
}

impl Location {
    /// A location in `file` at `line:column`.
    pub fn new(file: impl Into<String>, line: u32, column: u32) -> Self {
        Self { file: file.into(), line, column }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// Why a spec was rejected. Every variant names the `file:line:col` it is about, and its
/// message says what to change.
///
/// ```
/// use reconf_manifests::spec::{parse, SpecError};
/// let err = parse("p.choreo", "protocol p\nnamespace n\nroles A, B\nA -> C : Hello\n").unwrap_err();
/// assert!(matches!(err, SpecError::UnknownRole { .. }));
/// assert_eq!(err.location().to_string(), "p.choreo:4:6");
/// assert_eq!(err.to_string(), "p.choreo:4:6: unknown role `C` (declared roles: A, B)");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SpecError {
    /// A character that starts no token of the format.
    #[error("{at}: unexpected character {found:?}")]
    UnexpectedCharacter {
        /// Where.
        at: Location,
        /// The character.
        found: char,
    },
    /// The tokens do not form a statement.
    #[error("{at}: expected {expected}, found {found}")]
    Syntax {
        /// Where.
        at: Location,
        /// What the grammar allows here.
        expected: &'static str,
        /// What was there instead (a token, or `end of line`).
        found: String,
    },
    /// `protocol`, `namespace` or `roles` given twice.
    #[error("{at}: `{keyword}` is already given at {first}")]
    DuplicateStatement {
        /// Where the second one is.
        at: Location,
        /// Which statement.
        keyword: &'static str,
        /// Where the first one is.
        first: Location,
    },
    /// A file without a `protocol`, `namespace` or `roles` statement.
    #[error("{at}: missing `{keyword}` statement")]
    MissingStatement {
        /// The start of the file.
        at: Location,
        /// Which statement.
        keyword: &'static str,
    },
    /// A role declared twice in `roles`.
    #[error("{at}: role `{role}` is declared twice")]
    DuplicateRole {
        /// Where the second declaration is.
        at: Location,
        /// The role.
        role: String,
    },
    /// An interaction or `role =` key naming a role that `roles` does not declare.
    #[error("{at}: unknown role `{role}` (declared roles: {declared})")]
    UnknownRole {
        /// Where the role is named.
        at: Location,
        /// The unknown role.
        role: String,
        /// The declared roles, comma separated, or `none` before the `roles` statement.
        declared: String,
    },
    /// An interaction whose sender is also its receiver.
    #[error("{at}: role `{role}` sends `{message}` to itself")]
    SelfMessage {
        /// Where the receiver is named.
        at: Location,
        /// The role.
        role: String,
        /// The message.
        message: String,
    },
    /// An `@link` line with no interaction before it.
    #[error("{at}: `@link` must follow an interaction `From -> To : Message`")]
    AnnotationWithoutInteraction {
        /// Where the annotation starts.
        at: Location,
    },
    /// An annotation other than `@link`.
    #[error("{at}: unknown annotation `@{name}` (the only annotation is `@link`)")]
    UnknownAnnotation {
        /// Where its name is.
        at: Location,
        /// Its name.
        name: String,
    },
    /// A key of `@link` other than `bundle`, `role`, `exports` and `imports`.
    #[error("{at}: unknown `@link` key `{key}` (expected `bundle`, `role`, `exports` or `imports`)")]
    UnknownAnnotationKey {
        /// Where the key is.
        at: Location,
        /// The key.
        key: String,
    },
    /// A key given twice in one `@link`.
    #[error("{at}: `@link` key `{key}` is given twice")]
    DuplicateAnnotationKey {
        /// Where the second one is.
        at: Location,
        /// The key.
        key: String,
    },
    /// An `@link` without a `bundle` key.
    #[error("{at}: `@link` has no bundle id (add `bundle = <id>`)")]
    MissingBundleId {
        /// Where the annotation starts.
        at: Location,
    },
    /// `bundle =` with nothing, or an empty list, after it.
    #[error("{at}: `@link` has an empty bundle id")]
    EmptyBundleId {
        /// Where the `bundle` key is.
        at: Location,
    },
    /// An import that no `@link` of the same protocol exports.
    #[error("{at}: import `{interface}` is not exported by any bundle of protocol `{protocol}`")]
    UnresolvedImport {
        /// Where the import is named.
        at: Location,
        /// The interface.
        interface: String,
        /// The protocol.
        protocol: String,
    },
    /// Two spec files declaring the same protocol id.
    #[error("{at}: protocol id `{id}` is already declared at {first}")]
    DuplicateProtocol {
        /// Where the second declaration's id is.
        at: Location,
        /// The protocol id.
        id: String,
        /// Where the first declaration's id is.
        first: Location,
    },
}

impl SpecError {
    /// The position the error is about.
    pub fn location(&self) -> &Location {
        match self {
            Self::UnexpectedCharacter { at, .. }
            | Self::Syntax { at, .. }
            | Self::DuplicateStatement { at, .. }
            | Self::MissingStatement { at, .. }
            | Self::DuplicateRole { at, .. }
            | Self::UnknownRole { at, .. }
            | Self::SelfMessage { at, .. }
            | Self::AnnotationWithoutInteraction { at }
            | Self::UnknownAnnotation { at, .. }
            | Self::UnknownAnnotationKey { at, .. }
            | Self::DuplicateAnnotationKey { at, .. }
            | Self::MissingBundleId { at }
            | Self::EmptyBundleId { at }
            | Self::UnresolvedImport { at, .. }
            | Self::DuplicateProtocol { at, .. } => at,
        }
    }
}
