//! Prints a parsed spec back as `.choreo` text.
//!
//! The output is canonical rather than a copy of the input: comments and blank lines are
//! gone, every annotation sits on its interaction's line and names every key, lists are
//! always bracketed. Parsing the output gives the same spec again (all but `declared_at`,
//! which then points into the printed text), which is what the fuzz target checks.

use std::fmt;

use super::{Interaction, LinkAnnotation, ProtocolSpec};

/// ```
/// use reconf_manifests::spec::parse;
/// let spec = parse("p", "protocol p\nnamespace n\nroles A, B\n# a comment\n\
///     A -> B : Ask @link bundle = b, exports = x\n")?;
/// assert_eq!(
///     spec.to_string(),
///     "protocol p\nnamespace n\nroles A, B\n\
///      A -> B : Ask @link bundle = b, role = A, exports = [x], imports = []\n"
/// );
/// let again = parse("p", &spec.to_string())?;
/// assert_eq!((again.roles, again.interactions), (spec.roles, spec.interactions));
/// # Ok::<(), reconf_manifests::spec::SpecError>(())
/// ```
impl fmt::Display for ProtocolSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "protocol {}", self.id)?;
        writeln!(f, "namespace {}", self.namespace)?;
        writeln!(f, "roles {}", self.roles.join(", "))?;
        for interaction in &self.interactions {
            writeln!(f, "{interaction}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Interaction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} -> {} : {}", self.from, self.to, self.message)?;
        for link in &self.links {
            write!(f, " {link}")?;
        }
        Ok(())
    }
}

impl fmt::Display for LinkAnnotation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "@link bundle = {}, role = {}, exports = [{}], imports = [{}]",
            self.bundle,
            self.role,
            self.exports.join(", "),
            self.imports.join(", ")
        )
    }
}
