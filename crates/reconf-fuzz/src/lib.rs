//! # reconf-fuzz
//!
//! The checks behind the fuzz targets in `fuzz/` (cargo-fuzz, libFuzzer): one function per
//! decoder that an attacker or a damaged disk can feed, taking arbitrary bytes. Each must
//! return normally on every input — a panic is the bug — and checks a round trip where one
//! exists. The same functions replay the committed corpora as ordinary tests
//! (`tests/corpus.rs`), so every input a fuzzer ever found stays fixed without cargo-fuzz.
//!
//! The RocksDB and etcd layouts are compiled in from their crates' own sources (`#[path]`):
//! the very functions those backends use, without linking RocksDB's C++ or etcd's client
//! into a fuzz build.
//!
//! Not published; nothing depends on it. It must hold no decoder of its own: only calls
//! into the real ones, and assertions.
#![forbid(unsafe_code)]
// A failed assertion is how a check reports a bug to the fuzzer.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use reconf_core::upgrade::{RuntimeUpgradeRequest, UpgradeSnapshot};
use reconf_core::{AuthorityId, BundleId, OwnerLabel, SessionId, State};
use reconf_effects::codec;

#[allow(dead_code, unreachable_pub, unused_imports)]
#[path = "../../reconf-store-rocksdb/src/frame.rs"]
mod rocksdb_frame;

#[allow(dead_code, unreachable_pub, unused_imports)]
#[path = "../../reconf-store-etcd/src/layout.rs"]
mod etcd_layout;

/// The names of the targets, as `fuzz/fuzz_targets/{name}.rs` and `fuzz/corpus/{name}/`.
pub const TARGETS: &[&str] =
    &["record_frame", "rocksdb_meta", "etcd_layout", "state_snapshot", "upgrade_json", "choreo_spec", "ids"];

/// Runs the check named `target` on `data`.
///
/// # Panics
/// When the check finds a bug, or for a name not in [`TARGETS`].
pub fn check(target: &str, data: &[u8]) {
    match target {
        "record_frame" => record_frame(data),
        "rocksdb_meta" => rocksdb_meta(data),
        "etcd_layout" => etcd_layout(data),
        "state_snapshot" => state_snapshot(data),
        "upgrade_json" => upgrade_json(data),
        "choreo_spec" => choreo_spec(data),
        "ids" => ids(data),
        other => panic!("no fuzz target {other}"),
    }
}

fn split_sequence(data: &[u8]) -> Option<(u64, &[u8])> {
    let (head, rest) = data.split_first_chunk::<8>()?;
    Some((u64::from_be_bytes(*head), rest))
}

/// A journal record frame (its first 8 bytes are the key's sequence) and the fact inside:
/// a fact that decodes re-encodes to a payload that decodes to the same fact.
pub fn record_frame(data: &[u8]) {
    let Some((sequence, bytes)) = split_sequence(data) else { return };
    // The fact decoder alone too, so the fuzzer need not forge a frame's checksum to
    // reach it.
    let payload = match codec::decode_record(sequence, bytes) {
        Ok(frame) => frame.payload,
        Err(_) => bytes,
    };
    let Ok(fact) = codec::decode_fact(sequence, payload) else { return };
    let again = codec::encode_fact(&fact).expect("a decoded fact encodes");
    assert_eq!(codec::decode_fact(sequence, &again).expect("a re-encoded fact decodes"), fact);
    let (framed, _) = codec::encode_record(sequence, &[0; 32], &again).expect("a fact frames");
    let back = codec::decode_record(sequence, &framed).expect("a fresh frame decodes");
    assert_eq!(back.payload, again.as_slice());
}

/// The RocksDB journal's head and format metadata values: a value that decodes is exactly
/// what encoding its content gives (the checksum leaves no other spelling).
pub fn rocksdb_meta(data: &[u8]) {
    if let Ok((sequence, hash)) = rocksdb_frame::decode_head(data) {
        assert_eq!(rocksdb_frame::encode_head(sequence, &hash).as_slice(), data);
    }
    if let Ok(version) = rocksdb_frame::decode_format(data) {
        assert_eq!(version.to_be_bytes().as_slice(), data);
    }
    if let Some(sequence) = rocksdb_frame::sequence_of_key(data) {
        assert_eq!(rocksdb_frame::key(sequence).as_slice(), data);
    }
}

/// The etcd journal's head, format, chunk and snapshot-manifest values (the first 8 bytes
/// are the sequence the key names): every decoder returns a typed result; a head that
/// decodes encodes back to the same bytes.
pub fn etcd_layout(data: &[u8]) {
    if let Ok(head) = etcd_layout::Head::decode(data) {
        assert_eq!(head.encode().as_slice(), data);
    }
    let _ = etcd_layout::decode_format(data);
    let Some((sequence, bytes)) = split_sequence(data) else { return };
    if let Ok(chunk) = etcd_layout::decode_chunk(sequence, bytes) {
        for (frame, s) in chunk.frames.iter().zip(chunk.first..) {
            let _ = codec::decode_record(s, frame);
        }
    }
    let _ = etcd_layout::Manifest::decode(sequence, bytes);
}

/// A stored state snapshot: the framed value (first 8 bytes: its sequence), then the
/// state inside, which must decode to a state the audit can walk, and round-trip.
pub fn state_snapshot(data: &[u8]) {
    let Some((sequence, bytes)) = split_sequence(data) else { return };
    let inner = match codec::decode_snapshot(sequence, bytes) {
        Ok(inner) => {
            assert_eq!(codec::encode_snapshot(sequence, &inner), bytes);
            inner
        }
        // Also feed the unframed bytes to the state decoder, so the fuzzer need not forge
        // a checksum to reach it.
        Err(_) => bytes.to_vec(),
    };
    let Ok(state) = postcard::from_bytes::<State>(&inner) else { return };
    let _ = state.verify_coherence();
    let _ = state.stats();
    let again = postcard::to_allocvec(&state).expect("a decoded state encodes");
    let back = postcard::from_bytes::<State>(&again).expect("a re-encoded state decodes");
    assert_eq!(back.to_snapshot(), state.to_snapshot());
}

/// An upgrade request and an upgrade snapshot as JSON (what `reconf upgrade` and
/// `restore_upgrade_snapshot` read): whatever decodes round-trips through JSON.
pub fn upgrade_json(data: &[u8]) {
    if let Ok(request) = serde_json::from_slice::<RuntimeUpgradeRequest>(data) {
        let text = serde_json::to_string(&request).expect("a request encodes");
        assert_eq!(serde_json::from_str::<RuntimeUpgradeRequest>(&text).expect("it decodes"), request);
    }
    if let Ok(snapshot) = serde_json::from_slice::<UpgradeSnapshot>(data) {
        let text = serde_json::to_string(&snapshot).expect("a snapshot encodes");
        assert_eq!(serde_json::from_str::<UpgradeSnapshot>(&text).expect("it decodes"), snapshot);
    }
}

/// A `.choreo` protocol spec: parsing returns a spec or a typed error, never a panic, and a
/// spec that parses prints back to text that parses to the same spec.
pub fn choreo_spec(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(spec) = reconf_manifests::spec::parse("fuzz.choreo", text) {
        // What parsed once parses the same way again (the parser keeps no state).
        let again = reconf_manifests::spec::parse("fuzz.choreo", text).expect("it parsed before");
        assert_eq!(again, spec);
        // It re-emits to an equivalent spec: the printed text parses to the same protocol
        // (declared, now, on the printed first line), and printing that changes nothing.
        let printed = spec.to_string();
        let reparsed = reconf_manifests::spec::parse("fuzz.choreo", &printed)
            .unwrap_or_else(|e| panic!("the printed spec does not parse: {e}\n{printed}"));
        let declared_at = reparsed.declared_at.clone();
        assert_eq!(reparsed, reconf_manifests::spec::ProtocolSpec { declared_at, ..spec });
        assert_eq!(reparsed.to_string(), printed);
    }
}

/// The id parsers behind the CLI's arguments: sessions, authorities, bundles and owner
/// labels; whatever parses prints back to text that parses to the same id.
pub fn ids(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(s) = text.parse::<SessionId>() {
        assert_eq!(s.to_string().parse::<SessionId>().expect("a printed session parses"), s);
    }
    if let Ok(a) = text.parse::<AuthorityId>() {
        assert_eq!(a.to_string().parse::<AuthorityId>().expect("a printed authority parses"), a);
    }
    if let Ok(b) = text.parse::<BundleId>() {
        assert_eq!(b.to_string().parse::<BundleId>().expect("a printed bundle parses"), b);
    }
    if let Ok(o) = OwnerLabel::new(text) {
        assert_eq!(o.as_str(), text);
    }
}
