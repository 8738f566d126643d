//! The `.choreo` protocol spec format: parser, validator and printer.
//!
//! The grammar is described in the [crate documentation](crate#protocol-specs). Everything
//! here is a pure function over text: the caller reads the files (`cargo xtask codegen`, or
//! a test) and passes each file's path, which is used only to name positions in errors.
//! Parsing stops at the first error.
//!
//! ```
//! use reconf_manifests::spec::parse;
//! let spec = parse(
//!     "hello.choreo",
//!     "protocol demo.hello\n\
//!      namespace demo\n\
//!      roles Client, Server\n\
//!      Client -> Server : Hello @link bundle = greeting, exports = greeting.hello\n\
//!      Server -> Client : Welcome\n\
//!        @link bundle = greeting, imports = greeting.hello\n",
//! )?;
//! assert_eq!(spec.id, "demo.hello");
//! let links = spec.merged_links();
//! assert_eq!(links.len(), 2);
//! assert_eq!(links[1].role, "Server");
//! # Ok::<(), reconf_manifests::spec::SpecError>(())
//! ```

mod error;
mod lexer;
mod parser;
mod print;

use std::collections::{BTreeMap, BTreeSet};

pub use error::{Location, SpecError};

/// One spec file's path (used in error positions) and text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpecSource<'a> {
    /// The path to show in errors, e.g. `crates/reconf-manifests/protocols/x.choreo`.
    pub path: &'a str,
    /// The file's contents.
    pub text: &'a str,
}

/// A parsed and validated protocol spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolSpec {
    /// The protocol id, unique across all specs.
    pub id: String,
    /// The namespace the protocol belongs to.
    pub namespace: String,
    /// Roles in declaration order.
    pub roles: Vec<String>,
    /// Interactions in file order.
    pub interactions: Vec<Interaction>,
    /// Where the protocol id is declared.
    pub declared_at: Location,
}

/// `From -> To : Message`, with its link annotations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interaction {
    /// The sending role.
    pub from: String,
    /// The receiving role.
    pub to: String,
    /// The message name.
    pub message: String,
    /// The `@link` annotations on this interaction, in file order.
    pub links: Vec<LinkAnnotation>,
}

/// One `@link` annotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkAnnotation {
    /// The role that takes part in the bundle (the `role` key, else the sender).
    pub role: String,
    /// The bundle id.
    pub bundle: String,
    /// Interfaces the bundle provides.
    pub exports: Vec<String>,
    /// Interfaces the bundle needs.
    pub imports: Vec<String>,
}

/// All annotations of one protocol for the same role and bundle, merged: what a manifest's
/// link spec holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergedLink {
    /// The role.
    pub role: String,
    /// The bundle id.
    pub bundle: String,
    /// Exports of every merged annotation, sorted.
    pub exports: BTreeSet<String>,
    /// Imports of every merged annotation, sorted.
    pub imports: BTreeSet<String>,
}

impl ProtocolSpec {
    /// Link annotations merged per (role, bundle), in order of first appearance.
    ///
    /// ```
    /// use reconf_manifests::spec::parse;
    /// let spec = parse("p", "protocol p\nnamespace n\nroles A, B\n\
    ///     A -> B : M1 @link bundle = b, exports = x\n\
    ///     A -> B : M2 @link bundle = b, exports = [y, x]\n")?;
    /// let links = spec.merged_links();
    /// assert_eq!(links.len(), 1);
    /// assert_eq!(links[0].exports.iter().collect::<Vec<_>>(), ["x", "y"]);
    /// # Ok::<(), reconf_manifests::spec::SpecError>(())
    /// ```
    pub fn merged_links(&self) -> Vec<MergedLink> {
        let mut out: Vec<MergedLink> = Vec::new();
        let mut index: BTreeMap<(&str, &str), usize> = BTreeMap::new();
        for link in self.interactions.iter().flat_map(|i| &i.links) {
            let slot = *index.entry((&link.role, &link.bundle)).or_insert_with(|| {
                out.push(MergedLink {
                    role: link.role.clone(),
                    bundle: link.bundle.clone(),
                    exports: BTreeSet::new(),
                    imports: BTreeSet::new(),
                });
                out.len() - 1
            });
            if let Some(merged) = out.get_mut(slot) {
                merged.exports.extend(link.exports.iter().cloned());
                merged.imports.extend(link.imports.iter().cloned());
            }
        }
        out
    }
}

/// Parses and validates one spec; `file` names it in errors.
///
/// ```
/// use reconf_manifests::spec::{parse, SpecError};
/// let err = parse("x.choreo", "protocol p\nnamespace n\nroles A\nA -> A : Ping\n").unwrap_err();
/// assert!(matches!(err, SpecError::SelfMessage { .. }));
/// assert_eq!(err.to_string(), "x.choreo:4:6: role `A` sends `Ping` to itself");
/// ```
pub fn parse(file: &str, text: &str) -> Result<ProtocolSpec, SpecError> {
    parser::parse(file, text)
}

/// Parses and validates several specs, in the order given, and rejects a protocol id
/// declared by more than one of them.
///
/// ```
/// use reconf_manifests::spec::{parse_all, SpecError, SpecSource};
/// let text = "protocol p\nnamespace n\nroles A, B\n";
/// let err = parse_all(&[SpecSource { path: "a.choreo", text }, SpecSource { path: "b.choreo", text }])
///     .unwrap_err();
/// assert_eq!(err.to_string(), "b.choreo:1:10: protocol id `p` is already declared at a.choreo:1:10");
/// ```
pub fn parse_all(sources: &[SpecSource<'_>]) -> Result<Vec<ProtocolSpec>, SpecError> {
    let mut specs: Vec<ProtocolSpec> = Vec::with_capacity(sources.len());
    for source in sources {
        let spec = parse(source.path, source.text)?;
        if let Some(first) = specs.iter().find(|s| s.id == spec.id) {
            return Err(SpecError::DuplicateProtocol {
                at: spec.declared_at,
                id: spec.id,
                first: first.declared_at.clone(),
            });
        }
        specs.push(spec);
    }
    Ok(specs)
}

#[cfg(test)]
mod tests;
