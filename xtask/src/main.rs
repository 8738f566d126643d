//! Project automation: `cargo xtask codegen [--check]`.
#![forbid(unsafe_code)]

fn main() {}
