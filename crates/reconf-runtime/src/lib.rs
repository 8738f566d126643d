//! # reconf-runtime
//!
//! The reconfiguration manager: an actor owning the core state, write-ahead journaling,
//! live-session handoff and recovery. It must not contain domain rules that belong in
//! `reconf-core`.
#![forbid(unsafe_code)]
