//! Rust source for one protocol's manifest, and for the module that declares them all.
//!
//! The text is laid out close to rustfmt's style, but callers pass it through rustfmt
//! before comparing or writing, so only its tokens matter.

use std::fmt::Write as _;

use super::PREAMBLE;
use crate::spec::{MergedLink, ProtocolSpec};

/// One generated module: its name, the `static` it defines, and its spec's file name.
pub(super) struct Module<'a> {
    pub(super) name: String,
    pub(super) spec_file: &'a str,
    pub(super) spec: ProtocolSpec,
}

impl Module<'_> {
    pub(super) fn static_name(&self) -> String {
        self.name.to_ascii_uppercase()
    }
}

fn string_list(items: impl IntoIterator<Item = impl AsRef<str>>) -> String {
    let items: Vec<String> = items.into_iter().map(|s| format!("{:?}", s.as_ref())).collect();
    format!("&[{}]", items.join(", "))
}

fn link_spec(link: &MergedLink) -> String {
    format!(
        "        LinkSpec {{\n            role: {:?},\n            bundle_id: {:?},\n            \
         exports: {},\n            imports: {},\n        }},\n",
        link.role,
        link.bundle,
        string_list(&link.exports),
        string_list(&link.imports),
    )
}

pub(super) fn protocol_file(module: &Module<'_>) -> String {
    let spec = &module.spec;
    let links = spec.merged_links();
    let imports = if links.is_empty() { "CompositionManifest" } else { "{CompositionManifest, LinkSpec}" };
    let mut out = String::new();
    // `write!` into a `String` cannot fail; the results are ignored for that reason.
    let _ = writeln!(out, "{PREAMBLE}\n// Source: protocols/{}\n", module.spec_file);
    let _ = writeln!(out, "use crate::{imports};\n");
    let _ = writeln!(out, "/// Manifest of protocol `{}` (namespace `{}`).", spec.id, spec.namespace);
    out.push_str(
        "// linkme puts each element in a `#[link_section]`, which `unsafe_code` flags in the crate\n\
         // that declares the slice; see `[lints.rust]` in this crate's Cargo.toml.\n\
         #[allow(unsafe_code)]\n\
         #[linkme::distributed_slice(crate::COMPOSITION_MANIFESTS)]\n",
    );
    let _ = writeln!(
        out,
        "pub static {}: CompositionManifest = CompositionManifest {{\n    protocol_id: {:?},\n    \
         namespace: {:?},\n    roles: {},",
        module.static_name(),
        spec.id,
        spec.namespace,
        string_list(&spec.roles),
    );
    out.push_str("    links: &[\n");
    for link in &links {
        out.push_str(&link_spec(link));
    }
    out.push_str("    ],\n};\n");
    out
}

pub(super) fn mod_file(modules: &[Module<'_>]) -> String {
    let mut out = format!("{PREAMBLE}\n\n");
    for m in modules {
        let _ = writeln!(out, "mod {};", m.name);
    }
    out.push('\n');
    for m in modules {
        let _ = writeln!(out, "pub use {}::{};", m.name, m.static_name());
    }
    out
}
